"""A message that fails processing while the store refuses the write quarantining it (disk
full) is quarantined once the store takes writes again, not left pending until a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import StoreUnavailable
from ingest import queries, service
from ingest.email_payload import email_dedupe_key
from ingest.records import RawPayload
from ingest.service import Ingest
from tests.mailgen import mail


async def test_a_quarantine_the_store_refused_is_written_once_it_takes_writes(
        make_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "APPLY_RETRY_SECONDS", 0.1)
    daemon = await make_daemon()
    ingest = Ingest(daemon.store, daemon.blobs, {}, daemon.ingest.context)  # every mail fails
    await ingest.start()
    real_quarantine, refused = service.quarantine, []

    def refusing_quarantine(*args: Any) -> Any:
        op = real_quarantine(*args)
        if not refused:
            refused.append(args[0])

            def disk_full(tx: Any) -> Any:
                raise StoreUnavailable("commit failed: database or disk is full")
            return disk_full
        return op

    monkeypatch.setattr(service, "quarantine", refusing_quarantine)
    raw = mail(message_id="<qw@example.com>", subject="fails").as_bytes()
    outcome = await ingest.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw, datetime.now(UTC)))
    await ingest.drained()
    try:
        for _ in range(200):
            if await queries.list_quarantine(daemon.store):
                break
            await asyncio.sleep(0.02)
        assert refused == [outcome.inbox_id]
        (entry,) = await queries.list_quarantine(daemon.store)
        assert entry["inbox_id"] == outcome.inbox_id and "no normaliser" in entry["error"]
    finally:
        await ingest.stop()
