"""The operator's commands: check-config, tickets list/show, quarantine list/retry."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from datetime import UTC, datetime
from typing import Any

import pytest

from config.loader import ConfigError
from ingest.email_payload import email_dedupe_key
from ingest.records import RawPayload
from ingest.service import Ingest
from tests.conftest import settings_from, write_config
from tests.mailgen import mail
from tests.test_smtp import send

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "mail-spamscope"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_shipped_default_config_is_valid() -> None:
    result = run_cli("check-config")
    assert result.returncode == 0, result.stderr
    assert "smtp" in result.stdout


def test_bad_config_names_key_value_and_expectation(tmp_path: Path) -> None:
    path = write_config(tmp_path).read_text().replace('reference_prefix = "PV"', 'reference_prefix = "p-v"')
    bad = tmp_path / "bad.toml"
    bad.write_text(path + '\n[smtp_typo]\nx = 1\n')
    result = run_cli("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "claims.reference_prefix = 'p-v'" in result.stderr and "expected" in result.stderr
    assert "smtp_typo: unknown section" in result.stderr


def test_wrong_type_in_connector_table_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(write_config(tmp_path).read_text().replace('[smtp]\nhost = "127.0.0.1"\nport = 0',
                                                              '[smtp]\nhost = "127.0.0.1"\nport = "twenty-five"'))
    result = run_cli("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "smtp.port = 'twenty-five': expected a valid integer" in result.stderr


def test_an_unknown_event_loop_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(write_config(tmp_path).read_text().replace("[ingest]\n", '[ingest]\nevent_loop = "tokio"\n'))
    result = run_cli("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "ingest.event_loop = 'tokio': expected 'uvloop' or 'asyncio'" in result.stderr


def test_uvloop_chosen_but_not_installed_is_reported(tmp_path: Path, monkeypatch: Any) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"ingest\.event_loop = 'uvloop'.*uvloop is not installed.*event_loop = \"asyncio\""):
        settings_from(write_config(tmp_path), {})
    assert settings_from(write_config(tmp_path), {"PARVANDEH__INGEST__EVENT_LOOP": "asyncio"}).ingest.event_loop == "asyncio"


def test_environment_overrides_a_key(tmp_path: Path) -> None:
    settings = settings_from(write_config(tmp_path), {"PARVANDEH__SMTP__PORT": "2626"})
    ((kind, name, conf),) = [i for i in settings.connector_instances() if i[0] == "smtp"]
    assert conf.port == 2626


def test_a_bad_value_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    # The message names the file; the value is not in it, so the variable must be named too.
    with pytest.raises(ConfigError) as raised:
        settings_from(write_config(tmp_path), {"PARVANDEH__SMTP__PORT": "xyz", "PARVANDEH__CLAIMS__PREFIX": "PV"})
    assert "smtp.port = 'xyz' (from PARVANDEH__SMTP__PORT): expected a valid integer" in str(raised.value)
    assert "claims.prefix (from PARVANDEH__CLAIMS__PREFIX): unknown key" in str(raised.value)


def test_an_unknown_section_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    # The file has no [smpt]: without the variable's name the operator searches it in vain.
    with pytest.raises(ConfigError) as raised:
        settings_from(write_config(tmp_path), {"PARVANDEH__SMPT__PORT": "2526"})
    assert "smpt (from PARVANDEH__SMPT__PORT): unknown section; expected one of" in str(raised.value)


def test_serve_exits_1_naming_the_connector_when_one_cannot_start(tmp_path: Path) -> None:
    # The SMTP port is taken: the daemon must stop what it started and exit, not hang (its
    # store threads kept the process alive and deaf to SIGTERM).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path)
        config.write_text(config.read_text().replace('[smtp]\nhost = "127.0.0.1"\nport = 0',
                                                     f'[smtp]\nhost = "127.0.0.1"\nport = {port}'))
        result = subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1, result.stderr[-2000:]
    (failed,) = [json.loads(line) for line in result.stderr.splitlines() if "daemon_start_failed" in line]
    assert failed["error"].startswith("connector smtp (smtp) did not start")
    assert any(json.loads(line)["event"] == "daemon_stopped" for line in result.stderr.splitlines())


def test_an_installed_plugin_without_its_settings_model_is_skipped_not_fatal(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    (plugin / "bare_plugin-1.0.dist-info").mkdir(parents=True)
    (plugin / "bare_plugin.py").write_text(
        "from connectors.base import Connector\n\n"
        "class Bare(Connector):\n    kind = 'bare'\n\n"
        "    async def start(self, sink):\n        pass\n\n"
        "    async def stop(self):\n        pass\n")
    (plugin / "bare_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: bare-plugin\nVersion: 1.0\n")
    (plugin / "bare_plugin-1.0.dist-info" / "entry_points.txt").write_text("[parvandeh.connectors]\nbare = bare_plugin:Bare\n")
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "check-config", "--config", str(write_config(tmp_path))],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(ROOT)])})
    assert result.returncode == 0, result.stderr[-2000:]
    (skipped,) = [json.loads(line) for line in result.stderr.splitlines() if "connector_incomplete" in line]
    assert (skipped["entry_point"], skipped["missing"]) == ("bare", ["Settings (a ConnectorSettings subclass)"])


def test_agent_and_insurer_commands_take_config_after_the_action(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    added = run_cli("agent", "add", "sara", "--role", "agent", "--queues", "intake", "--config", config)
    assert added.returncode == 0, added.stderr
    listed = run_cli("agent", "list", "--config", config)
    assert listed.returncode == 0 and listed.stdout.startswith("sara"), listed.stderr
    insurer = run_cli("insurer", "add", "asia", "--webhook-url", "https://asia.example/hooks", "--config", config)
    assert insurer.returncode == 0, insurer.stderr
    assert "asia" in run_cli("insurer", "list", "--config", config).stdout


def test_insurer_add_warns_when_the_config_does_not_serve_the_insurer_api(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    added = run_cli("insurer", "add", "asia", "--config", str(config))
    assert added.returncode == 0 and added.stdout.startswith("api_key: "), added.stderr
    [warning] = [line for line in added.stderr.splitlines() if line.startswith("warning:")]
    assert "insurer API is not enabled" in warning and str(config) in warning and "[insurer_api]" in warning
    assert "asia" in run_cli("insurer", "list", "--config", str(config)).stdout
    served = write_config(tmp_path, "[insurer_api]\n")  # the same store, now serving the API
    added = run_cli("insurer", "add", "dana", "--config", str(served))
    assert added.returncode == 0 and "warning:" not in added.stderr, added.stderr


def test_an_agent_for_an_unknown_queue_is_refused_naming_the_configured_ones(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    added = run_cli("agent", "add", "sara", "--queues", "intake,inatke", "--config", config)
    assert added.returncode == 2 and "unknown queue inatke; configured queues: " in added.stderr, added.stderr
    assert "intake" in added.stderr.rsplit(":", 1)[1]
    assert "sara" not in run_cli("agent", "list", "--config", config).stdout


def test_reading_a_store_that_is_not_there_says_so_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("store.sqlite3", "typo/store.sqlite3"))
    for command in (("tickets", "list"), ("quarantine", "list")):
        result = run_cli(*command, "--config", str(config))
        assert result.returncode == 2 and "no store at" in result.stderr, (command, result.stderr)
    assert not (tmp_path / "typo").exists()


def test_an_unknown_status_filter_is_refused_naming_the_statuses(tmp_path: Path) -> None:
    result = run_cli("tickets", "list", "--status", "bogus", "--config", str(write_config(tmp_path)))
    assert result.returncode == 2 and "invalid choice: 'bogus'" in result.stderr and "'awaiting_documents'" in result.stderr


async def test_tickets_list_and_show_print_json(make_daemon: Any, tmp_path: Path) -> None:
    daemon = await make_daemon()
    msg = mail(subject="تصادف در اتوبان", body="سلام")
    msg.add_attachment(b"%PDF-1.4 police report", maintype="application", subtype="pdf", filename="گزارش.pdf")
    await send(daemon, msg)
    await daemon.ingest.drained()
    config = str(tmp_path / "parvandeh.toml")
    listed = await asyncio.to_thread(run_cli, "tickets", "list", "--json", "--config", config)
    assert listed.returncode == 0, listed.stderr
    (ticket,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert ticket["subject"] == "تصادف در اتوبان" and ticket["channels"] == ["email"]
    assert ticket["contact"]["identity"] == "ali@example.com"
    shown = await asyncio.to_thread(run_cli, "tickets", "show", ticket["reference"], "--json", "--config", config)
    detail = json.loads(shown.stdout)
    first = detail["messages"][0]
    assert first["direction"] == "in" and first["attachments"][0]["filename"] == "گزارش.pdf"
    assert len(first["attachments"][0]["sha256"]) == 64
    # On a stdout that cannot show Persian, escapes rather than a crash half-way through.
    ascii_out = await asyncio.to_thread(lambda: subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "tickets", "list", "--config", config], capture_output=True,
        text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONIOENCODING": "ascii"}))
    assert ascii_out.returncode == 0, ascii_out.stderr[-1000:]
    assert "\\u062a\\u0635\\u0627\\u062f\\u0641" in ascii_out.stdout  # تصادف
    # A blank reply would mail the customer an empty message: refused, nothing queued.
    blank = await asyncio.to_thread(run_cli, "tickets", "reply", ticket["reference"], "--text", "   ", "--config", config)
    assert blank.returncode == 1 and "the reply is empty" in blank.stderr
    assert await daemon.store.fetchall("SELECT id FROM outbox WHERE automatic = 0") == []


async def test_tickets_show_and_reply_take_the_reference_as_written_in_persian_or_lower_case(
        make_daemon: Any, tmp_path: Path) -> None:
    # The insurer API and mail subjects accept "PV-۱۴۰۵-…" and "pv-…"; the operator's own
    # commands answered "no ticket" for a reference copied from a Persian acknowledgement.
    daemon = await make_daemon()
    await send(daemon, mail(subject="تصادف", body="سلام"))
    await daemon.ingest.drained()
    config = str(tmp_path / "parvandeh.toml")
    (row,) = await daemon.store.fetchall("SELECT ref FROM tickets")
    ref = row["ref"]
    persian = ref.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    for written in (persian, ref.lower()):
        shown = await asyncio.to_thread(run_cli, "tickets", "show", written, "--json", "--config", config)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["reference"] == ref
    replied = await asyncio.to_thread(run_cli, "tickets", "reply", persian, "--text", "سلام", "--config", config)
    assert replied.returncode == 0, replied.stderr
    assert len(await daemon.store.fetchall("SELECT id FROM outbox WHERE automatic = 0")) == 1
    missing = await asyncio.to_thread(run_cli, "tickets", "show", "PV-1405-999999", "--config", config)
    assert missing.returncode == 1 and "no ticket PV-1405-999999" in missing.stderr


async def test_tickets_show_text_lists_attachments_and_marks_automatic_mail(make_daemon: Any, tmp_path: Path) -> None:
    # The text form left out what --json holds: a file that came, one dropped for its size (and
    # why, which --json did not say either), a message that was an auto-reply.
    daemon = await make_daemon(environ={"PARVANDEH__CLAIMS__MAX_ATTACHMENT_BYTES": "1000"})
    msg = mail(subject="تصادف در اتوبان", body="سلام \x1b[2J")
    msg.add_attachment(b"%PDF-1.4 police report", maintype="application", subtype="pdf", filename="گزارش.pdf")
    msg.add_attachment(b"x" * 2000, maintype="video", subtype="mp4", filename="dashcam.mp4")
    await send(daemon, msg)
    await daemon.ingest.drained()
    (row,) = await daemon.store.fetchall("SELECT ref FROM tickets")
    away = (f"From: ali@example.com\r\nTo: claims@parvandeh.test\r\nSubject: Out of office Re: [{row['ref']}]\r\n"
            "Message-ID: <away@example.com>\r\nAuto-Submitted: auto-replied\x1b[31m\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nI am away\r\n").encode()
    assert (await send(daemon, away))[0] == 250
    await daemon.ingest.drained()
    config = tmp_path / "parvandeh.toml"  # the daemon's limit, for the CLI
    config.write_text(config.read_text().replace("[claims]\n", "[claims]\nmax_attachment_bytes = 1000\n"))

    shown = await asyncio.to_thread(run_cli, "tickets", "show", row["ref"], "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    digest = (await daemon.store.fetchone("SELECT sha256 FROM attachments WHERE filename = 'گزارش.pdf'"))["sha256"]
    assert f"  + گزارش.pdf  application/pdf  22 bytes  sha256 {digest[:12]}\n" in shown.stdout
    assert "  + dashcam.mp4  video/mp4  2000 bytes  (not kept: over the 1000-byte limit)\n" in shown.stdout
    # The reason is the sender's Auto-Submitted value: shown, but its escape made inert.
    assert "ali@example.com  [automatic: auto-submitted:auto-replied␛[31m]\nI am away" in shown.stdout
    assert "سلام ␛[2J" in shown.stdout and "\x1b" not in shown.stdout
    detail = json.loads((await asyncio.to_thread(run_cli, "tickets", "show", row["ref"], "--json",
                                                 "--config", str(config))).stdout)
    attachments = {a["filename"]: a for a in detail["messages"][0]["attachments"]}
    assert attachments["dashcam.mp4"]["sha256"] is None
    assert attachments["dashcam.mp4"]["not_kept"] == "over the 1000-byte limit"
    assert attachments["گزارش.pdf"]["not_kept"] is None


def test_an_attachment_without_bytes_says_why_when_the_store_tells() -> None:
    from run import _not_kept

    limit = 25 * 2**20
    assert _not_kept({"sha256": None, "remote_ref": None, "size": limit + 1}, limit) == "over the 25 MiB limit"
    # An insurer's document named without content or link: no bytes, and nothing says why.
    assert _not_kept({"sha256": None, "remote_ref": None, "size": 0}, limit) == "reason not recorded"
    assert _not_kept({"sha256": None, "remote_ref": "file-id", "size": None}, limit) is None  # still to fetch


async def test_tickets_list_refuses_an_unknown_queue_naming_the_configured_ones(make_daemon: Any, tmp_path: Path) -> None:
    # A mistyped queue listed nothing, exactly as an empty one does.
    daemon = await make_daemon()
    await send(daemon, mail(subject="تصادف", body="سلام"))
    await daemon.ingest.drained()
    config = str(tmp_path / "parvandeh.toml")
    wrong = await asyncio.to_thread(run_cli, "tickets", "list", "--queue", "intkae", "--config", config)
    assert wrong.returncode == 2 and wrong.stdout == "", wrong.stderr
    assert "--queue: unknown queue intkae; configured queues: intake" in wrong.stderr
    right = await asyncio.to_thread(run_cli, "tickets", "list", "--queue", "intake", "--config", config)
    assert right.returncode == 0 and len(right.stdout.splitlines()) == 1, right.stderr
    # A queue taken out of the configuration still lists the tickets left in it.
    await daemon.store.write(lambda tx: tx.execute("UPDATE tickets SET queue = 'retired'"))
    retired = await asyncio.to_thread(run_cli, "tickets", "list", "--queue", "retired", "--config", config)
    assert retired.returncode == 0 and len(retired.stdout.splitlines()) == 1, retired.stderr


async def test_quarantine_list_shows_each_unthreaded_automatic_mail(make_daemon: Any, tmp_path: Path) -> None:
    # Only a count was printed: which bounce, from whom, about what, the operator could not tell.
    daemon = await make_daemon()
    bounce = mail(sender="Mail Delivery System <MAILER-DAEMON@mx.example.net>",
                  subject="Undelivered Mail Returned to Sender \x1b[31m", body="could not deliver",
                  headers={"Auto-Submitted": "auto-replied"})
    assert (await send(daemon, bounce))[0] == 250
    await daemon.ingest.drained()
    (row,) = await daemon.store.fetchall("SELECT id FROM inbox WHERE state = 'unthreaded'")
    config = str(tmp_path / "parvandeh.toml")
    listed = await asyncio.to_thread(run_cli, "quarantine", "list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith(f"#{row['id']} ")]
    assert line.startswith(f"#{row['id']} email/smtp ") and line.endswith(
        " unthreaded: mailer-daemon@mx.example.net  Undelivered Mail Returned to Sender ␛[31m")
    assert "1 automatic messages kept unthreaded" in listed.stdout
    (entry,) = json.loads((await asyncio.to_thread(run_cli, "quarantine", "list", "--json",
                                                   "--config", config)).stdout)["unthreaded"]
    assert (entry["inbox_id"], entry["sender"]) == (row["id"], "mailer-daemon@mx.example.net")
    assert entry["subject"] == "Undelivered Mail Returned to Sender \x1b[31m"  # JSON escapes it


async def test_unprocessable_message_is_quarantined_listed_and_retried(make_daemon: Any, tmp_path: Path) -> None:
    daemon = await make_daemon()
    # A payload whose normaliser is missing (its connector plugin was uninstalled) cannot be
    # processed: it must be kept and shown, then replayed once the plugin is back.
    ingest_without_mime = Ingest(daemon.store, daemon.blobs, {}, daemon.ingest.context)
    await ingest_without_mime.start()
    raw = (CORPUS / "mail_test_1").read_bytes()
    await ingest_without_mime.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw, datetime.now(UTC)))
    await ingest_without_mime.drained()
    await ingest_without_mime.stop()
    await daemon.stop()

    config = str(tmp_path / "parvandeh.toml")
    listed = await asyncio.to_thread(run_cli, "quarantine", "list", "--json", "--config", config)
    (entry,) = json.loads(listed.stdout)["quarantined"]
    assert "no normaliser" in entry["error"] and entry["channel"] == "email"
    retried = await asyncio.to_thread(run_cli, "quarantine", "retry", "--config", config)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 processed" in retried.stdout
    after = await asyncio.to_thread(run_cli, "quarantine", "list", "--json", "--config", config)
    assert json.loads(after.stdout)["quarantined"] == []
    listed = await asyncio.to_thread(run_cli, "tickets", "list", "--json", "--config", config)
    assert len(listed.stdout.splitlines()) == 1
    again = await asyncio.to_thread(run_cli, "quarantine", "retry", str(entry["inbox_id"]), "--config", config)
    assert again.returncode == 1 and f"not quarantined (nothing to retry): {entry['inbox_id']}" in again.stderr


async def test_every_corpus_mail_is_stored_or_quarantined_never_lost(make_daemon: Any) -> None:
    daemon = await make_daemon()
    files = sorted(CORPUS.iterdir())
    for path in files:
        code, _ = await send(daemon, path.read_bytes())
        assert code == 250, path.name
    await daemon.ingest.drained()
    rows = await daemon.store.fetchall("SELECT state FROM inbox")
    # Every corpus mail is distinct: each one got 250, so each must have its row, processed.
    assert len(rows) == len(files)
    assert {row["state"] for row in rows} <= {"done", "quarantined", "unthreaded"}


async def test_a_payload_the_worker_cannot_parse_is_quarantined_alone_with_its_traceback(make_daemon: Any) -> None:
    daemon = await make_daemon("", environ={"PARVANDEH__INGEST__NORMALISER_PROCESSES": "1"})
    good = [mail(subject=f"پیام {i}", body="متن " * (1 + 900 * (i % 2)), message_id=f"<mail-{i}@example.com>").as_bytes()
            for i in range(5)]  # small and large: with a normaliser process, all are parsed there
    headless = b"\x00 not a mail header line at all\r\n"  # no headers
    raws = [*good[:2], headless, *good[2:]]
    # Accepted together, so they reach the normaliser process in one call.
    await asyncio.gather(*(daemon.ingest.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw,
                                                           datetime.now(UTC))) for raw in raws))
    await daemon.ingest.drained()
    rows = await daemon.store.fetchall("SELECT channel_message_id FROM messages WHERE direction = 'in'")
    assert {r["channel_message_id"] for r in rows} == {f"mail-{i}@example.com" for i in range(5)}
    (entry,) = await daemon.store.fetchall("SELECT error, traceback FROM quarantine")
    assert entry["error"].startswith("MalformedMessage: no header lines")
    # The worker's own traceback came along, as the cause: the small payload was parsed there.
    assert "RemoteTraceback" in entry["traceback"] and "parse_email" in entry["traceback"]


async def test_threading_writes_in_flight_stay_bounded_and_all_complete(make_daemon: Any, monkeypatch: Any) -> None:
    import ingest.service

    monkeypatch.setattr(ingest.service, "MAX_INFLIGHT", 3)
    daemon = await make_daemon()
    in_flight: list[int] = []
    submit = daemon.store.submit

    def counting_submit(op: Any, *, background: bool = False) -> Any:
        if background:
            in_flight.append(len(daemon.ingest._inflight))  # those already handed over
        return submit(op, background=background)

    monkeypatch.setattr(daemon.store, "submit", counting_submit)
    raws = [mail(subject=f"پیام {i}", message_id=f"<bound-{i}@example.com>").as_bytes() for i in range(40)]
    await asyncio.gather(*(daemon.ingest.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw,
                                                           datetime.now(UTC))) for raw in raws))
    await asyncio.wait_for(daemon.ingest.drained(), 30)
    assert daemon.ingest.processed == 40
    assert max(in_flight) == 2  # the bound was reached (3 with this one) and never passed


async def _watch_queue(monkeypatch: Any) -> list[int]:
    """MAX_QUEUED set to 4; returns the in-memory queue's length after each read-back."""
    import ingest.service

    monkeypatch.setattr(ingest.service, "MAX_QUEUED", 4)
    lengths: list[int] = []
    refill = ingest.service.Ingest._refill

    async def watched(self: Ingest) -> None:
        await refill(self)
        lengths.append(self._queue.qsize())

    monkeypatch.setattr(ingest.service.Ingest, "_refill", watched)
    return lengths


