"""An insurer's API key can be revoked: replaced by a new one, or the client deactivated; the
old key is refused at once (before, a leaked key could only be stopped by editing the store).
Likewise its webhook URL and signing secret can be changed (`insurer set-webhook`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from connectors.http_front import verify_hmac_sha256
from ingest.apply import change_status
from ingest.insurers import rotate_insurer_key, set_insurer_active
from tests.test_insurer_api import Api, Receiver, api, filing, receiver, until  # noqa: F401

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


async def test_cli_set_webhook_points_webhooks_at_a_new_url_signed_with_a_new_secret(
        api: Api, receiver: Receiver, tmp_path: Path) -> None:
    """dana was added without a webhook URL; its integrators build an endpoint later (and a leaked
    secret must be replaceable): before `set-webhook`, only editing the store could do either."""
    receiver.fail_first = 0
    daemon = api.daemon  # type: ignore[attr-defined]
    config = tmp_path / "parvandeh.toml"

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [sys.executable, "run.py", "--config", str(config), "insurer", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    refused = await cli("set-webhook", "dana", "--webhook-url", "ftp://dana.example/hooks")
    assert refused.returncode == 1 and "expected an absolute http(s) URL" in refused.stderr
    done = await cli("set-webhook", "dana", "--webhook-url", receiver.url, "--new-secret")
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().removeprefix("webhook_secret: ")
    assert len(secret) > 30
    _, _, claim = await api.call("POST", "/claims", "dana", body=filing("DANA-9"))
    await daemon.store.write(change_status(claim["reference"], "awaiting_documents", "maryam"))
    await until(lambda: any(json.loads(b)["type"] == "claim.status_changed" for _, b in receiver.received))
    headers, body = next((h, b) for h, b in receiver.received if json.loads(b)["type"] == "claim.status_changed")
    assert json.loads(body)["claim"]["reference"] == claim["reference"]
    signed = f"{headers['X-Parvandeh-Timestamp']}.".encode() + body
    assert verify_hmac_sha256(secret, signed, headers["X-Parvandeh-Signature"])
    assert not verify_hmac_sha256("whsec-dana", signed, headers["X-Parvandeh-Signature"])
    assert (await cli("set-webhook", "nobody", "--new-secret")).returncode == 1
