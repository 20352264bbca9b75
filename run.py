"""Parvandeh's single entry point: `python run.py COMMAND` (also installed as `parvandeh`)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from config.loader import ConfigError, Settings, load_settings
from config.logs import configure_logging


def _settings(args: argparse.Namespace) -> Settings:
    from connectors.registry import settings_schemas

    settings = load_settings(args.config, connector_schemas=settings_schemas())
    configure_logging(settings.log.level, settings.log.format)
    return settings


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _shown(text: str | None, *, single_line: bool = False) -> str:
    """Customer text as printed: Persian as written, escape sequences and control characters made
    visible and inert (as the console shows them): a subject or file name must not drive the
    operator's terminal. `single_line` folds line breaks, for fields printed on one line."""
    from console.render import neutralise

    clean = neutralise(text or "")
    return " ".join(clean.split()) if single_line else clean


def _limit_text(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit}-byte"


def _not_kept(attachment: dict[str, Any], limit: int) -> str | None:
    """Why an attachment has no bytes here; None when it has them, or the channel still holds them.
    The store records no reason, but it keeps the file's size, and a file over `limit` (the
    configured max_attachment_bytes, which decides when files are stored) is never kept."""
    if attachment["sha256"] or attachment["remote_ref"]:
        return None
    if attachment["size"] and attachment["size"] > limit:
        return f"over the {_limit_text(limit)} limit"
    return "reason not recorded"


def _attachment_line(attachment: dict[str, Any]) -> str:
    parts = [_shown(attachment["filename"], single_line=True), _shown(attachment["content_type"], single_line=True)]
    if attachment["size"]:
        parts.append(f"{attachment['size']} bytes")
    if attachment["sha256"]:
        parts.append(f"sha256 {attachment['sha256'][:12]}")
    elif attachment["not_kept"]:
        parts.append(f"(not kept: {attachment['not_kept']})")
    else:
        parts.append("(not downloaded: the channel holds it)")
    return "  + " + "  ".join(parts)


def _print_message(m: dict[str, Any]) -> None:
    arrow = "→" if m["direction"] == "in" else "←"
    # The sender's own Auto-Submitted value can be in the reason: customer text.
    automatic = f"  [automatic: {_shown(m['auto_reason'], single_line=True)}]" if m["auto_reason"] else ""
    print(f"\n{arrow} {m['created_at']} {m['channel']} {_shown(m['sender'], single_line=True)}{automatic}\n"
          f"{_shown(m['display_text'])}")
    for attachment in m["attachments"]:
        print(_attachment_line(attachment))


