"""Downloads attachments that channels only name (a Telegram file id) into the content-addressed
store, after the message is committed: a slow or failing download never holds up an
acknowledgement, and the message is on its thread meanwhile with the attachment as a link.
A download the daemon did not finish (stopped or killed meanwhile) is taken up again at start;
one that failed stays a link, its failure on the ticket's timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from connectors.base import Connector, StoreUnavailable
from ingest import queries
from ingest.apply import FILES_TO_FETCH, record_event
from ingest.blobs import BlobStore
from ingest.store import Store, Tx
from ingest.supervision import watched

log = structlog.get_logger(__name__)

# A download whose bytes or record our side could not keep (disk full, a read-only remount) is
# tried again after this pause: the channel still has the file, and the failure was ours.
RETRY_SECONDS = 30.0


def _stored(attachment_id: int, digest: str, size: int) -> Callable[[Tx], None]:
    def op(tx: Tx) -> None:
        tx.execute("UPDATE attachments SET sha256 = ?, size = ? WHERE id = ?", (digest, size, attachment_id))

    return op


def _failed(message_row: int, filename: str, error: str) -> Callable[[Tx], None]:
    def op(tx: Tx) -> None:
        row = tx.one("SELECT t.id, t.ref FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.id = ?",
                     (message_row,))
        if row:
            record_event(tx, row["id"], row["ref"], "attachment_fetch_failed", filename=filename, error=error)

    return op


class AttachmentFetcher:
    def __init__(self, store: Store, blobs: BlobStore, connectors: Mapping[str, Connector], max_bytes: int) -> None:
        self.store = store
        self.blobs = blobs
        self.connectors = connectors
        self.max_bytes = max_bytes
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        events = self.store.bus.subscribe(wants=FILES_TO_FETCH.__eq__)
        self._task = watched(asyncio.create_task(self._run(events), name="attachment-fetcher"))

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._task]

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._retries) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, events: asyncio.Queue) -> None:
        try:
            for message_row in await queries.messages_with_unfetched_files(self.store):
                await self.fetch_for(message_row)
            while True:
                event = await events.get()
                await self.fetch_for(event.data["message_row"])
        finally:
            self.store.bus.unsubscribe(events)

    def _retry_later(self, message_row: int) -> None:
        if not self.store.is_open or self._task is None:
            return  # stopping: the next start takes the download up again

        async def again() -> None:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.fetch_for(message_row)
            except StoreUnavailable:
                pass  # closing: the next start takes it up

        task = asyncio.create_task(again(), name=f"attachment-retry-{message_row}")
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def fetch_for(self, message_row: int) -> None:
        rows = await self.store.fetchall(
            "SELECT a.id, a.filename, a.remote_ref, m.connector FROM attachments a JOIN messages m ON m.id = a.message_id"
            " WHERE a.message_id = ? AND a.sha256 IS NULL AND a.remote_ref != ''", (message_row,))
        for row in rows:
            connector = self.connectors.get(row["connector"])
            if connector is None:
                continue
            bound = log.bind(connector=row["connector"], message_row=message_row, filename=row["filename"])
            try:
                data = await connector.fetch_attachment(row["remote_ref"])
                if data is None:
                    continue
                if len(data) > self.max_bytes:
                    raise ValueError(f"{len(data)} bytes is over the {self.max_bytes}-byte attachment limit")
                try:
                    digest = await asyncio.to_thread(self.blobs.put, data)
                    await self.store.write(_stored(row["id"], digest, len(data)))
                except (OSError, StoreUnavailable) as exc:
                    # Our disk or store failed, not the channel: not a failed download, tried again.
                    bound.error("attachment_not_kept", error=f"{type(exc).__name__}: {exc}",
                                retry_in_seconds=RETRY_SECONDS)
                    self._retry_later(message_row)
                    return
                bound.info("attachment_fetched", size=len(data))
            except StoreUnavailable:
                return
            except Exception as exc:  # the channel refused or failed: the link stays, and says why
                bound.warning("attachment_fetch_failed", error=str(exc))
                try:
                    await self.store.write(_failed(message_row, row["filename"], f"{type(exc).__name__}: {exc}"))
                except StoreUnavailable:
                    return
