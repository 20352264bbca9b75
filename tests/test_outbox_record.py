"""A reply the relay accepted while the store refused the write recording it: once the store
takes writes again the row is recorded as sent, not left 'sending' (and resent at the next start)."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from connectors.standins.smtp_sink import SmtpSink
from ingest import queries
from ingest.apply import agent_reply
from tests.conftest import refuse_writes
from tests.mailgen import mail
from tests.test_smtp import send


async def test_a_delivery_recorded_late_is_recorded_without_a_restart(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    try:
        daemon = await make_daemon(outbound_port=sink.port)
        await send(daemon, mail(subject="need help"))
        await sink.wait_for(1)  # the acknowledgement
        (ticket,) = await queries.list_tickets(daemon.store)
        relay = daemon.outbox.connectors["outbound_smtp"]
        real_send = relay.send

        async def send_then_disk_trouble(outbound: Any) -> Any:
            result = await real_send(outbound)
            await refuse_writes(daemon, True)  # the write recording the delivery fails
            return result

        relay.send = send_then_disk_trouble
        with capture_logs() as logs:
            await daemon.store.write(agent_reply(ticket["reference"], "بررسی می‌کنیم.", "agent1", daemon.ingest.context))
            daemon.outbox.wake()
            for _ in range(500):
                if any(e["event"] == "outbound_result_not_recorded" for e in logs):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the result write was not refused")
        relay.send = real_send
        await refuse_writes(daemon, False)
        for _ in range(1000):
            rows = await daemon.store.fetchall("SELECT state FROM outbox ORDER BY id")
            if [r["state"] for r in rows] == ["sent", "sent"]:
                break
            await asyncio.sleep(0.02)
        assert [r["state"] for r in rows] == ["sent", "sent"], "the delivered reply is still not recorded as sent"
        assert len(await sink.wait_for(2)) == 2
        await asyncio.sleep(0.5)
        assert len(sink.received) == 2, "the reply was delivered twice"
    finally:
        await sink.stop()
