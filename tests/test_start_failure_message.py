"""A start failure the operator can fix is one clear log line, not a traceback (review)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "p.sqlite3"}"\nattachments_dir = "{tmp_path / "att"}"\n'
                      f'[agent_api]\nport = 0\n[ingest]\nnormaliser_processes = 0\n{text}')
    environ = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PARVANDEH")}
    environ.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=90, cwd=ROOT, env=environ)


def failure(result: subprocess.CompletedProcess[str]) -> dict:
    (line,) = [json.loads(x) for x in result.stderr.splitlines() if "daemon_start_failed" in x]
    return line


def test_an_unset_secret_is_named_without_a_traceback(tmp_path: Path) -> None:
    result = serve(tmp_path, '[http]\nport = 0\n[telegram]\ntoken_env = "PV_TEST_UNSET_TOKEN"\n')
    assert result.returncode == 1
    line = failure(result)
    assert "PV_TEST_UNSET_TOKEN" in line["error"]
    assert "exception" not in line and "Traceback" not in result.stderr


def test_the_http_port_in_use_is_named_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path, f'[http]\nport = {port}\n')
    assert result.returncode == 1
    line = failure(result)
    assert line["error"].startswith(f"[http] host/port 127.0.0.1:{port}")
    assert "exception" not in line and "Traceback" not in result.stderr


def test_an_unwritable_store_path_is_named_without_a_traceback(tmp_path: Path) -> None:
    """Refused with the configuration's checks, before anything starts (the daemon's own
    `[store] path` start failure remains for a directory that changes in between)."""
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the store's directory should be
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{blocker / "sub" / "p.sqlite3"}"\n[http]\nport = 0\n[agent_api]\nport = 0\n'
                      '[ingest]\nnormaliser_processes = 0\n')
    environ = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PARVANDEH")}
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=90, cwd=ROOT, env=environ)
    assert result.returncode == 2
    assert result.stderr.startswith(f"configuration error: store.path = '{blocker / 'sub' / 'p.sqlite3'}': {blocker}"
                                    " is not a directory")
    assert "daemon_started" not in result.stderr and "Traceback" not in result.stderr
