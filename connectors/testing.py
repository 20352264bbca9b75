"""The connector contract kit, for our connectors' tests and for an operator's own package: the
behaviour every inbound connector must show, whatever its protocol, and the `make_daemon`
fixture it runs on (a daemon on loopback with ephemeral ports, stopped at teardown). It is a
pytest plugin; an external package's `conftest.py` loads it with

    pytest_plugins = ["connectors.testing"]

and its test module subclasses `ConnectorContract`, says how to configure the connector and how
to deliver one message over the real protocol, and inherits the tests unchanged:

    class TestKavenegarContract(ConnectorContract):
        channel = "sms"
        config = '[kavenegar]\\nsender = "10004346"\\n'
        secrets = {"PARVANDEH_KAVENEGAR_API_KEY": "test-key"}

        async def deliver(self, daemon, key: str) -> bool: ...   # True when the channel was acked

Implement `replies_sent` too (what a stand-in of the channel received) and the kit checks that an
agent's reply leaves through the connector and is recorded; without it that test is skipped.
The tests are marked for pytest-asyncio, so they run in its strict mode (its default) as well as
in auto mode. See docs/connectors.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from config.loader import Settings, load_settings
from connectors.registry import settings_schemas
from ingest import queries
from ingest.apply import agent_reply
from ingest.daemon import Daemon

CONTRACT_WAIT_SECONDS = 10.0


def write_config(tmp_path: Path, extra: str = "", *, outbound_port: int = 1) -> Path:
    """A config for tests: store under tmp_path, SMTP on an ephemeral port, HTTP on port 0."""
    path = tmp_path / "parvandeh.toml"
    path.write_text(
        f"""
[store]
path = "{tmp_path / 'store.sqlite3'}"
attachments_dir = "{tmp_path / 'attachments'}"

[claims]
reference_prefix = "PV"
own_addresses = ["claims@parvandeh.test"]

[http]
host = "127.0.0.1"
port = 0

[agent_api]
host = "127.0.0.1"
port = 0

[ingest]
# Parse in-process: a spawned worker per test daemon would cost a second each. The crash test
# and the benchmarks run the production default (a worker process).
normaliser_processes = 0

[smtp]
host = "127.0.0.1"
port = 0

[outbound_smtp]
host = "127.0.0.1"
port = {outbound_port}
from_address = "claims@parvandeh.test"
{extra}
""",
        encoding="utf-8",
    )
    return path


def settings_from(path: Path, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(path, environ=environ or {}, connector_schemas=settings_schemas())


@pytest_asyncio.fixture
async def make_daemon(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `daemon = await make_daemon(extra_toml)`; every daemon is stopped at teardown.
    `environ` feeds `PARVANDEH__SECTION__KEY` overrides; secrets (`*_env` keys) are read from the
    process environment (monkeypatch.setenv, or the contract's `secrets`)."""
    made: list[Daemon] = []

    async def factory(extra: str = "", *, outbound_port: int = 1, environ: dict[str, str] | None = None,
                      **kwargs: Any) -> Daemon:
        settings = settings_from(write_config(tmp_path, extra, outbound_port=outbound_port), environ)
        daemon = Daemon(settings, **kwargs)
        # Kept before it starts: a start that fails (a connector's bug, a secret not exported)
        # leaves what did start running, the store lock held, and the test process hanging.
        made.append(daemon)
        await daemon.start()
        return daemon

    yield factory
    for daemon in reversed(made):
        await daemon.stop()  # also when a test closed its store: connectors must stop polling


