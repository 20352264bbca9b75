"""check-config says which secrets serve needs that the environment lacks (review)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TELEGRAM = '[[telegram]]\nname = "telegram"\ntoken_env = "PV_TEST_TG_TOKEN"\n\n[calls]\npbx = true\ntwilio_voice = false\n'


def check(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "c.toml"
    path.write_text(TELEGRAM)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PARVANDEH", "PV_TEST"))} | env
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=environ)


def test_unset_secrets_are_named(tmp_path: Path) -> None:
    result = check(tmp_path, {})
    assert result.returncode == 0
    assert "telegram.token_env: environment variable PV_TEST_TG_TOKEN is not set" in result.stderr
    assert "calls.secret_env: environment variable PARVANDEH_CALLS_SECRET is not set" in result.stderr
    assert "PARVANDEH_TWILIO_AUTH_TOKEN" not in result.stderr  # twilio_voice = false


def test_no_warning_when_the_secrets_are_exported(tmp_path: Path) -> None:
    result = check(tmp_path, {"PV_TEST_TG_TOKEN": "1:x", "PARVANDEH_CALLS_SECRET": "s"})
    assert result.returncode == 0 and "warning" not in result.stderr
