"""An insurer's API key can be revoked: replaced by a new one, or the client deactivated; the
old key is refused at once (before, a leaked key could only be stopped by editing the store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ingest.insurers import rotate_insurer_key, set_insurer_active
from tests.test_insurer_api import Api, api, receiver  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


async def test_rotating_the_key_refuses_the_old_one_and_accepts_the_new(api: Api) -> None:
    daemon = api.daemon  # type: ignore[attr-defined]
    assert (await api.call("GET", "/claims"))[0] == 200
    old = api.keys["asia"]
    api.keys["asia"] = await daemon.store.write(rotate_insurer_key("asia"))
    assert (await api.call("GET", "/claims"))[0] == 200
    api.keys["stale"] = old
    assert (await api.call("GET", "/claims", "stale"))[0] == 401


async def test_a_deactivated_insurer_is_refused(api: Api) -> None:
    daemon = api.daemon  # type: ignore[attr-defined]
    await daemon.store.write(set_insurer_active("asia", False))
    assert (await api.call("GET", "/claims"))[0] == 401
    await daemon.store.write(set_insurer_active("asia", True))
    assert (await api.call("GET", "/claims"))[0] == 200


async def test_cli_rotate_key_prints_a_new_key_once(api: Api, tmp_path: Path) -> None:
    config = tmp_path / "parvandeh.toml"
    done = subprocess.run([sys.executable, "run.py", "--config", str(config), "insurer", "rotate-key", "asia"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    new_key = done.stdout.strip().removeprefix("api_key: ")
    stale, api.keys["asia"] = api.keys["asia"], new_key
    assert (await api.call("GET", "/claims"))[0] == 200
    api.keys["stale"] = stale
    assert (await api.call("GET", "/claims", "stale"))[0] == 401
