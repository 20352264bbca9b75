"""check-config validates [agent_api] as serve does (review: set-up contract)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_check_config_refuses_a_bad_agent_api_table(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[agent_api]\nport = "abc"\nbogus = 1\n')
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "check-config", "--config", str(bad)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stdout
    assert "agent_api.port = 'abc': expected a valid integer" in result.stderr
    assert "agent_api.bogus" in result.stderr and "unknown key" in result.stderr
    assert "Traceback" not in result.stderr
