"""Insurer API clients: one per insurer, with an API key (shown once, stored as its SHA-256)
and a webhook URL plus the secret our webhooks to it are signed with.

Tenant isolation lives here too: every read an insurer client makes goes through
`claim_ticket_for`, which answers None for a claim of another insurer, exactly as for a claim
that does not exist (so the API says 404 and leaks nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from config.policies import INSURER_NAME
from ingest.agents import hash_token
from ingest.claims_ops import API_CHANNEL
from ingest.store import Store, Tx

KEY_PREFIX = "pvi_"


class InsurerError(ValueError):
    """An insurer-client operation asked for something impossible (duplicate name, bad URL...)."""


@dataclass(frozen=True, slots=True)
class InsurerClient:
    name: str
    display_name: str
    webhook_url: str
    webhook_secret: str


@dataclass(frozen=True, slots=True)
class NewInsurer:
    """What `insurer add` prints once: the key and webhook secret are not shown again."""

    name: str
    api_key: str
    webhook_secret: str


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise InsurerError(f"webhook URL {url!r}: expected an absolute http(s) URL")
    return url


def create_insurer(name: str, webhook_url: str = "", display_name: str = "", *,
                   api_key: str | None = None, webhook_secret: str | None = None) -> Callable[[Tx], NewInsurer]:
    """A new insurer client. `name` is what tickets carry in their `insurer` column and what
    routing rules and SLA policies match on."""
    if not INSURER_NAME.fullmatch(name):
        raise InsurerError(f"insurer name {name!r}: expected lower-case letters, digits, '-' or '_'")
    check_webhook_url(webhook_url)
    key = api_key or new_api_key()
    secret = webhook_secret or secrets.token_urlsafe(32)

    def op(tx: Tx) -> NewInsurer:
        if tx.one("SELECT 1 FROM insurer_clients WHERE name = ?", (name,)):
            raise InsurerError(f"insurer {name!r} already exists")
        tx.execute(
            "INSERT INTO insurer_clients (name, display_name, api_key_sha256, webhook_url, webhook_secret, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (name, display_name or name, hash_token(key), webhook_url, secret, tx.stamp),
        )
        return NewInsurer(name, key, secret)

    return op


def rotate_insurer_key(name: str) -> Callable[[Tx], str]:
    """A new API key for the insurer; the old one stops working with this write (a key that
    leaked, or an employee who left). Returns the new key, to be shown once."""
    key = new_api_key()

    def op(tx: Tx) -> str:
        if tx.execute("UPDATE insurer_clients SET api_key_sha256 = ? WHERE name = ?",
                      (hash_token(key), name)).rowcount == 0:
            raise InsurerError(f"no insurer {name!r}")
        return key

    return op


def set_insurer_webhook(name: str, webhook_url: str | None, *, new_secret: bool = False) -> Callable[[Tx], str | None]:
    """Point the insurer's webhooks at another URL (None keeps it; "" stops them), and with
    `new_secret` sign them with a new secret, returned to be shown once. Both hold from the next
    delivery attempt on, queued retries included: `send` reads the client at every attempt."""
    if webhook_url is not None:
        check_webhook_url(webhook_url)
    secret = secrets.token_urlsafe(32) if new_secret else None

    def op(tx: Tx) -> str | None:
        if tx.execute("UPDATE insurer_clients SET webhook_url = coalesce(?, webhook_url),"
                      " webhook_secret = coalesce(?, webhook_secret) WHERE name = ?",
                      (webhook_url, secret, name)).rowcount == 0:
            raise InsurerError(f"no insurer {name!r}")
        return secret

    return op


def set_insurer_active(name: str, active: bool) -> Callable[[Tx], None]:
    """Deactivate an insurer client (its key is refused and no webhooks go to it), or reactivate it."""

    def op(tx: Tx) -> None:
        if tx.execute("UPDATE insurer_clients SET active = ? WHERE name = ?", (int(active), name)).rowcount == 0:
            raise InsurerError(f"no insurer {name!r}")

    return op


def _client(row: Any) -> InsurerClient:
    return InsurerClient(row["name"], row["display_name"], row["webhook_url"], row["webhook_secret"])


async def insurer_for_key(store: Store, api_key: str) -> InsurerClient | None:
    """The active client holding this key; None for an unknown or deactivated one."""
    row = await store.fetchone(
        "SELECT name, display_name, webhook_url, webhook_secret FROM insurer_clients"
        " WHERE api_key_sha256 = ? AND active = 1",
        (hash_token(api_key),),
    )
    return _client(row) if row else None


async def insurer_by_name(store: Store, name: str) -> InsurerClient | None:
    row = await store.fetchone(
        "SELECT name, display_name, webhook_url, webhook_secret FROM insurer_clients WHERE name = ? AND active = 1",
        (name,),
    )
    return _client(row) if row else None


async def list_insurers(store: Store) -> list[dict[str, Any]]:
    rows = await store.fetchall(
        "SELECT name, display_name, webhook_url, active, created_at,"
        " (SELECT count(*) FROM tickets t WHERE t.insurer = c.name) AS claims FROM insurer_clients c ORDER BY name"
    )
    return [dict(row) for row in rows]


async def claim_ticket_for(store: Store, insurer: str, ref: str) -> int | None:
    """The ticket id of claim `ref` when it belongs to `insurer`; None otherwise (isolation)."""
    row = await store.fetchone("SELECT id FROM tickets WHERE ref = ? AND insurer = ?", (ref, insurer))
    return row["id"] if row else None


# -- CLI ----------------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser, common: list[argparse.ArgumentParser]) -> None:
    """`insurer add|list|rotate-key|set-webhook|deactivate|activate` arguments, for run.py's `insurer` sub-command."""
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", parents=common, help="create an insurer API client; prints its API key and webhook secret once")
    add.add_argument("name")
    add.add_argument("--webhook-url", default="", help="where status and SLA webhooks are POSTed")
    add.add_argument("--display-name", default="")
    sub.add_parser("list", parents=common, help="insurer clients and their claim counts")
    rotate = sub.add_parser("rotate-key", parents=common,
                            help="replace an insurer's API key (the old one is refused at once); prints the new one once")
    rotate.add_argument("name")
    webhook = sub.add_parser("set-webhook", parents=common,
                             help="change where an insurer's webhooks go, or the secret they are signed with")
    webhook.add_argument("name")
    webhook.add_argument("--webhook-url", default=None, help='the new URL ("" stops the webhooks)')
    webhook.add_argument("--new-secret", action="store_true", help="sign with a new secret; prints it once")
    for action, text in (("deactivate", "refuse the insurer's key and stop its webhooks"),
                         ("activate", "accept the insurer's key again")):
        sub.add_parser(action, parents=common, help=text).add_argument("name")


