"""The store's read side: a read issued after a write has resolved sees that write, however many
other readers are busy on the shared reader connection at the time."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.base import StoreUnavailable
from ingest.store import Store, Tx


async def test_a_read_after_a_resolved_write_sees_it_while_other_reads_are_in_flight(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF")
    await store.open()
    try:
        def bump(tx: Tx) -> None:
            tx.execute("INSERT INTO audit_log (at, agent, action) VALUES ('x', 'test', 'bump')")

        async def busy_reader(stop: asyncio.Event) -> None:
            # First row of many: a statement stepped but not finished holds its read snapshot, so a
            # read done in more than one hop lets the checking read share a snapshot older than the write.
            while not stop.is_set():
                await store.fetchone("SELECT name FROM sqlite_master")

        stop = asyncio.Event()
        readers = [asyncio.create_task(busy_reader(stop)) for _ in range(16)]
        stale = 0
        for expected in range(1, 301):
            await store.write(bump)
            row = await store.fetchone("SELECT count(*) AS n FROM audit_log WHERE action = 'bump'")
            assert row is not None
            stale += row["n"] != expected
        stop.set()
        await asyncio.gather(*readers)
        assert stale == 0
    finally:
        await store.close()


async def test_a_foreground_write_does_not_queue_behind_background_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", background_batch=4)
    await store.open()
    try:
        order: list[str] = []

        def note(tag: str) -> Callable[[Tx], None]:
            return lambda tx: order.append(tag)

        background = [store.submit(note(f"b{i}"), background=True) for i in range(20)]
        acknowledgement = store.submit(note("ack"))
        await asyncio.gather(acknowledgement, *background)
        assert order[0] == "ack"
        assert order[1:] == [f"b{i}" for i in range(20)]  # background writes keep their order
        assert store.batches == 5  # at most 4 background writes per batch
    finally:
        await store.close()


class SlowWrites:
    """Writes that each take `seconds` in the writer thread (a threading write's worth of work),
    recording their tag and their transaction's instant as they run. A held write waits, once
    started, for its gate: the test, not the machine's load, decides what is queued by then."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = threading.Event()
        self.ran: list[tuple[str, datetime]] = []

    def op(self, tag: str) -> Callable[[Tx], None]:
        def op(tx: Tx) -> None:
            time.sleep(self.seconds)
            self.ran.append((tag, tx.now))
        return op

    def held(self, tag: str, gate: threading.Event) -> Callable[[Tx], None]:
        def op(tx: Tx) -> None:
            self.started.set()
            gate.wait(10)
            self.ran.append((tag, tx.now))
        return op

    def quick(self, tag: str) -> Callable[[Tx], None]:
        return lambda tx: self.ran.append((tag, tx.now))

    @property
    def tags(self) -> list[str]:
        return [tag for tag, _ in self.ran]


async def test_an_acknowledgement_joins_the_running_batch_once_it_has_waited_ack_wait(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", background_batch=100, ack_wait_ms=10)
    await store.open()
    try:
        writes, queued = SlowWrites(0.005), threading.Event()
        background = [store.submit(writes.held("b0", queued), background=True),
                      *(store.submit(writes.op(f"b{i}"), background=True) for i in range(1, 40))]
        await asyncio.to_thread(writes.started.wait)
        acknowledgement = store.submit(writes.quick("ack"))
        queued.set()
        await asyncio.gather(acknowledgement, *background)
        # Without it the acknowledgement would have waited for all 40 (one batch of 100 allowed);
        # each write takes at least 5 ms, so 10 ms have passed by the third check at the latest.
        assert writes.tags.index("ack") <= 3
        assert [tag for tag in writes.tags if tag != "ack"] == [f"b{i}" for i in range(40)]
        assert store.batches == 1, "the batch went on: no hop back to the event loop for the acknowledgement"
    finally:
        await store.close()


async def test_an_acknowledgement_is_answered_when_it_joins_not_when_the_batch_ends(tmp_path: Path) -> None:
    instants = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in itertools.count())
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", background_batch=100, ack_wait_ms=20,
                  clock=lambda: next(instants))  # one instant per transaction: tells them apart
    await store.open()
    try:
        writes, queued, answered = SlowWrites(0.004), threading.Event(), threading.Event()
        background = [store.submit(writes.held("b0", queued), background=True),
                      *(store.submit(writes.op(f"b{i}"), background=True) for i in range(1, 59)),
                      store.submit(writes.held("last", answered), background=True)]
        await asyncio.to_thread(writes.started.wait)
        queued_at = time.perf_counter()
        acknowledgement = store.submit(writes.quick("ack"))
        queued.set()
        # The batch's last write waits for this answer: answered only at the batch's end, it times out.
        await asyncio.wait_for(acknowledgement, 5)
        waited = time.perf_counter() - queued_at
        answered.set()
        await asyncio.gather(*background)
        tags, ran = writes.tags, writes.ran
        ack_transaction = dict(ran)["ack"]
        # It joined the transaction the threading writes before it were in, after waiting its
        # 20 ms (the first write behind it ended after 4), and the rest went on in a new one.
        assert waited >= 0.020
        assert [tag for tag, at in ran if at == ack_transaction] == tags[:tags.index("ack") + 1]
        assert 1 <= tags.index("ack") < len(tags) - 1
        assert all(at != ack_transaction for _, at in ran[tags.index("ack") + 1:])
        # The events of a committed write are published even if its caller stopped waiting.
        events = store.bus.subscribe()
        waiting = store.submit(lambda tx: tx.emit("noted", "PV-1"))
        waiting.cancel()
        await store.write(lambda tx: None)
        assert (await asyncio.wait_for(events.get(), 5)).kind == "noted"
    finally:
        await store.close()


