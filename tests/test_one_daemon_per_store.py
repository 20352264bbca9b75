"""A store is served by one daemon: a second one on the same store is refused at start, and a
message is threaded once even when two processors take it up (a `quarantine retry` beside
the daemon, or a second daemon started all the same)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.apply import insert_inbox
from ingest.daemon import Daemon, StartError, offline_ingest
from ingest.records import RawPayload
from ingest.store import Store
from tests.conftest import settings_from, write_config
from tests.mailgen import mail


async def test_a_second_daemon_on_the_same_store_is_refused(make_daemon: Any, tmp_path: Path) -> None:
    first = await make_daemon()
    second = Daemon(first.settings)
    with pytest.raises(StartError, match="another daemon"):
        await second.start()
    await second.stop()
    assert first.store.is_open


async def test_a_pending_message_taken_up_by_two_processors_is_threaded_once(tmp_path: Path) -> None:
    settings = settings_from(write_config(tmp_path))
    seed = Store(settings.store.path)
    await seed.open()
    for n in range(40):
        mid = f"<twice-{n}@example.com>"
        await seed.write(insert_inbox(RawPayload(
            channel="email", connector="smtp", dedupe_key=mid, fmt="mime",
            body=mail(message_id=mid, subject=f"twice {n}").as_bytes(), received_at=datetime.now(UTC), meta={})))
    await seed.close()
    stores = [Store(settings.store.path), Store(settings.store.path)]
    for store in stores:
        await store.open()
    ingests = [offline_ingest(settings, store) for store in stores]
    try:
        for ingest in ingests:
            await ingest.start()
        for ingest in ingests:
            await ingest.drained()
        rows = await stores[0].fetchall(
            "SELECT inbox_id, count(*) AS n FROM messages WHERE direction = 'in' GROUP BY inbox_id")
        states = await stores[0].fetchall("SELECT state, count(*) AS n FROM inbox GROUP BY state")
    finally:
        for ingest in ingests:
            await ingest.stop()
        for store in stores:
            await store.close()
    assert [tuple(r) for r in states] == [("done", 40)]
    assert len(rows) == 40 and all(r["n"] == 1 for r in rows), "a message was threaded twice"