def api_not_served_warning(settings: Any) -> str | None:
    """Why a key just made may work nowhere: the config has no `[insurer_api]` table, so a daemon
    started with it does not serve the API, and the operator would learn it from the insurer's
    first 404. Only a warning: another config on the same store may well serve it."""
    if settings.connectors.get("insurer_api"):
        return None
    return (f"the insurer API is not enabled in {settings.source}: it has no [insurer_api] table, so a daemon"
            " started with this config does not serve the API and the key cannot be used against it;"
            " to enable it, add an [insurer_api] table (even empty: it serves /api/v1 on the [http] port;"
            " its keys are in the README, section \"Insurer B2B API\")")


def cli_insurer_add(settings: Any, args: argparse.Namespace) -> int:
    """Run `insurer add|list|rotate-key|set-webhook|deactivate|activate`; keys and secrets are
    printed exactly once. Returns the exit status."""

    async def work() -> int:
        store = Store(settings.store.path, synchronous=settings.store.synchronous)
        await store.open()
        try:
            action = getattr(args, "action", "add")
            if action == "list":
                for c in await list_insurers(store):
                    state = "" if c["active"] else "  (deactivated)"
                    print(f"{c['name']:<16} {c['display_name']:<24} {c['claims']:>6} claims  {c['webhook_url'] or '-'}{state}")
                return 0
            if action == "rotate-key":
                print(f"api_key: {await store.write(rotate_insurer_key(args.name))}")
                return 0
            if action == "set-webhook":
                if args.webhook_url is None and not args.new_secret:
                    print("set-webhook: give --webhook-url, --new-secret or both", file=sys.stderr)
                    return 2
                secret = await store.write(set_insurer_webhook(args.name, args.webhook_url, new_secret=args.new_secret))
                print(f"webhook_secret: {secret}" if secret else f"{args.name}: webhook URL set")
                return 0
            if action in ("deactivate", "activate"):
                await store.write(set_insurer_active(args.name, action == "activate"))
                print(f"{args.name}: {action}d")
                return 0
            made = await store.write(create_insurer(args.name, args.webhook_url, args.display_name))
            print(f"api_key: {made.api_key}\nwebhook_secret: {made.webhook_secret}")
            if warning := api_not_served_warning(settings):
                print(f"warning: {warning}", file=sys.stderr)
            return 0
        except InsurerError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(work())


