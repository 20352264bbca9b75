"""A relay that is down for a quarter of an hour (maintenance, a network cut) must not make the
replies queued meanwhile fail for good: they are retried until it is back; an outage of more
than a day does end in a failure the agent sees."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.standins.smtp_sink import SmtpSink
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


async def test_a_retry_is_not_held_back_by_a_clock_stepped_back(make_daemon: Any) -> None:
    """An NTP correction puts the wall clock ten minutes back after a failed attempt: the retry
    still comes after its five seconds (of monotonic time), not ten minutes later."""
    now = [datetime(2026, 11, 29, 8, 0, tzinfo=UTC)]
    sink = await SmtpSink(reply="451 4.3.0 try again later").start()
    try:
        daemon = await make_daemon(outbound_port=sink.port, clock=lambda: now[0])
        ticks = [time.monotonic()]
        daemon.outbox.monotonic = lambda: ticks[0]
        await send(daemon, mail(subject="need help"))  # its acknowledgement is queued, and refused
        await daemon.ingest.drained()
        for _ in range(500):
            (row,) = await daemon.store.fetchall("SELECT state, attempts, next_attempt_at FROM outbox")
            if row["state"] == "pending" and row["attempts"] == 1:
                break
            await asyncio.sleep(0.01)
        wait = datetime.fromisoformat(row["next_attempt_at"]) - now[0]
        assert timedelta(seconds=5) <= wait < timedelta(seconds=6)
        sink.reply = "250 OK"
        now[0] -= timedelta(minutes=10) - timedelta(seconds=6)  # stepped back, 6 s later
        ticks[0] += 6
        daemon.outbox.wake()
        assert len(await sink.wait_for(1, timeout=3)) == 1
    finally:
        await sink.stop()


async def test_a_recipient_the_relay_refuses_for_now_is_retried_and_one_it_refuses_for_good_fails(
        make_daemon: Any) -> None:
    """A relay that greylists, or cannot verify a recipient at the moment, answers RCPT with 4xx:
    the acknowledgement failed for good on the first attempt and never left. A 5xx is final."""
    now = [datetime(2026, 11, 29, 8, 0, tzinfo=UTC)]
    sink = await SmtpSink(rcpt_reply="450 4.2.0 greylisted, try again later").start()
    try:
        daemon = await make_daemon(outbound_port=sink.port, clock=lambda: now[0])
        await send(daemon, mail(subject="need help"))  # its acknowledgement is queued, and refused
        await daemon.ingest.drained()
        for _ in range(500):
            (row,) = await daemon.store.fetchall("SELECT state, attempts, next_attempt_at FROM outbox")
            if row["attempts"] == 1 and row["state"] != "sending":
                break
            await asyncio.sleep(0.01)
        assert row["state"] == "pending", f"a 450 at RCPT made the reply {row['state']}"
        sink.rcpt_reply = "250 OK"
        now[0] = datetime.fromisoformat(row["next_attempt_at"])
        daemon.outbox.wake()
        assert len(await sink.wait_for(1, timeout=3)) == 1

        sink.rcpt_reply = "550 5.1.1 no such user"
        await send(daemon, mail(sender="gone@example.org", subject="another claim", message_id="<gone@example.org>"))
        await daemon.ingest.drained()
        for _ in range(500):
            rows = await daemon.store.fetchall("SELECT state FROM outbox WHERE recipient = 'gone@example.org'")
            if rows and rows[0]["state"] not in ("pending", "sending"):
                break
            await asyncio.sleep(0.01)
        assert [r["state"] for r in rows] == ["failed"]
    finally:
        await sink.stop()
