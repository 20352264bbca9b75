"""Crash safety: kill -9 the daemon while mail is arriving; every message that got 250 is in
the store exactly once after a restart."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import write_config
from tests.mailgen import mail

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )


def wait_listening(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"daemon did not listen on {port}")


def test_kill_9_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    smtp_port = free_port()
    config = write_config(tmp_path)
    text = config.read_text().replace("[smtp]\nhost = \"127.0.0.1\"\nport = 0", f"[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}")
    config.write_text(text.replace("normaliser_processes = 0", "normaliser_processes = 1"))
    daemon = start_daemon(config)
    wait_listening(smtp_port)

    acknowledged: list[str] = []
    stop = threading.Event()

    def sender(worker: int) -> None:
        n = 0
        while not stop.is_set():
            mid = f"crash-{worker}-{n}@example.com"
            n += 1
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
                    client.ehlo()
                    client.mail("s@example.com")
                    client.rcpt("claims@parvandeh.test")
                    code, _ = client.data(mail(message_id=f"<{mid}>", subject=f"crash {mid}",
                                               body="متن پیام " * 400).as_bytes())  # parsed in the worker process
                if code == 250:
                    acknowledged.append(mid)
            except (OSError, smtplib.SMTPException):
                return  # the daemon is gone; unacknowledged mail is the sender's to retry

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 150, "too few messages went through before the kill"

    restarted = start_daemon(config)
    try:
        wait_listening(smtp_port)
        db = sqlite3.connect(tmp_path / "store.sqlite3")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pending = db.execute("SELECT count(*) FROM inbox WHERE state = 'pending'").fetchone()[0]
            if pending == 0:
                break
            time.sleep(0.1)
        stored = [row[0] for row in db.execute(
            "SELECT channel_message_id FROM messages WHERE direction = 'in' AND channel = 'email'")]
        db.close()
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=20) == 0, "graceful stop on SIGTERM"
    for mid in acknowledged:
        assert stored.count(mid) == 1, f"{mid} got 250 but is stored {stored.count(mid)} times"