# -- what an insurer client reads ---------------------------------------------------------------

# Timeline kinds an insurer sees, and data keys that never leave (agent names, internal rows).
# Migration 7's trigger moves `tickets.insurer_changed_at` (the claim's `updated_at` here) on
# these kinds, `sla_*` and queue_changed: a kind added here is added there too.
_PUBLIC_EVENTS = frozenset({"ticket_created", "claim_filed", "status_changed", "message_received",
                            "outbound_queued", "priority_changed", "merged_from", "merged_into"})
_PRIVATE_KEYS = frozenset({"actor", "author", "message_row", "outbox_id", "automatic", "matched_by"})
_CLAIM_COLUMNS = (
    "t.id, t.ref, t.status, t.queue, t.priority, t.line_of_business, t.subject, t.created_at,"
    " t.insurer_changed_at AS changed_at, t.closed_at, c.claim_number, c.details"
)


def _is_public(kind: str) -> bool:
    return kind in _PUBLIC_EVENTS or kind.startswith("sla_")


def _summary(row: Any) -> dict[str, Any]:
    return {
        "reference": row["ref"], "insurer_claim_number": row["claim_number"], "status": row["status"],
        "team": row["queue"], "priority": row["priority"], "line_of_business": row["line_of_business"],
        "created_at": row["created_at"], "updated_at": row["changed_at"], "closed_at": row["closed_at"],
    }


async def _sla_state(store: Store, ticket_id: int) -> list[dict[str, Any]]:
    """SLA clocks when the SLA engine's table exists (a store without it shows none)."""
    exists = await store.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sla_clocks'")
    if not exists:
        return []
    rows = await store.fetchall(
        "SELECT kind, policy, state, started_at, due_at, met_at, breached_at FROM sla_clocks WHERE ticket_id = ?"
        " ORDER BY started_at, kind", (ticket_id,))
    return [dict(row) for row in rows]


def _author(channel: str, direction: str) -> str:
    if direction == "out":
        return "adjuster"
    return "insurer" if channel == API_CHANNEL else "policyholder"


