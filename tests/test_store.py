"""The store's read side: a read issued after a write has resolved sees that write, however many
other readers are busy on the shared reader connection at the time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