async def _threaded_inbox_ids(daemon: Any) -> list[int]:
    rows = await daemon.store.fetchall("SELECT inbox_id FROM messages WHERE direction = 'in' ORDER BY id")
    return [row["inbox_id"] for row in rows]


async def test_a_burst_past_the_memory_bound_waits_in_the_inbox_and_keeps_its_order(
        make_daemon: Any, monkeypatch: Any) -> None:
    lengths = await _watch_queue(monkeypatch)
    daemon = await make_daemon()
    raws = [mail(subject=f"موج {i}", message_id=f"<burst-{i}@example.com>").as_bytes() for i in range(40)]
    await asyncio.gather(*(daemon.ingest.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw,
                                                           datetime.now(UTC))) for raw in raws))
    await asyncio.wait_for(daemon.ingest.drained(), 30)
    threaded = await _threaded_inbox_ids(daemon)
    assert len(threaded) == 40 and threaded == sorted(threaded)  # each once, in arrival order
    assert lengths and max(lengths) <= 4  # read back from the inbox, never more than the bound held


async def test_a_backlog_found_at_start_is_read_back_a_little_at_a_time(
        tmp_path: Path, make_daemon: Any, monkeypatch: Any) -> None:
    from ingest.apply import insert_inbox
    from ingest.store import Store

    store = Store(tmp_path / "store.sqlite3")  # where make_daemon's config keeps it
    await store.open()
    for i in range(30):  # accepted by a daemon that died before threading any of them
        raw = mail(subject=f"مانده {i}", message_id=f"<backlog-{i}@example.com>").as_bytes()
        await store.write(insert_inbox(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw,
                                                  datetime.now(UTC))))
    await store.close()
    lengths = await _watch_queue(monkeypatch)
    daemon = await make_daemon()
    await asyncio.wait_for(daemon.ingest.drained(), 30)
    threaded = await _threaded_inbox_ids(daemon)
    assert threaded == list(range(1, 31))
    assert len(lengths) >= 8 and max(lengths) <= 4


