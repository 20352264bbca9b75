"""An unreadable configuration file is a configuration error, not a traceback (review)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kind", ["directory", "latin1"])
def test_check_config_on_an_unreadable_file_exits_2_without_a_traceback(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path, expected = tmp_path, "is a directory"
    else:
        path, expected = tmp_path / "c.toml", "not UTF-8"
        path.write_bytes('[claims]\nown_addresses = ["caf\u00e9@example.ir"]\n'.encode("latin-1"))
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr and str(path) in result.stderr
