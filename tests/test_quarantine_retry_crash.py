"""`quarantine retry` killed part-way (kill -9, a lost SSH session) leaves every message it had
not threaded yet quarantined: listed, and retried by the next `quarantine retry`, not pending
where no running daemon looks and no list shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest import queries
from ingest.email_payload import email_dedupe_key
from ingest.records import RawPayload
from ingest.service import Ingest
from tests.mailgen import mail


class Killed(BaseException):
    """The retrying process ending abruptly at this point."""


async def test_a_retry_cut_short_leaves_its_messages_quarantined_and_listed(
        make_daemon: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = await make_daemon()
    without_mime = Ingest(daemon.store, daemon.blobs, {}, daemon.ingest.context)  # every mail fails
    await without_mime.start()
    for n in range(3):
        raw = mail(message_id=f"<q{n}@example.com>", subject=f"claim {n}").as_bytes()
        await without_mime.accept(RawPayload("email", "smtp", email_dedupe_key(raw), "mime", raw, datetime.now(UTC)))
    await without_mime.drained()
    await without_mime.stop()
    ids = sorted(row["inbox_id"] for row in await queries.list_quarantine(daemon.store))
    assert len(ids) == 3

    retrying = Ingest(daemon.store, daemon.blobs, daemon.ingest.normalisers, daemon.ingest.context)

    def killed(*args: Any) -> None:
        raise Killed

    monkeypatch.setattr(retrying, "_enqueue", killed)  # dies before threading any of them
    with pytest.raises(Killed):
        await retrying.retry(ids)
    still = sorted(row["inbox_id"] for row in await queries.list_quarantine(daemon.store))
    assert still == ids, "messages left neither threaded nor listed in quarantine"

    monkeypatch.undo()
    retried = await Ingest(daemon.store, daemon.blobs, daemon.ingest.normalisers, daemon.ingest.context).retry(ids)
    assert retried == ids
    assert await queries.list_quarantine(daemon.store) == []
    states = await daemon.store.fetchall("SELECT DISTINCT state FROM inbox")
    assert [row["state"] for row in states] == ["done"]
    assert len(await queries.list_tickets(daemon.store)) >= 1
