"""The outbox dispatcher: delivers queued replies through their connector, with retries and
backoff, and records every attempt on the ticket's timeline.

Delivery is at-least-once: a row is marked `sending` before the attempt, and rows found in
that state at start-up (the daemon died mid-send) are tried again.

Rows are due by a clock that never runs backwards: the store's (wall) clock, or, after an NTP
step put it back, its last reading plus the monotonic time since. On the bare wall clock a step
back of ten minutes held every queued reply and retry for those ten minutes. After a step back
a retry is stored in that clock's time, so one found after a restart waits at most the step
longer; a step forward is followed at once (retries come early, never late).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog

from connectors.base import Connector, StoreUnavailable
from ingest.apply import FINAL_STATUSES, record_event, record_sent_ids
from ingest.records import DeliveryResult, OutboundMessage
from ingest.store import Store, Tx, iso
from ingest.supervision import watched

log = structlog.get_logger(__name__)

# Attempts before a transient failure (a relay or Bot API down, a network cut) is given up as
# failed: 5 s doubling to the one-hour cap, then hourly, is about 23 hours of trying. With 8 the
# cap was never reached and a reply failed for good after an outage of ten and a half minutes.
MAX_ATTEMPTS = 32
# How long after it was queued a reply may still leave: those tries, rounded up.
SENDING_FOR = timedelta(days=1)


def backoff(attempt: int, base: float = 5.0, cap: float = 3600.0) -> timedelta:
    """Exponential: 5 s, 10 s, 20 s ... capped at an hour."""
    return timedelta(seconds=min(cap, base * 2 ** (attempt - 1)))


def _claim_due(limit: int, now: datetime) -> Callable[[Tx], list[dict]]:
    def op(tx: Tx) -> list[dict]:
        rows = tx.execute(
            "SELECT o.*, t.ref FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id"
            " WHERE o.state = 'pending' AND o.next_attempt_at <= ? ORDER BY o.next_attempt_at LIMIT ?",
            (iso(now), limit),
        ).fetchall()
        for row in rows:
            tx.execute("UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?", (row["id"],))
        return [dict(row) for row in rows]

    return op


def _record_result(row: dict, result: DeliveryResult, now: datetime) -> Callable[[Tx], str]:
    def op(tx: Tx) -> str:
        attempt = row["attempts"] + 1
        if result.ok:
            state = "sent"
            tx.execute("UPDATE outbox SET state = 'sent', sent_at = ?, last_error = '' WHERE id = ?",
                       (tx.stamp, row["id"]))
            if result.channel_message_id and row["message_row"]:
                tx.execute("UPDATE messages SET channel_message_id = ?, sent_at = ? WHERE id = ?",
                           (result.channel_message_id, tx.stamp, row["message_row"]))
            if row["ticket_id"] and not row["automatic"]:
                # An acknowledgement or a rule's reminder is not an answer: the customer still waits.
                tx.execute("UPDATE tickets SET last_outbound_at = ? WHERE id = ?", (tx.stamp, row["ticket_id"]))
        elif result.permanent or attempt >= MAX_ATTEMPTS:
            state = "failed"
            tx.execute("UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?", (result.detail, row["id"]))
        else:
            state = "retrying"
            delay = timedelta(seconds=result.retry_after) if result.retry_after else backoff(attempt)
            tx.execute("UPDATE outbox SET state = 'pending', last_error = ?, next_attempt_at = ? WHERE id = ?",
                       (result.detail, iso(now + delay), row["id"]))
        if row["ticket_id"]:
            record_event(tx, row["ticket_id"], row["ref"] or "", f"delivery_{state}", channel=row["channel"],
                         outbox_id=row["id"], attempt=attempt, detail=result.detail or None,
                         channel_message_id=result.channel_message_id or None,
                         **({"part_ids": list(result.part_ids)} if result.part_ids else {}))
        if result.ok and row["message_row"] and result.message_ids:
            # After delivery_sent: a report that came before this write shows after it.
            record_sent_ids(tx, row["message_row"], row["channel"], result.message_ids)
        return state

    return op


async def awaiting_final_status(store: Store, connector: str, max_age: timedelta) -> dict[str, float]:
    """The ids of what `connector` sent within `max_age` (each part of a message) that no report
    has yet called final, with the seconds since each was sent: what a gateway polled for its
    delivery status is still to be asked about after a restart."""
    now = store.clock()
    finals = ", ".join("?" * len(FINAL_STATUSES))
    rows = await store.fetchall(
        "SELECT o.channel_message_id, m.sent_at FROM messages m JOIN outbound_message_ids o ON o.message_row = m.id"
        # created_at first: its index bounds the scan to the messages queued since (sent_at has none).
        " WHERE m.created_at >= ? AND m.sent_at >= ? AND m.connector = ? AND m.direction != 'in'"
        f" AND o.status NOT IN ({finals})",
        (iso(now - max_age - SENDING_FOR), iso(now - max_age), connector, *sorted(FINAL_STATUSES)),
    )
    return {row["channel_message_id"]: (now - datetime.fromisoformat(row["sent_at"])).total_seconds()
            for row in rows}


def _recover_interrupted(tx: Tx) -> int:
    return tx.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'").rowcount


def outbound_from_row(row: Mapping) -> OutboundMessage:
    payload = json.loads(row["payload"])
    return OutboundMessage(
        outbox_id=row["id"],
        ticket_ref=row.get("ref") or payload.get("ticket_ref", ""),
        channel=row["channel"],
        connector=row["connector"],
        recipient=row["recipient"],
        text=payload.get("text", ""),
        subject=payload.get("subject", ""),
        html=payload.get("html", ""),
        in_reply_to=payload.get("in_reply_to", ""),
        references=tuple(payload.get("references", ())),
        message_id=payload.get("message_id", ""),
        automatic=bool(row["automatic"]),
        attempt=row["attempts"] + 1,
    )


class OutboxDispatcher:
    def __init__(self, store: Store, connectors: Mapping[str, Connector], *, poll_interval: float = 1.0,
                 batch: int = 50, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.connectors = connectors
        self.poll_interval = poll_interval
        self.batch = batch
        self.monotonic = monotonic
        self._last_now: tuple[datetime, float] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._events: asyncio.Queue | None = None

    async def start(self) -> None:
        recovered = await self.store.write(_recover_interrupted)
        if recovered:
            log.warning("outbox_resending_interrupted", count=recovered)
        self._events = self.store.bus.subscribe(wants="outbound_queued".__eq__)
        self._task = watched(asyncio.create_task(self._run(), name="outbox"))
        self._watcher = watched(asyncio.create_task(self._watch_events(), name="outbox-wake"))

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._watcher) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._events is not None:
            self.store.bus.unsubscribe(self._events)

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._task, self._watcher]

    def wake(self) -> None:
        self._wake.set()

    def now(self) -> datetime:
        """What rows are due by: the store's clock, never earlier than its last reading plus the
        monotonic time since."""
        now, tick = self.store.clock(), self.monotonic()
        if self._last_now is not None:
            then, then_tick = self._last_now
            now = max(now, then + timedelta(seconds=max(0.0, tick - then_tick)))
        self._last_now = (now, tick)
        return now

    async def _watch_events(self) -> None:
        assert self._events is not None
        while True:
            await self._events.get()
            self._wake.set()

    async def _run(self) -> None:
        # Polling as well as in-process wake-ups: the CLI and other processes queue replies too.
        while True:
            try:
                rows = await self.store.write(_claim_due(self.batch, self.now()))
            except Exception as exc:  # a failed write (disk full, a read-only remount): nothing claimed
                if not self.store.is_open:
                    return  # stopping
                log.error("outbox_claim_failed", error=f"{type(exc).__name__}: {exc}")
                # A pause, not the wake event: a reply queued meanwhile would fail the same way.
                await asyncio.sleep(self.poll_interval)
                continue
            if rows:
                await asyncio.gather(*(self._deliver(row) for row in rows))
                continue
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel from stop()
            # when the event is set at the same moment.
            try:
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _deliver(self, row: dict) -> None:
        outbound = outbound_from_row(row)
        bound = log.bind(channel=row["channel"], outbox_id=row["id"], ticket=outbound.ticket_ref)
        connector = self.connectors.get(row["connector"])
        if connector is None:
            result = DeliveryResult(ok=False, detail=f"no running connector named {row['connector']!r}")
        else:
            try:
                result = await connector.send(outbound)
            except Exception as exc:  # a connector bug must not stop the outbox
                result = DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}")
        while True:
            try:
                state = await self.store.write(_record_result(row, result, self.now()))
                break
            except (StoreUnavailable, sqlite3.Error) as exc:
                # The store refused the write (disk full, a read-only remount): the outcome is
                # kept here and recorded once it takes writes again. Left 'sending', a delivered
                # reply would look undelivered and be sent again at the next start.
                bound.error("outbound_result_not_recorded", delivered=result.ok, error=f"{type(exc).__name__}: {exc}")
                if not self.store.is_open:
                    return  # stopping: the row stays 'sending' and the next start resends it
                await asyncio.sleep(self.poll_interval)
            except Exception as exc:  # a bug in the write itself: retrying would not help
                bound.error("outbound_result_not_recorded", delivered=result.ok, error=f"{type(exc).__name__}: {exc}")
                return
        bound.info("outbound_delivery", state=state, attempt=outbound.attempt, detail=result.detail or None)
