"""The console that cannot log in exits non-zero with one line, never a traceback (review), in
the language `--lang`, else the configuration's `[console] language`, chooses."""

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


def console(scheme: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "console", "--url",
                           f"{scheme}://127.0.0.1:{closed_port()}", "--token", "pvd_x", *options],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL, check=False)


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_console_login_failure_exits_1_without_traceback(scheme: str) -> None:
    result = console(scheme, "--lang", "en")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "cannot log in to the agent API" in output and "Traceback" not in output


def test_console_login_failure_is_told_in_the_configured_language(tmp_path: Path) -> None:
    # The shipped configuration: Persian (--no-bidi: the line in logical order, as written).
    result = console("ws", "--no-bidi")
    assert result.returncode == 1 and "ورود به API کارشناسان ممکن نشد" in result.stdout + result.stderr
    english = tmp_path / "console.toml"
    english.write_text('[console]\nlanguage = "en"\n', encoding="utf-8")
    result = console("ws", "--config", str(english))
    assert result.returncode == 1 and "cannot log in to the agent API" in result.stdout + result.stderr
    english.write_text('[console]\nlanguage = "de"\n', encoding="utf-8")
    result = console("ws", "--config", str(english))
    assert result.returncode == 2 and "console.language = 'de': expected 'fa' or 'en'" in result.stderr
