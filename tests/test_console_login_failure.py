"""The console that cannot log in exits non-zero with one line, never a traceback (review)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_console_login_failure_exits_1_without_traceback(scheme: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "console", "--url",
                             f"{scheme}://127.0.0.1:{closed_port()}", "--token", "pvd_x"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "cannot log in to the agent API" in output and "Traceback" not in output
