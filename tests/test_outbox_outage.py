"""A relay that is down for a quarter of an hour (maintenance, a network cut) must not make the
replies queued meanwhile fail for good: they are retried until it is back; an outage of more
than a day does end in a failure the agent sees."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.mailgen import mail
from tests.test_smtp import send


async def outage(daemon: Any, now: list[datetime], length: timedelta) -> dict[str, Any]:
    """Let the outbox try, jumping the clock to each next attempt, until `length` has passed."""
    end = now[0] + length
    row: dict[str, Any] = {}
    attempts = -1
    while now[0] < end:
        for _ in range(500):  # the attempt due now is made and recorded
            (found,) = await daemon.store.fetchall("SELECT state, attempts, next_attempt_at, last_error FROM outbox")
            row = dict(found)
            if row["state"] == "pending" and row["attempts"] != attempts or row["state"] == "failed":
                break
            daemon.outbox.wake()
            await asyncio.sleep(0.01)
        if row["state"] == "failed":
            return row
        attempts = row["attempts"]
        now[0] = max(now[0], datetime.fromisoformat(row["next_attempt_at"]))
        daemon.outbox.wake()
    return row


async def test_replies_outlive_a_fifteen_minute_relay_outage(make_daemon: Any) -> None:
    now = [datetime(2026, 11, 29, 8, 0, tzinfo=UTC)]
    daemon = await make_daemon(outbound_port=1, clock=lambda: now[0])  # port 1: connection refused
    await send(daemon, mail(subject="need help"))  # its acknowledgement is queued
    await daemon.ingest.drained()
    row = await outage(daemon, now, timedelta(minutes=15))
    assert row["state"] == "pending", (
        f"after a 15-minute outage the reply is {row['state']} after {row['attempts']} attempts: {row['last_error']}")


async def test_a_relay_down_for_more_than_a_day_fails_the_reply_visibly(make_daemon: Any) -> None:
    now = [datetime(2026, 11, 29, 8, 0, tzinfo=UTC)]
    daemon = await make_daemon(outbound_port=1, clock=lambda: now[0])
    await send(daemon, mail(subject="need help"))
    await daemon.ingest.drained()
    row = await outage(daemon, now, timedelta(hours=30))
    assert row["state"] == "failed" and "Connection refused" in row["last_error"]
    events = await daemon.store.fetchall("SELECT kind FROM events WHERE kind = 'delivery_failed'")
    assert len(events) == 1