async def _with_store(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    """Runs `work` on the configured store, which must exist: opening a mistyped path would
    create an empty store and show nothing, as if there were no claims."""
    from ingest.store import Store

    if not Path(settings.store.path).exists():
        print(f"no store at {settings.store.path}: check [store] path in {settings.source} (a relative path is"
              " read from the current directory), or start the daemon once to create it", file=sys.stderr)
        return 2
    store = Store(settings.store.path, synchronous=settings.store.synchronous)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def _cross_checks(settings: Settings) -> list[str]:
    """What check-config checks beyond each table's own schema, and serve before it starts, so
    that what one refuses the other does too (a clash of ports, say, stopped serve half-way).
    Returns the warnings: valid but doubtful."""
    from config.listeners import Listener, check_listeners, connector_listeners
    from config.loader import unwritable_directory
    from config.policies import check_template, load_policies
    from console.templates import PLACEHOLDERS
    from ingest.agent_api import agent_api_settings

    policies = load_policies(settings)  # routing rules, queues, SLA policies, calendar, workflow
    api = agent_api_settings(settings)  # [agent_api]: serve refuses what this lets through otherwise
    for index, template in enumerate(api.reply_templates):  # the console fills them before sending
        check_template(f"agent_api.reply_templates[{index}].text", template.text, PLACEHOLDERS)
    check_listeners([*connector_listeners(settings), Listener("agent_api", api.host, api.port)])
    # Attachments are written only when one arrives, so a bad directory would only show then; a
    # bad store path would stop serve after check-config had passed it.
    for key, directory in (("attachments_dir", settings.store.attachments_dir), ("path", settings.store.path.parent)):
        if problem := unwritable_directory(directory):
            value = getattr(settings.store, key)
            raise ConfigError(f"store.{key} = {str(value)!r}: {problem}; expected "
                              + ("a directory" if key == "attachments_dir" else "a file in a directory")
                              + " the daemon can create and write")
    if settings.store.path.is_dir():
        raise ConfigError(f"store.path = {str(settings.store.path)!r}: is a directory; expected the database file")
    return list(policies.warnings)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    warnings = _cross_checks(settings)
    instances = ", ".join(f"{name} ({kind})" for kind, name, _ in settings.connector_instances()) or "none"
    print(f"{settings.source}: OK — connectors: {instances}")
    for warning in [*warnings, *_unset_secrets(settings)]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _unset_secrets(settings: Settings) -> list[str]:
    """Secrets `serve` will need that this environment does not hold: the file can be right and
    the daemon still refuse to start, so say so (check-config may run where serve does not)."""
    import os

    from connectors.twilio.webhook import TOKEN_ENV

    wanted: list[tuple[str, str]] = []  # (key, variable)
    for kind, name, conf in settings.connector_instances():
        label = kind if name == kind else f"{kind}[{name}]"
        skip = {"password_env"} if kind == "outbound_smtp" and not conf.username else set()
        if kind == "calls" and not conf.pbx:
            skip.add("secret_env")
        if kind == "telegram" and conf.mode != "webhook":
            skip.add("webhook_secret_env")
        for key, value in conf.model_dump().items():
            if key.endswith("_env") and key not in skip and isinstance(value, str) and value:
                wanted.append((f"{label}.{key}", value))
        if kind == "twilio" or (kind == "calls" and conf.twilio_voice):
            wanted.append((f"{label} (Twilio auth token)", TOKEN_ENV))
    return [f"{key}: environment variable {env} is not set here; `serve` needs it (export it first)"
            for key, env in wanted if not os.environ.get(env)]


def cmd_serve(args: argparse.Namespace) -> int:
    import structlog

    from ingest import event_loop
    from ingest.daemon import serve

    settings = _settings(args)
    for warning in _cross_checks(settings):  # the daemon loads the policies again; this costs milliseconds
        structlog.get_logger("parvandeh").warning("config_warning", detail=warning)
    return event_loop.run(serve(settings), settings.ingest.event_loop)


def cmd_tickets(args: argparse.Namespace) -> int:
    from ingest import queries
    from router.claimref import parse_claim_ref

    settings = _settings(args)
    if getattr(args, "ref", None):
        # As in a mail subject or the insurer API: a reference copied from a Persian text
        # ("PV-۱۴۰۵-۰۰۰۱۲۳") or typed in lower case names the claim, rather than "no ticket".
        args.ref = parse_claim_ref(args.ref, settings.claims.reference_prefix) or args.ref

    async def work(store: Any) -> int:
        if args.action == "list":
            if args.queue and (problem := await _unknown_queue(settings, store, args.queue)):
                print(problem, file=sys.stderr)
                return 2
            tickets = await queries.list_tickets(store, status=args.status, queue=args.queue, limit=args.limit)
            if args.json:
                for ticket in tickets:
                    print(json.dumps(ticket, ensure_ascii=False))
            else:
                for t in tickets:
                    print(f"{t['reference']}  {t['status']:<10} {t['queue']:<10} {t['priority']:<7}"
                          f" {','.join(t['channels']):<14} {t['message_count']:>4}"
                          f"  {_shown(t['subject'], single_line=True)[:60]}")
            return 0
        if args.action == "show":
            detail = await queries.ticket_detail(store, args.ref)
            if detail is None:
                print(f"no ticket {args.ref}", file=sys.stderr)
                return 1
            for m in detail["messages"]:
                for attachment in m["attachments"]:
                    attachment["not_kept"] = _not_kept(attachment, settings.claims.max_attachment_bytes)
            if args.json:
                _print_json(detail)
            else:
                print(f"{detail['reference']} [{detail['status']}] {_shown(detail['subject'], single_line=True)}")
                for m in detail["messages"]:
                    _print_message(m)
            return 0
        # reply
        from ingest.apply import ReplyError, agent_reply
        from ingest.daemon import apply_context, build_connectors

        ctx = apply_context(settings, build_connectors(settings))
        try:
            outbox_id = await store.write(agent_reply(args.ref, args.text, args.author, ctx, args.channel))
        except ReplyError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        print(f"queued as outbox #{outbox_id}")
        return 0

    return asyncio.run(_with_store(settings, work))


async def _unknown_queue(settings: Settings, store: Any, queue: str) -> str | None:
    """What is wrong with `--queue`, None when nothing: a mistyped queue listed nothing, as if it
    were empty. A queue no longer configured still lists the tickets left in it."""
    from config.policies import load_policies
    from ingest import queries

    configured = load_policies(settings).queues
    if queue in configured or await queries.list_tickets(store, queue=queue, limit=1):
        return None
    return f"--queue: unknown queue {queue}; configured queues: {', '.join(sorted(configured))}"


def cmd_quarantine(args: argparse.Namespace) -> int:
    from ingest import queries

    settings = _settings(args)

    async def work(store: Any) -> int:
        if args.action == "list":
            from connectors.registry import normalisers

            rows = await queries.list_quarantine(store, include_resolved=args.all)
            unthreaded = await queries.list_unthreaded(store, normalisers())
            if args.json:
                _print_json({"quarantined": rows, "unthreaded": unthreaded})
                return 0
            for row in rows:
                print(f"#{row['inbox_id']} {row['channel']}/{row['connector']} {row['created_at']}"
                      f" {row['size']} bytes\n  {_shown(row['error'])}")
            for row in unthreaded:
                print(f"#{row['inbox_id']} {row['channel']}/{row['connector']} {row['received_at']} unthreaded:"
                      f" {_shown(row['sender'] or '?', single_line=True)}  {_shown(row['subject'], single_line=True)}")
            print(f"{len(rows)} quarantined; {len(unthreaded)} automatic messages kept unthreaded")
            return 0
        from ingest.daemon import offline_ingest

        ids = args.ids or [row["inbox_id"] for row in await queries.list_quarantine(store)]
        ingest = offline_ingest(settings, store)
        retried = await ingest.retry(ids)
        remaining = {row["inbox_id"] for row in await queries.list_quarantine(store)}
        ok = [i for i in retried if i not in remaining]
        print(f"retried {len(retried)}: {len(ok)} processed, {len(retried) - len(ok)} quarantined again")
        not_quarantined = sorted(set(args.ids or ()) - set(retried))
        if not_quarantined:  # a mistyped id must not read as success
            print(f"not quarantined (nothing to retry): {', '.join(map(str, not_quarantined))}", file=sys.stderr)
        return 0 if len(ok) == len(retried) and not not_quarantined else 1

    return asyncio.run(_with_store(settings, work))


def cmd_console(args: argparse.Namespace) -> int:
    from console.__main__ import configured_prefs
    from console.app import run_console

    # Only [console] is read: the daemon's sections need not load on an agent's machine.
    return run_console(args.url, args.token, configured_prefs(args, args.config))


def build_parser() -> argparse.ArgumentParser:
    from router.workflow import TRANSITIONS

    # --config is accepted before or after any (sub)command: `tickets list --json --config F`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML configuration file")
    parser = argparse.ArgumentParser(prog="parvandeh", description="Claims intake and ticketing daemon")
    parser.add_argument("--config", type=Path, default=None, help="TOML configuration file (default: shipped)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, parents=[common])
        p.set_defaults(handler=handler)
        return p

    command("serve", cmd_serve, "run the daemon until SIGINT/SIGTERM")
    command("check-config", cmd_check_config, "validate a configuration file")

    tickets = command("tickets", cmd_tickets, "inspect tickets")
    tickets_sub = tickets.add_subparsers(dest="action", required=True)
    t_list = tickets_sub.add_parser("list", parents=[common])
    t_list.add_argument("--json", action="store_true")
    t_list.add_argument("--status", choices=sorted(TRANSITIONS))
    t_list.add_argument("--queue")
    t_list.add_argument("--limit", type=int, default=1000)
    t_show = tickets_sub.add_parser("show", parents=[common])
    t_show.add_argument("ref")
    t_show.add_argument("--json", action="store_true")
    t_reply = tickets_sub.add_parser("reply", parents=[common], help="queue a reply on the customer's channel")
    t_reply.add_argument("ref")
    t_reply.add_argument("--text", required=True)
    t_reply.add_argument("--author", default="cli")
    t_reply.add_argument("--channel")

    from console.__main__ import add_cli_arguments as console_arguments
    from ingest.agents import add_cli_arguments as agent_arguments, cli_agent

    from ingest.insurers import add_cli_arguments as insurer_arguments, cli_insurer_add
    from ingest.demo import add_cli_arguments as demo_arguments, cli_demo
    from ingest.reports import add_cli_arguments as report_arguments, cli_report

    agent_arguments(command("agent", lambda a: cli_agent(_settings(a), a), "agent accounts and tokens"), [common])
    insurer_arguments(command("insurer", lambda a: cli_insurer_add(_settings(a), a), "insurer API clients (key shown once)"),
                      [common])
    report_arguments(command("report", lambda a: cli_report(_settings(a), a), "report figures for a period"))
    console_arguments(command("console", cmd_console, "the agent console (Textual)"))
    demo_arguments(command("demo", cli_demo, "throwaway daemon with simulated customers, and the console logged in"))

    quarantine = command("quarantine", cmd_quarantine, "messages that failed processing")
    q_sub = quarantine.add_subparsers(dest="action", required=True)
    q_list = q_sub.add_parser("list", parents=[common])
    q_list.add_argument("--json", action="store_true")
    q_list.add_argument("--all", action="store_true", help="include resolved entries")
    q_retry = q_sub.add_parser("retry", parents=[common])
    q_retry.add_argument("ids", nargs="*", type=int, help="inbox ids (default: all quarantined)")
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe that cannot show Persian (PYTHONIOENCODING=ascii, a cp1252 console)
        # gets \u escapes: a UnicodeEncodeError stopped `tickets list` half-way.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    configure_logging()  # until the configuration says otherwise
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