class ConnectorContract:
    """Subclass as `Test…Contract`. Set `channel` (what the normalised record says), `config` (the
    connector's TOML table) and `secrets` (environment variables its `*_env` keys name), or
    override `start` for more; implement `deliver`."""

    channel: ClassVar[str] = ""
    config: ClassVar[str] = ""
    secrets: ClassVar[dict[str, str]] = {}

    @pytest.fixture(autouse=True)
    def _contract_secrets(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.secrets.items():
            monkeypatch.setenv(name, value)

    async def start(self, make_daemon: Any) -> Daemon:
        """A started daemon with the connector configured."""
        if not self.config:
            raise NotImplementedError(f"{type(self).__name__}: set `config` (the connector's table) or override start()")
        return await make_daemon(self.config)

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        """Send one message whose channel id is derived from `key`; return whether the channel
        acknowledged it (SMTP 250, HTTP 2xx, websocket ack, Telegram offset advanced)."""
        raise NotImplementedError

    async def replies_sent(self, daemon: Daemon) -> list[str] | None:
        """The texts the channel has received from the connector's `send` so far (what its
        stand-in recorded), or None: this contract does not check sending (a connector that only
        receives, or no stand-in)."""
        return None

    async def _messages(self, daemon: Daemon) -> list[dict[str, Any]]:
        found = []
        for ticket in await queries.list_tickets(daemon.store):
            detail = await queries.ticket_detail(daemon.store, ticket["reference"])
            found += [m for m in detail["messages"] if m["direction"] == "in"]
        return found

    @pytest.mark.asyncio
    async def test_contract_acknowledged_message_is_committed_and_complete(self, make_daemon: Any) -> None:
        daemon = await self.start(make_daemon)
        assert await self.deliver(daemon, "contract-1")
        await daemon.ingest.drained()
        (message,) = await self._messages(daemon)
        assert message["channel"] == self.channel
        assert message["sender"], "normalised record names its sender"
        assert message["channel_message_id"], "normalised record keeps the channel's own id"
        assert message["text"].strip(), "normalised record has the text"

    @pytest.mark.asyncio
    async def test_contract_redelivery_is_stored_once(self, make_daemon: Any) -> None:
        daemon = await self.start(make_daemon)
        assert await self.deliver(daemon, "contract-2")
        assert await self.deliver(daemon, "contract-2")
        await daemon.ingest.drained()
        assert len(await self._messages(daemon)) == 1
        (row,) = await daemon.store.fetchall("SELECT count(*) AS n FROM inbox")
        assert row["n"] == 1

    @pytest.mark.asyncio
    async def test_contract_reply_leaves_through_this_connector_and_is_recorded(self, make_daemon: Any) -> None:
        daemon = await self.start(make_daemon)
        if await self.replies_sent(daemon) is None:
            pytest.skip("replies_sent() is not implemented: sending is not checked")
        assert await self.deliver(daemon, "contract-4")
        await daemon.ingest.drained()
        (ticket,) = await queries.list_tickets(daemon.store)
        ref, text = ticket["reference"], "contract reply: پرونده شما ثبت شد"
        await daemon.store.write(agent_reply(ref, text, "agent:contract", daemon.ingest.context))
        try:
            async with asyncio.timeout(CONTRACT_WAIT_SECONDS):
                while True:
                    detail = await queries.ticket_detail(daemon.store, ref)
                    (reply,) = [m for m in detail["messages"] if m["direction"] == "out" and m["text"] == text]
                    if reply["channel_message_id"]:  # recorded once send() reported it delivered
                        break
                    await asyncio.sleep(0.02)
        except TimeoutError:
            outcomes = [e for e in detail["timeline"] if e["kind"].startswith("delivery_")]
            pytest.fail(f"the reply was not delivered within {CONTRACT_WAIT_SECONDS} s; the timeline says {outcomes}")
        assert reply["channel"] == self.channel, "answered on the channel the customer wrote on"
        assert text in (await self.replies_sent(daemon) or []), "the channel received the reply"

    @pytest.mark.asyncio
    async def test_contract_no_ack_when_store_unavailable(self, make_daemon: Any) -> None:
        daemon = await self.start(make_daemon)
        await daemon.store.close()
        assert not await self.deliver(daemon, "contract-3"), "acknowledged a message that was not committed"
