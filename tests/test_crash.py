"""Crash safety: kill -9 the daemon while mail and webhooks are arriving; every message that got
250 (SMTP) or 200 (a webhook) is in the store exactly once after a restart, also when the channel
delivers it again."""

from __future__ import annotations

import http.client
import json
import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from ingest.daemon import YOUNGEST_GENERATION_THRESHOLD
from tests.conftest import write_config
from tests.mailgen import mail

ROOT = Path(__file__).resolve().parent.parent
TWILIO_ACCOUNT = "AC" + "c4" * 16
TWILIO_TOKEN = "crash-test-auth-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(config: Path, log: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("wb") if log else open(os.devnull, "wb") as stderr:  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT, env={**os.environ, **(env or {})},
        )


def child_pids(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def alive(pid: int) -> bool:
    try:  # a zombie has exited: only its parent's wait() is missing (the test runner reaps late)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_listening(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"daemon did not listen on {port}")


Send = Callable[[int, int], str | None]  # (sender thread, n) → the id acknowledged, or None


def kill_9_while_sending(config: Path, port: int, send: Send, env: dict[str, str] | None = None) -> list[str]:
    """Starts the daemon, has four threads send through `send` until 150 are acknowledged,
    kills it with SIGKILL mid-stream and checks its processes died with it; returns the ids
    the channel acknowledged."""
    daemon = start_daemon(config, env=env)
    wait_listening(port)
    acknowledged: list[str] = []
    stop = threading.Event()

    def sender(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if (acked := send(worker, n)) is not None:
                    acknowledged.append(acked)
            except (OSError, smtplib.SMTPException, http.client.HTTPException):
                return  # the daemon is gone; what was not acknowledged is the sender's to retry

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    children = child_pids(daemon.pid)
    assert children, "the daemon runs a normaliser process"
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 150, "too few messages went through before the kill"
    # Its processes end with it: none is left behind waiting for work that will never come.
    end = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < end:
        time.sleep(0.05)
    assert not [pid for pid in children if alive(pid)], "a process of the killed daemon outlived it"
    return acknowledged


def stored_after_restart(tmp_path: Path, config: Path, port: int, channel: str, env: dict[str, str] | None = None,
                         redeliver: Callable[[], None] | None = None) -> list[str]:
    """Restarts the daemon, lets it thread what was pending (and what `redeliver` sends again),
    stops it with SIGTERM; returns the channel ids of the inbound messages on its tickets."""
    restarted = start_daemon(config, log=tmp_path / "restarted.log", env=env)
    try:
        wait_listening(port)
        if redeliver is not None:
            redeliver()
        db = sqlite3.connect(tmp_path / "store.sqlite3")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pending = db.execute("SELECT count(*) FROM inbox WHERE state = 'pending'").fetchone()[0]
            if pending == 0:
                break
            time.sleep(0.1)
        stored = [row[0] for row in db.execute(
            "SELECT channel_message_id FROM messages WHERE direction = 'in' AND channel = ?", (channel,))]
        db.close()
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=20) == 0, "graceful stop on SIGTERM"
    return stored


def crash_config(tmp_path: Path, smtp_port: int, extra: str = "") -> Path:
    """The production default of a normaliser process, and a known SMTP port."""
    config = write_config(tmp_path, extra)
    text = config.read_text().replace("[smtp]\nhost = \"127.0.0.1\"\nport = 0", f"[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}")
    config.write_text(text.replace("normaliser_processes = 0", "normaliser_processes = 1"))
    return config


def test_kill_9_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    smtp_port = free_port()
    config = crash_config(tmp_path, smtp_port)

    def send(worker: int, n: int) -> str | None:
        mid = f"crash-{worker}-{n}@example.com"
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
            client.ehlo()
            client.mail("s@example.com")
            client.rcpt("claims@parvandeh.test")
            code, _ = client.data(mail(message_id=f"<{mid}>", subject=f"crash {mid}",
                                       body="متن پیام " * 400).as_bytes())  # parsed in the worker process
        return mid if code == 250 else None

    acknowledged = kill_9_while_sending(config, smtp_port, send)
    stored = stored_after_restart(tmp_path, config, smtp_port, "email")
    for mid in acknowledged:
        assert stored.count(mid) == 1, f"{mid} got 250 but is stored {stored.count(mid)} times"
    # Once started, the daemon exempts its start-up heap from full collections and collects
    # the youngest generation less often (latency).
    lines = [json.loads(line) for line in (tmp_path / "restarted.log").read_text().splitlines()]
    (frozen,) = [line for line in lines if line["event"] == "startup_heap_frozen"]
    assert frozen["objects"] > 10_000
    assert frozen["gc_thresholds"][0] == YOUNGEST_GENERATION_THRESHOLD
    (started,) = [line for line in lines if line["event"] == "daemon_started"]
    assert started["event_loop"] == "uvloop", "the default event loop"


def test_kill_9_loses_no_webhook_that_was_answered_200_and_redelivery_stores_none_twice(tmp_path: Path) -> None:
    http_port = free_port()
    config = crash_config(tmp_path, free_port(), f"""
[twilio]
account_sid = "{TWILIO_ACCOUNT}"
from_number = "+982191001234"
api_base_url = "http://127.0.0.1:9"
""")
    config.write_text(config.read_text().replace("[http]\nhost = \"127.0.0.1\"\nport = 0",
                                                 f"[http]\nhost = \"127.0.0.1\"\nport = {http_port}"))
    env = {"PARVANDEH_TWILIO_AUTH_TOKEN": TWILIO_TOKEN}
    url = f"http://127.0.0.1:{http_port}/webhooks/twilio/messages"
    validator = RequestValidator(TWILIO_TOKEN)

    def post(sid: str) -> int:
        params = {"MessageSid": sid, "AccountSid": TWILIO_ACCOUNT, "From": f"+98912{int(sid[-6:]) % 7:07d}",
                  "To": "+982191001234", "Body": f"خسارت بدنه {sid}", "NumMedia": "0"}
        connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        try:
            connection.request("POST", "/webhooks/twilio/messages", urlencode(params), {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": validator.compute_signature(url, params)})
            return connection.getresponse().status
        finally:
            connection.close()

    def send(worker: int, n: int) -> str | None:
        sid = f"SM{worker:02d}{n:030d}"
        return sid if post(sid) == 200 else None

    acknowledged = kill_9_while_sending(config, http_port, send, env)

    def redeliver() -> None:  # Twilio retries what it saw no answer for: here, everything it sent
        assert all(post(sid) == 200 for sid in acknowledged[-50:])

    stored = stored_after_restart(tmp_path, config, http_port, "sms", env, redeliver)
    for sid in acknowledged:
        assert stored.count(sid) == 1, f"{sid} was answered 200 but is stored {stored.count(sid)} times"


def test_serve_runs_on_the_stdlib_event_loop_when_configured(tmp_path: Path) -> None:
    smtp_port = free_port()
    config = write_config(tmp_path)
    text = config.read_text().replace("[smtp]\nhost = \"127.0.0.1\"\nport = 0", f"[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}")
    config.write_text(text.replace("[ingest]\n", '[ingest]\nevent_loop = "asyncio"\n'))
    daemon = start_daemon(config, log=tmp_path / "daemon.log")
    try:
        wait_listening(smtp_port)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
            client.send_message(mail(message_id="<loop@example.com>", subject="خسارت بدنه"))
        db = sqlite3.connect(tmp_path / "store.sqlite3")
        end = time.monotonic() + 20
        while not db.execute("SELECT count(*) FROM messages").fetchone()[0] and time.monotonic() < end:
            time.sleep(0.05)
        (subject,) = db.execute("SELECT subject FROM tickets").fetchone()
        db.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0, "graceful stop on SIGTERM"
    assert subject == "خسارت بدنه"
    lines = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()]
    (started,) = [line for line in lines if line["event"] == "daemon_started"]
    assert started["event_loop"] == "asyncio"