async def claim_view(store: Store, insurer: str, ref: str) -> dict[str, Any] | None:
    """The claim as its insurer sees it: status, team, SLA, the public timeline and the thread
    without internal notes. None for a claim that is not this insurer's."""
    row = await store.fetchone(
        f"SELECT {_CLAIM_COLUMNS} FROM tickets t LEFT JOIN insurer_claims c ON c.ticket_id = t.id"
        " WHERE t.ref = ? AND t.insurer = ?", (ref, insurer))
    if row is None:
        return None
    events = await store.fetchall("SELECT at, kind, data FROM events WHERE ticket_id = ? ORDER BY id", (row["id"],))
    messages = await store.fetchall(
        "SELECT id, direction, channel, sender, display_text, created_at FROM messages"
        " WHERE ticket_id = ? AND kind != 'note' AND direction != 'internal' ORDER BY id", (row["id"],))
    # The events of messages it does not see (a supervisor's SLA notice is queued as an internal
    # message) are not on its timeline either.
    hidden = {m["id"] for m in await store.fetchall(
        "SELECT id FROM messages WHERE ticket_id = ? AND (kind = 'note' OR direction = 'internal')", (row["id"],))}
    view = _summary(row)
    view["details"] = json.loads(row["details"]) if row["details"] else {}
    view["sla"] = await _sla_state(store, row["id"])
    view["timeline"] = [
        {"at": e["at"], "kind": e["kind"], "data": {k: v for k, v in data.items() if k not in _PRIVATE_KEYS}}
        for e in events if _is_public(e["kind"]) and (data := json.loads(e["data"])).get("message_row") not in hidden
    ]
    view["messages"] = [
        {"id": m["id"], "at": m["created_at"], "direction": m["direction"], "channel": m["channel"],
         "from": _author(m["channel"], m["direction"]),
         "text": m["display_text"]}
        for m in messages
    ]
    return view


async def list_claims(store: Store, insurer: str, *, status: str | None = None, updated_since: str | None = None,
                      after: tuple[str, int] | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    """This insurer's claims, least recently changed first, and the cursor of the next page (None
    on the last). "Changed" is what the insurer sees change (`insurer_changed_at`, migration 7):
    an SLA warning or breach moves it, an assignment does not. The cursor is the last claim's
    (changed instant, id): claims committed in one write share their instant, so that alone
    would skip the rest of such a group; a claim that changes while a client pages moves past
    the cursor, to be listed again, never before it."""
    where, params = ["t.insurer = ?"], [insurer]
    if status:
        where.append("t.status = ?")
        params.append(status)
    if updated_since:
        where.append("t.insurer_changed_at > ?")
        params.append(updated_since)
    if after:
        where.append("(t.insurer_changed_at > ? OR (t.insurer_changed_at = ? AND t.id > ?))")
        params += [after[0], after[0], after[1]]
    rows = await store.fetchall(
        f"SELECT {_CLAIM_COLUMNS} FROM tickets t LEFT JOIN insurer_claims c ON c.ticket_id = t.id"
        f" WHERE {' AND '.join(where)} ORDER BY t.insurer_changed_at, t.id LIMIT ?", (*params, limit))
    cursor = page_cursor(rows[-1]["changed_at"], rows[-1]["id"]) if len(rows) == limit else None
    return [_summary(row) for row in rows], cursor


def page_cursor(changed_at: str, ticket_id: int) -> str:
    """Opaque to clients: they hand it back as `cursor`. Cursors handed out before migration 7
    held `updated_at` in the same format; they still page on, the changed instant being never
    earlier than `updated_at`."""
    return base64.urlsafe_b64encode(f"{changed_at}|{ticket_id}".encode()).decode().rstrip("=")


def read_page_cursor(cursor: str) -> tuple[str, int]:
    """(changed instant, ticket id) of a `page_cursor`; ValueError when it is not one."""
    try:
        changed_at, _, ticket_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
        datetime.fromisoformat(changed_at)
        number = int(ticket_id)
        if not 0 <= number < 2**63:  # beyond SQLite's INTEGER the query itself would fail (a 500)
            raise ValueError(ticket_id)
        return changed_at, number
    except ValueError:  # bad base64 and bad UTF-8 are ValueErrors too
        raise ValueError("not a cursor this API gave") from None