async def test_stopping_finishes_what_waits_in_the_inbox_too(make_daemon: Any, monkeypatch: Any) -> None:
    lengths = await _watch_queue(monkeypatch)
    daemon = await make_daemon()
    raws = [mail(subject=f"پایان {i}", message_id=f"<stop-{i}@example.com>").as_bytes() for i in range(30)]
    await asyncio.gather(*(daemon.ingest.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw,
                                                           datetime.now(UTC))) for raw in raws))
    await asyncio.wait_for(daemon.ingest.stop(), 30)  # "finish what was accepted so far, then stop"
    assert lengths  # some of it was read back from the inbox on the way
    assert await _threaded_inbox_ids(daemon) == list(range(1, 31))
    pending = await daemon.store.fetchall("SELECT id FROM inbox WHERE state = 'pending'")
    assert pending == []


async def test_a_failed_read_back_leaves_its_messages_pending_and_the_rest_flowing(
        make_daemon: Any, monkeypatch: Any) -> None:
    from connectors.base import StoreUnavailable

    await _watch_queue(monkeypatch)
    daemon = await make_daemon()
    fetchall = daemon.store.fetchall
    failures: list[str] = []

    async def failing_once(sql: str, params: Any = ()) -> Any:
        if "IN (" in sql and not failures:  # the first read-back, as if the disk had hiccupped
            failures.append(sql)
            raise StoreUnavailable("read failed")
        return await fetchall(sql, params)

    monkeypatch.setattr(daemon.store, "fetchall", failing_once)
    raws = [mail(subject=f"خطا {i}", message_id=f"<hiccup-{i}@example.com>").as_bytes() for i in range(14)]
    await asyncio.gather(*(daemon.ingest.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw,
                                                           datetime.now(UTC))) for raw in raws))
    await asyncio.wait_for(daemon.ingest.drained(), 30)
    assert failures
    threaded = await _threaded_inbox_ids(daemon)
    pending = [row["id"] for row in await fetchall("SELECT id FROM inbox WHERE state = 'pending'")]
    # Those whose read failed wait, durable, for the next start; everything after them went on.
    assert len(pending) == 4 and sorted(threaded + pending) == list(range(1, 15))
