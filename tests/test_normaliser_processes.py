"""The normaliser processes under real signals: Ctrl-C at the terminal, a process killed (kill -9,
the OOM killer), and a message whose normaliser ends the process (a plugin's C code crashing).
The daemon runs as `run.py serve`, mail arrives over SMTP."""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.conftest import write_config
from tests.mailgen import mail
from tests.test_crash import ROOT, alive, child_pids, free_port, wait_listening

PLUGIN = '''
"""A connector whose normaliser ends its process on one message, as a C extension's crash would.
At start it hands the daemon three payloads: mail, the poison, mail."""
import os
from datetime import UTC, datetime

from connectors.base import Connector, ConnectorSettings
from ingest.email_payload import normalise_mime
from ingest.records import RawPayload


def normalise(payload):
    if payload.body == b"poison":
        os._exit(3)
    return normalise_mime(payload)


class Settings(ConnectorSettings):
    pass


class CrashyConnector(Connector):
    kind = "crashy"
    Settings = Settings
    normalisers = {"crashy": normalise}

    async def start(self, sink):
        for key, body in (("before", MAIL % b"before"), ("poison", b"poison"), ("after", MAIL % b"after")):
            await sink.accept(RawPayload("crashy", self.name, key, "crashy", body, datetime.now(UTC)))

    async def stop(self):
        pass


MAIL = b"From: plugin@example.com\\r\\nMessage-ID: <%s@plugin.example.com>\\r\\nSubject: plugin\\r\\n\\r\\nbody\\r\\n"
'''


@contextlib.contextmanager
def serving(tmp_path: Path, *, extra_config: str = "", env: dict[str, str] | None = None,
            ) -> Iterator[tuple[subprocess.Popen, int]]:
    """`run.py serve` with one normaliser process, in a process group of its own (as a shell
    starts a job), its log in tmp_path/daemon.log; the group is killed if a test leaves it running."""
    smtp_port = free_port()
    config = write_config(tmp_path)
    text = config.read_text().replace("[smtp]\nhost = \"127.0.0.1\"\nport = 0", f"[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}")
    config.write_text(text.replace("normaliser_processes = 0", "normaliser_processes = 1") + extra_config)
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT, start_new_session=True,
                                  env={**os.environ, **(env or {})})
    try:
        wait_listening(smtp_port)
        yield daemon, smtp_port
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()


def send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(mail(message_id=f"<{subject.replace(' ', '-')}@example.com>", subject=subject))


def inbox_states(tmp_path: Path) -> dict[str, str]:
    """The channel's own id (Message-ID, the plugin's key) -> the inbox row's state."""
    db = sqlite3.connect(tmp_path / "store.sqlite3")
    try:
        return {key.rsplit(":", 1)[-1]: state for key, state in db.execute("SELECT dedupe_key, state FROM inbox")}
    finally:
        db.close()


def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def normaliser_pids(daemon: subprocess.Popen) -> list[int]:
    return [pid for pid in child_pids(daemon.pid)
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_ctrl_c_at_the_terminal_stops_the_daemon_and_its_processes_cleanly(tmp_path: Path) -> None:
    with serving(tmp_path) as (daemon, port):
        send(port, "first claim")
        until(lambda: inbox_states(tmp_path) == {"first-claim@example.com": "done"}, "the mail to be threaded")
        workers = normaliser_pids(daemon)
        assert workers, "the daemon runs a normaliser process"
        os.killpg(daemon.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        assert daemon.wait(timeout=30) == 0, "graceful stop on Ctrl-C"
    until(lambda: not any(alive(pid) for pid in workers), "the normaliser process to end", timeout=10)
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-2000:]
    assert '"daemon_stopped"' in log


def test_a_killed_normaliser_process_is_replaced_and_mail_goes_on_being_threaded(tmp_path: Path) -> None:
    with serving(tmp_path) as (daemon, port):
        send(port, "before the kill")
        until(lambda: inbox_states(tmp_path).get("before-the-kill@example.com") == "done", "the first mail")
        (worker,) = normaliser_pids(daemon)
        os.kill(worker, signal.SIGKILL)  # as the OOM killer would
        until(lambda: not alive(worker), "the normaliser process to die")
        for n in range(3):
            send(port, f"after the kill {n}")
        until(lambda: list(inbox_states(tmp_path).values()) == ["done"] * 4, "mail sent after the kill to be threaded")
        assert normaliser_pids(daemon) != [worker]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, "graceful stop on SIGTERM"
    log = (tmp_path / "daemon.log").read_text()
    assert '"normaliser_process_died"' in log


def test_a_message_that_kills_its_normaliser_is_quarantined_and_the_rest_threaded(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "crashy_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = plugin / "crashy_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crashy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[parvandeh.connectors]\ncrashy = crashy_plugin:CrashyConnector\n")
    with serving(tmp_path, extra_config="\n[crashy]\n",
                 env={"PYTHONPATH": os.pathsep.join([str(plugin), str(ROOT)])}) as (daemon, port):
        until(lambda: "pending" not in inbox_states(tmp_path).values() and len(inbox_states(tmp_path)) == 3,
              "the plugin's three payloads to be processed")
        send(port, "mail after the poison")
        until(lambda: inbox_states(tmp_path).get("mail-after-the-poison@example.com") == "done", "later mail")
        states = inbox_states(tmp_path)
        db = sqlite3.connect(tmp_path / "store.sqlite3")
        quarantined = db.execute("SELECT i.dedupe_key, q.error, q.traceback FROM quarantine q"
                                 " JOIN inbox i ON i.id = q.inbox_id").fetchall()
        db.close()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, "graceful stop on SIGTERM"
    assert states == {"before": "done", "poison": "quarantined", "after": "done",
                      "mail-after-the-poison@example.com": "done"}
    ((key, error, trace),) = quarantined
    assert key == "crashy:poison"
    assert error.startswith("NormaliserCrashed: the normaliser process died while preparing this message")
    assert "without a Python traceback" in trace
