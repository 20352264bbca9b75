"""The connector SDK as an operator meets it: a package of their own, outside our tree, registered
through the `parvandeh.connectors` entry point group, tested with the installed contract kit from
its own directory (pytest-asyncio in its default strict mode, none of our conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import pytest

from config.loader import Settings
from connectors.base import Connector, ConnectorContext, ConnectorSettings
from ingest.daemon import apply_context
from tests.test_crash import ROOT

CONNECTOR = '''
"""A JSON webhook channel: POST /webhooks/acme with X-Acme-Token, {"id", "from", "text"}."""
import hmac
import json
from datetime import UTC, datetime

from aiohttp import web

from config.loader import ConfigError, secret_from_env
from connectors.base import Connector, ConnectorSettings
from connectors.http_front import HttpError
from ingest.records import Identity, InboundMessage, RawPayload


def normalise(payload):
    data = json.loads(payload.body)
    return InboundMessage(channel="acme", channel_message_id=data["id"], sender=Identity("acme", data["from"]),
                          text=data["text"], conversation_key=f"acme:{data['from']}")


class AcmeSettings(ConnectorSettings):
    token_env: str = "ACME_TOKEN"


class AcmeConnector(Connector):
    kind = "acme"
    Settings = AcmeSettings
    normalisers = {"acme-json": normalise}

    async def start(self, sink):
        self._sink = sink
        self._token = secret_from_env(self.settings.token_env)
        if not self._token:
            raise ConfigError(f"[{self.name}]: environment variable {self.settings.token_env} is not set")
        self.context.http_app.router.add_post("/webhooks/acme", self._on_message)

    async def stop(self):
        pass

    async def _on_message(self, request):
        if not hmac.compare_digest(request.headers.get("X-Acme-Token", ""), self._token):
            raise HttpError(403, "forbidden", "wrong X-Acme-Token")
        body = await request.read()
        await self._sink.accept(RawPayload("acme", self.name, json.loads(body)["id"], "acme-json", body,
                                           datetime.now(UTC)))
        return web.json_response({"ok": True})
'''

TESTS = '''
import json

import aiohttp

from connectors.testing import ConnectorContract


class TestAcmeContract(ConnectorContract):
    channel = "acme"
    config = "[acme]\\n"
    secrets = {"ACME_TOKEN": "t0ken"}

    async def deliver(self, daemon, key):
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{daemon.http_port}/webhooks/acme",
                                    data=json.dumps({"id": key, "from": "u1", "text": f"hello {key}"}),
                                    headers={"X-Acme-Token": "t0ken"}) as response:
                return response.status == 200
'''

START_FAILS = '''
import pytest

from ingest.daemon import StartError


@pytest.mark.asyncio
async def test_a_secret_not_exported_fails_the_start(make_daemon, monkeypatch):
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    with pytest.raises(StartError, match="ACME_TOKEN is not set"):
        await make_daemon("[acme]\\n")
'''


def operator_package(tmp_path: Path, tests: dict[str, str]) -> Path:
    """The plugin as `pip install` leaves it (module + dist-info with its entry point), and its
    own test directory with the conftest the guide shows."""
    site = tmp_path / "site"
    (site / "parvandeh_acme-1.0.dist-info").mkdir(parents=True)
    (site / "parvandeh_acme.py").write_text(CONNECTOR)
    (site / "parvandeh_acme-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: parvandeh-acme\nVersion: 1.0\n")
    (site / "parvandeh_acme-1.0.dist-info" / "entry_points.txt").write_text(
        "[parvandeh.connectors]\nacme = parvandeh_acme:AcmeConnector\n")
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")  # pytest-asyncio strict mode
    (project / "tests" / "conftest.py").write_text('pytest_plugins = ["connectors.testing"]\n')
    for name, text in tests.items():
        (project / "tests" / name).write_text(textwrap.dedent(text))
    return site


def run_operator_tests(tmp_path: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, timeout=90, cwd=tmp_path / "project",
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])})


def test_an_operators_own_package_passes_the_contract_kit_from_its_own_directory(tmp_path: Path) -> None:
    result = run_operator_tests(tmp_path, operator_package(tmp_path, {"test_acme.py": TESTS}))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 passed, 1 skipped" in result.stdout  # it only receives: no replies_sent()


def test_a_daemon_whose_start_failed_is_stopped_at_teardown(tmp_path: Path) -> None:
    # Left running (store threads, the store lock), it kept the test process alive for ever.
    result = run_operator_tests(tmp_path, operator_package(tmp_path, {"test_start.py": START_FAILS}))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 passed" in result.stdout


IMPOSTOR = '''
from connectors.base import Connector, ConnectorSettings


class Settings(ConnectorSettings):
    pass


def steal(payload):
    raise RuntimeError("a plugin's normaliser got a Twilio payload")


class Impostor(Connector):
    kind = "impostor"
    Settings = Settings
    normalisers = {"twilio-message": steal}

    async def start(self, sink):
        pass

    async def stop(self):
        pass
'''

REGISTRY = '''
import json, sys
sys.path.insert(0, sys.argv[1]) if sys.argv[2] == "first" else sys.path.append(sys.argv[1])
from structlog.testing import capture_logs
from connectors.registry import connector_classes, normalisers
with capture_logs() as logs:
    classes = connector_classes()
print(json.dumps({"twilio": classes["twilio"].__module__, "impostor": "impostor" in classes,
                  "twilio-message": normalisers()["twilio-message"].__module__,
                  "logs": [(e["event"], e["entry_point"]) for e in logs]}))
'''


@pytest.mark.parametrize("order", ["first", "last"])
def test_a_plugin_cannot_take_a_shipped_connectors_name_or_payload_format(tmp_path: Path, order: str) -> None:
    # Which plugin's entry points come first is the order of sys.path and of directory listings:
    # a plugin named `twilio`, or claiming the `twilio-message` format, must lose either way.
    site = tmp_path / "site"
    (site / "parvandeh_impostor-1.0.dist-info").mkdir(parents=True)
    (site / "parvandeh_impostor.py").write_text(IMPOSTOR)
    (site / "parvandeh_impostor-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: parvandeh-impostor\nVersion: 1.0\n")
    (site / "parvandeh_impostor-1.0.dist-info" / "entry_points.txt").write_text(
        "[parvandeh.connectors]\ntwilio = parvandeh_impostor:Impostor\nimpostor = parvandeh_impostor:Impostor\n")
    result = subprocess.run([sys.executable, "-c", REGISTRY, str(site), order], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert found["twilio"] == "connectors.twilio.connector"
    assert found["twilio-message"] == "connectors.twilio.inbound"
    assert not found["impostor"]
    assert sorted(found["logs"]) == [["connector_format_taken", "impostor"], ["connector_name_taken", "twilio"]]


class TwoLineSettings(ConnectorSettings):
    channel: str = "sms"


class TwoLineConnector(Connector):
    """A plugin sending on two channels whose table picks one with `channel`, as the guide says."""

    kind = "twoline"
    Settings = TwoLineSettings
    sends = frozenset({"sms", "fax"})
    normalisers: ClassVar[dict] = {}

    async def start(self, sink: object) -> None: ...

    async def stop(self) -> None: ...


def test_a_channel_key_narrows_a_plugin_instance_for_replies_as_check_config_judges_it() -> None:
    # `ConnectorSettings.channels` narrowed the instance for check-config only: the daemon chose reply
    # connectors from the class's `sends`, so a [twoline] table with channel = "fax" listed first
    # took the SMS replies of a contact who never wrote through it.
    fax_only = TwoLineConnector("fax1", TwoLineSettings(channel="fax"), ConnectorContext())
    assert fax_only.sends == {"fax"}
    assert TwoLineConnector.sends == {"sms", "fax"}  # the class keeps every channel it can send on
    ctx = apply_context(Settings(), {"fax1": fax_only, "sms1": TwoLineConnector("sms1", TwoLineSettings(),
                                                                                ConnectorContext())})
    assert ctx.reply_connectors == {"fax": "fax1", "sms": "sms1"}
    assert ctx.sending_connectors == {"fax1": {"fax"}, "sms1": {"sms"}}
