"""[calls] with the PBX secret but no Twilio token says how to run PBX-only (review)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(tmp_path: Path, calls: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "p.sqlite3"}"\nattachments_dir = "{tmp_path / "att"}"\n'
                      f'[http]\nport = 0\n[agent_api]\nport = 0\n[ingest]\nnormaliser_processes = 0\n{calls}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARVANDEH")}
    env["PARVANDEH_CALLS_SECRET"] = "s3cret"
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=90, cwd=ROOT, env=env)


def test_pbx_only_firm_is_told_to_turn_twilio_voice_off(tmp_path: Path) -> None:
    result = serve(tmp_path, "[calls]\n")
    assert result.returncode == 1
    (line,) = [json.loads(x) for x in result.stderr.splitlines() if "daemon_start_failed" in x]
    assert "PARVANDEH_TWILIO_AUTH_TOKEN" in line["error"] and "twilio_voice = false" in line["error"]