async def test_a_subscriber_gets_only_the_kinds_it_wants(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF")
    await store.open()
    try:
        every = store.bus.subscribe()
        replies = store.bus.subscribe(wants="outbound_queued".__eq__)
        await store.write(lambda tx: [tx.emit(kind, "PV-1") for kind in ("message_received", "outbound_queued", "routed")])
        assert [every.get_nowait().kind for _ in range(every.qsize())] == ["message_received", "outbound_queued", "routed"]
        assert [replies.get_nowait().kind for _ in range(replies.qsize())] == ["outbound_queued"]
        store.bus.unsubscribe(replies)
        await store.write(lambda tx: tx.emit("outbound_queued", "PV-1"))
        assert (every.qsize(), replies.qsize()) == (1, 0)
    finally:
        await store.close()


async def test_a_failed_commit_fails_the_acknowledgements_that_joined_it_and_the_store_goes_on(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", background_batch=100, ack_wait_ms=5)
    await store.open()
    try:
        writes, queued = SlowWrites(0.004), threading.Event()

        def fails_at_commit(tx: Tx) -> None:
            # A dangling reference checked only at COMMIT: the transaction's commit fails.
            tx.execute("PRAGMA defer_foreign_keys = ON")
            tx.execute("INSERT INTO identities (contact_id, kind, value, created_at) VALUES (999, 'email', 'x@y', 'now')")

        await store.submit(lambda tx: None)  # a batch of its own, before the rest is queued
        background = [store.submit(fails_at_commit, background=True),
                      store.submit(writes.held("b0", queued), background=True),
                      *(store.submit(writes.op(f"b{i}"), background=True) for i in range(1, 21))]
        await asyncio.to_thread(writes.started.wait)
        acknowledgement = store.submit(lambda tx: "stored?")
        queued.set()
        results = await asyncio.wait_for(asyncio.gather(acknowledgement, *background, return_exceptions=True), 10)
        assert isinstance(results[0], StoreUnavailable), "the acknowledgement in the failed commit is told so"
        assert all(isinstance(r, StoreUnavailable) for r in results[1:])
        assert await store.write(lambda tx: tx.one("SELECT count(*) AS n FROM identities")["n"]) == 0
    finally:
        await store.close()


async def test_the_wal_starts_over_under_a_steady_stream_of_writes(tmp_path: Path) -> None:
    # The writer never checkpoints; the checkpointer beside it must still let the WAL restart,
    # or it would grow by everything ever written (here ~48 MB).
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF")
    await store.open()
    try:
        detail = "x" * 8000

        def record(tx: Tx) -> None:
            tx.execute("INSERT INTO audit_log (at, agent, action, detail) VALUES ('x', 'test', 'load', ?)", (detail,))

        for _ in range(60):
            await asyncio.gather(*(store.submit(record) for _ in range(100)))
            await asyncio.sleep(0.02)  # a steady stream, not one burst
        wal = tmp_path / "store.sqlite3-wal"
        assert wal.stat().st_size < 40 * 2**20
    finally:
        await store.close()
    assert not wal.exists() or wal.stat().st_size == 0  # truncated at close


async def test_a_long_read_does_not_hold_writes_back_through_the_checkpointer(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF")
    await store.open()
    reading = threading.Event()
    done_reading = threading.Event()

    def long_report() -> None:  # a reader holding its snapshot until the writes are done, as a big report may
        conn = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None)
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM audit_log").fetchone()
        reading.set()
        done_reading.wait(30)
        conn.execute("COMMIT")
        conn.close()

    report = asyncio.create_task(asyncio.to_thread(long_report))
    try:
        await asyncio.to_thread(reading.wait)
        detail = "x" * 8000
        slowest = 0.0
        for _ in range(25):  # ~20 MB: past the restart threshold while the report reads
            started = time.perf_counter()
            await asyncio.gather(*(store.submit(
                lambda tx: tx.execute("INSERT INTO audit_log (at, agent, action, detail) VALUES ('x', 't', 'w', ?)",
                                      (detail,))) for _ in range(100)))
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.03)
        # A checkpoint waiting on the reader would hold writes back for seconds (SQLite's default
        # busy timeout is 5 s); a round takes ~50 ms here, so a wide bound tells the two apart
        # however loaded the machine is.
        assert slowest < 2.0
    finally:
        done_reading.set()
        await report
        await store.close()
