"""Misspelt policy keys and sections are refused by name, not ignored (review: set-up contract)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize(("text", "named"), [
    ('[[workflow.rule]]\nname = "x"\nwhen = { event = "message_received" }\nthen = [{ action = "add_tag", tag = "x" }]\n',
     "workflow.rule: unknown key"),
    ('[[agents]]\nname = "maryam"\nrole = "agent"\n', "agents: unknown section"),
    ('[sla]\nsupervisor_emial = "boss@example.ir"\n', "sla.supervisor_emial: unknown key"),
])
def test_a_misspelt_policy_key_is_an_error(tmp_path: Path, text: str, named: str) -> None:
    result = check(tmp_path, text)
    assert result.returncode == 2, result.stdout
    assert named in result.stderr
    assert "Extra inputs" not in result.stderr
