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


async def test_a_batch_stops_taking_background_writes_once_an_acknowledgement_waits(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", background_batch=100, ack_wait_ms=10)
    await store.open()
    try:
        order: list[str] = []
        first_running = threading.Event()

        def slow(tag: str) -> Callable[[Tx], None]:
            def op(tx: Tx) -> None:
                first_running.set()
                time.sleep(0.005)  # a threading write's worth of work
                order.append(tag)
            return op

        background = [store.submit(slow(f"b{i}"), background=True) for i in range(40)]
        await asyncio.to_thread(first_running.wait)
        acknowledgement = store.submit(lambda tx: order.append("ack"))
        await asyncio.gather(acknowledgement, *background)
        # Without the cut it would have waited for all 40 (one batch of 100 allowed): ~200 ms.
        assert order.index("ack") <= 15
        assert [tag for tag in order if tag != "ack"] == [f"b{i}" for i in range(40)]
    finally:
        await store.close()


async def test_an_acknowledgement_is_answered_before_the_background_writes_of_its_batch(tmp_path: Path) -> None:
    batch_times = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in itertools.count())
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", background_batch=100, ack_wait_ms=80,
                  clock=lambda: next(batch_times))  # one instant per batch: tells the batches apart
    await store.open()
    try:
        ran: list[tuple[str, datetime]] = []
        first_running = threading.Event()

        def slow(tag: str) -> Callable[[Tx], None]:
            def op(tx: Tx) -> None:
                first_running.set()
                time.sleep(0.004)
                ran.append((tag, tx.now))
            return op

        background = [store.submit(slow(f"b{i}"), background=True) for i in range(60)]
        await asyncio.to_thread(first_running.wait)
        acknowledgement = store.submit(lambda tx: ran.append(("ack", tx.now)))
        await acknowledgement
        answered_after = list(ran)
        await asyncio.gather(*background)
        ack_batch = dict(ran)["ack"]
        alongside = [tag for tag, at in ran if at == ack_batch and tag != "ack"]
        assert len(alongside) >= 5  # the batch went on with threading work (~20 here)...
        # ...but the acknowledgement was committed and answered before it, not after all of it.
        assert len([tag for tag, at in answered_after if at == ack_batch and tag != "ack"]) <= 2
        # The events of a committed write are published even if its caller stopped waiting.
        events = store.bus.subscribe()
        waiting = store.submit(lambda tx: tx.emit("noted", "PV-1"))
        waiting.cancel()
        await store.write(lambda tx: None)
        assert (await asyncio.wait_for(events.get(), 5)).kind == "noted"
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

    def long_report() -> None:  # a reader holding its snapshot for up to 3 s, as a big report may
        conn = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None)
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM audit_log").fetchone()
        reading.set()
        done_reading.wait(3)
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
        assert slowest < 0.5
    finally:
        done_reading.set()
        await report
        await store.close()
