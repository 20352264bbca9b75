"""The connector contract kit: behaviour every inbound connector must show, whatever its
protocol. A connector's test module subclasses `ConnectorContract`, says how to start a daemon
with the connector configured and how to deliver one message over the real protocol, and
inherits these tests unchanged.

    class TestSmtpContract(ConnectorContract):
        async def start(self, make_daemon): ...
        async def deliver(self, daemon, key: str) -> bool: ...   # True when the channel was acked
"""

from __future__ import annotations

from typing import Any

from ingest import queries
from ingest.daemon import Daemon


class ConnectorContract:
    channel: str = ""

    async def start(self, make_daemon: Any) -> Daemon:
        raise NotImplementedError

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        """Send one message whose channel id is derived from `key`; return whether the channel
        acknowledged it (SMTP 250, HTTP 2xx, websocket ack, Telegram offset advanced)."""
        raise NotImplementedError

    async def _messages(self, daemon: Daemon) -> list[dict[str, Any]]:
        found = []
        for ticket in await queries.list_tickets(daemon.store):
            detail = await queries.ticket_detail(daemon.store, ticket["reference"])
            found += [m for m in detail["messages"] if m["direction"] == "in"]
        return found

    async def test_contract_acknowledged_message_is_committed_and_complete(self, make_daemon: Any) -> None:
        daemon = await self.start(make_daemon)
        assert await self.deliver(daemon, "contract-1")
        await daemon.ingest.drained()
        (message,) = await self._messages(daemon)
        assert message["channel"] == self.channel
        assert message["sender"], "normalised record names its sender"
        assert message["channel_message_id"], "normalised record keeps the channel's own id"
        assert message["text"].strip(), "normalised record has the text"

    async def test_contract_redelivery_is_stored_once(self, make_daemon: Any) -> None:
        daemon = await self.start(make_daemon)
        assert await self.deliver(daemon, "contract-2")
        assert await self.deliver(daemon, "contract-2")
        await daemon.ingest.drained()
        assert len(await self._messages(daemon)) == 1
        (row,) = await daemon.store.fetchall("SELECT count(*) AS n FROM inbox")
        assert row["n"] == 1

    async def test_contract_no_ack_when_store_unavailable(self, make_daemon: Any) -> None:
        daemon = await self.start(make_daemon)
        await daemon.store.close()
        assert not await self.deliver(daemon, "contract-3"), "acknowledged a message that was not committed"
