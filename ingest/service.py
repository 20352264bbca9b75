"""The ingest service: `accept()` for connectors, and the processor that normalises, matches
and threads what was accepted. Processing runs after the commit that released the channel's
acknowledgement, and is restartable: at start-up every inbox row still pending is processed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pickle
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from config.logs import log_or_add_to_request_line
from connectors.base import Normaliser, StoreUnavailable
from ingest.analysis import MessageAnalysis, analyse
from ingest.apply import Applied, ApplyContext, apply_inbound, insert_inbox, quarantine
from ingest.blobs import BlobStore
from ingest.normaliser_pool import NormaliserPool, WorkerFailure
from ingest.records import AcceptOutcome, InboundMessage, RawPayload
from ingest.store import Store
from ingest.supervision import watched

log = structlog.get_logger(__name__)

StoredFiles = list[tuple[int, str | None]]  # per attachment: (size, sha256 or None when not kept)
Prepared = tuple[InboundMessage, MessageAnalysis, StoredFiles]

# Payloads sent to the normaliser process in one call, at most. Batched, even a webhook form or
# a chat line is cheaper to send there than to parse beside the protocols (bench/webhooks.py).
WORKER_BATCH = 16

# Threading writes handed to the store and not yet committed. They are background writes that
# yield to acknowledgements, so under a burst they queue; past this many, normalisation waits.
MAX_INFLIGHT = 512

# Accepted payloads held in memory for normalisation, at most. Past this (a burst, or a backlog
# found at start-up) only their inbox ids are kept, and the payloads are read back from the inbox
# as the queue drains: a flood never has to fit in memory, nor be scanned by the collector.
MAX_QUEUED = 1024

# A threading write whose commit failed while the store stays open (disk full, then freed) is
# tried again from the inbox after this pause, not only at the next start.
APPLY_RETRY_SECONDS = 2.0

INBOX_COLUMNS = "id, channel, connector, dedupe_key, fmt, meta, received_at, body"
INBOX_FROM = "inbox JOIN inbox_raw ON inbox_raw.inbox_id = inbox.id"


class Ingest:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        normalisers: Mapping[str, Normaliser],
        context: ApplyContext,
        *,
        max_attachment_bytes: int = 25 * 2**20,
        normaliser_processes: int = 0,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.normalisers = normalisers
        self.context = context
        store.context = context
        self.max_attachment_bytes = max_attachment_bytes
        self._pool = NormaliserPool(normaliser_processes, prepare_many_in_worker) if normaliser_processes > 0 else None
        self._preparing: set[asyncio.Task[Any]] = set()
        self._retrying: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[tuple[int, RawPayload] | None] = asyncio.Queue()
        self._spilled: deque[int] = deque()  # accepted, pending, not in `_queue`: read back in order
        self._task: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[Any]] = set()
        self._room = asyncio.Event()  # set while fewer than MAX_INFLIGHT writes are in flight
        self._room.set()
        self._outstanding = 0  # accepted but not yet threaded or quarantined
        self._from_quarantine: set[int] = set()  # inbox ids being retried, still quarantined
        self.processed = 0
        self.on_applied: list[Callable[[int, Applied], None]] = []  # (inbox id, outcome)

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._task, self._dispatcher]

    # -- the sink connectors call ----------------------------------------------------------

    async def accept(self, payload: RawPayload) -> AcceptOutcome:
        """Store the raw payload durably; returns once committed (or raises StoreUnavailable)."""
        try:
            inbox_id, duplicate = await self.store.write(insert_inbox(payload))
        except StoreUnavailable:
            raise
        except Exception as exc:  # disk full, I/O error...: the channel must retry later
            log.error("accept_failed", channel=payload.channel, dedupe_key=payload.dedupe_key, error=str(exc))
            raise StoreUnavailable(str(exc)) from exc
        # Not the dedupe key: for some channels (web chat) it embeds a session secret.
        log_or_add_to_request_line(log, "message_accepted", channel=payload.channel, connector=payload.connector,
                                   inbox_id=inbox_id, duplicate=duplicate, size=len(payload.body))
        if not duplicate:
            self._enqueue(inbox_id, payload)
        return AcceptOutcome(inbox_id, duplicate)

    # -- processing --------------------------------------------------------------------------

    async def start(self) -> None:
        rows = await self.store.fetchall("SELECT id FROM inbox WHERE state = 'pending' ORDER BY id")
        for row in rows:  # read back as the queue has room, not all at once
            self._outstanding += 1
            self._spilled.append(row["id"])
        if rows:
            log.info("resuming_pending_inbox", count=len(rows))
        if self._pool is not None:
            await self._pool.start()
        self._task = watched(asyncio.create_task(self._run(), name="ingest-processor"))

    async def stop(self) -> None:
        """Finish what was accepted so far, then stop."""
        if self._task is None:
            return
        for retry in self._retrying:  # their messages wait, pending, for the next start
            retry.cancel()
        await self._queue.put(None)
        await self._task
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        self._task = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def retry(self, inbox_ids: list[int]) -> list[int]:
        """Replay quarantined messages (after a fix); returns the ids that were retried.

        A message stays quarantined (listed, retryable) until the write that threads it, which
        resolves its entry too, or the one that quarantines it again: a retry killed part-way
        leaves nothing pending that no one would process before the daemon's next start."""
        if not inbox_ids:
            return []
        marks = ",".join("?" * len(inbox_ids))
        rows = await self.store.fetchall(
            f"SELECT {INBOX_COLUMNS} FROM {INBOX_FROM} WHERE id IN ({marks}) AND state = 'quarantined' ORDER BY id",
            tuple(inbox_ids))
        released = [row["id"] for row in rows]
        if not released:
            return []
        self._from_quarantine.update(released)
        running = self._task is not None
        if not running:
            self._task = watched(asyncio.create_task(self._run(), name="ingest-processor"))
        for row in rows:
            self._enqueue(row["id"], payload_from_row(row))
        await self.drained()
        self._from_quarantine.difference_update(released)
        if not running:
            await self.stop()
        return released

    def _enqueue(self, inbox_id: int, payload: RawPayload) -> None:
        self._outstanding += 1
        if self._spilled or self._queue.qsize() >= MAX_QUEUED:
            self._spilled.append(inbox_id)  # behind those spilled before it: arrival order holds
        else:
            self._queue.put_nowait((inbox_id, payload))

    async def _refill(self) -> None:
        """Read spilled payloads back from the inbox, oldest first, as far as the queue has room."""
        ids = [self._spilled.popleft() for _ in range(min(len(self._spilled), MAX_QUEUED - self._queue.qsize()))]
        if not ids:
            return
        try:
            rows = await self.store.fetchall(
                f"SELECT {INBOX_COLUMNS}, state FROM {INBOX_FROM} WHERE id IN ({','.join('?' * len(ids))})"
                " AND state IN ('pending', 'quarantined')", tuple(ids))
        except Exception as exc:  # still pending in the inbox: processed at the next start
            log.error("inbox_read_back_failed", count=len(ids), error=str(exc))
            for _ in ids:
                self._done()
            return
        by_id = {row["id"]: row for row in rows
                 if row["state"] == "pending" or row["id"] in self._from_quarantine}  # a retry's
        for inbox_id in ids:
            row = by_id.get(inbox_id)
            if row is None:  # no longer pending: nothing left to do for it
                self._done()
                continue
            try:
                payload = payload_from_row(row)
            except Exception as exc:
                await self._quarantine(inbox_id, exc)
                self._done()
                continue
            self._queue.put_nowait((inbox_id, payload))

    def _done(self) -> None:
        self._outstanding -= 1

    async def drained(self) -> None:
        """Wait until everything accepted so far is threaded or quarantined."""
        while self._outstanding > 0:
            await asyncio.sleep(0.002)

    async def _run(self) -> None:
        # Two stages joined by a bounded queue that keeps arrival order: normalisation starts
        # for several messages at once (in worker processes when configured), and each result
        # is handed to the writer in arrival order without waiting for its commit. The writer
        # applies operations in submission order, so threading sees messages as they arrived.
        ordered: asyncio.Queue[tuple[int, RawPayload, asyncio.Future[Prepared]] | None] = asyncio.Queue(64)
        self._dispatcher = dispatcher = watched(asyncio.create_task(self._dispatch(ordered), name="ingest-normalise"))
        try:
            while (item := await ordered.get()) is not None:
                await self._apply(*item)
        finally:
            dispatcher.cancel()

    async def _dispatch(self, ordered: asyncio.Queue) -> None:
        # Each message's preparation (parsing, analysis, writing its attachment files) starts
        # here and runs beside the others'; `_run` takes the results in arrival order. A file
        # is durable before the write that names it is even built. What is queued already goes
        # to the normaliser process in one call (up to WORKER_BATCH payloads): each call costs
        # the daemon a wake-up write, a pickled call and result, and a future.
        loop = asyncio.get_running_loop()
        prefix = self.context.reference_prefix
        while True:
            # A loop, not once: a read-back that failed leaves the queue as empty as it was.
            while self._spilled and self._queue.qsize() < MAX_QUEUED // 2:
                await self._refill()
            if (item := await self._queue.get()) is None:
                # Stopping, once what was accepted before is done: the spilled too, and anything
                # read back behind this marker.
                if not self._spilled and self._queue.empty():
                    break
                if self._spilled:
                    await self._refill()
                self._queue.put_nowait(None)
                continue
            items = [item]
            while len(items) < WORKER_BATCH and not self._queue.empty():
                if (queued := self._queue.get_nowait()) is None:
                    self._queue.put_nowait(None)  # to the back: seen once the rest is taken
                    break
                items.append(queued)
            to_worker: list[tuple[RawPayload, asyncio.Future[Prepared]]] = []
            futures: list[asyncio.Future[Prepared]] = []
            for _, payload in items:
                future: asyncio.Future[Prepared]
                if payload.fmt not in self.normalisers:
                    future = loop.create_future()
                    future.set_exception(LookupError(f"no normaliser for payload format {payload.fmt!r}"))
                elif self._pool is not None:
                    future = loop.create_future()
                    to_worker.append((payload, future))
                else:
                    future = self._prepare_here(payload, prefix)
                futures.append(future)
            if to_worker:  # sent before any of them is queued for `_run` to wait on
                self._send_to_worker(to_worker, prefix)
            for (inbox_id, payload), future in zip(items, futures):
                await ordered.put((inbox_id, payload, future))
        await ordered.put(None)

    def _send_to_worker(self, items: list[tuple[RawPayload, asyncio.Future[Prepared]]], prefix: str) -> None:
        assert self._pool is not None
        call = asyncio.create_task(self._pool.run(
            [payload for payload, _ in items], prefix, str(self.blobs.root), self.max_attachment_bytes))
        self._preparing.add(call)

        def settle(done: asyncio.Task[list[Prepared | WorkerFailure]]) -> None:
            self._preparing.discard(done)
            if done.cancelled() or done.exception() is not None:  # e.g. a payload that would not pickle
                error = done.exception() if not done.cancelled() else asyncio.CancelledError()
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)
                return
            for (_, future), outcome in zip(items, done.result()):
                if future.done():
                    continue
                if isinstance(outcome, WorkerFailure):
                    future.set_exception(outcome.exception())
                else:
                    future.set_result(outcome)

        call.add_done_callback(settle)

    def _prepare_here(self, payload: RawPayload, prefix: str) -> asyncio.Future[Prepared]:
        loop = asyncio.get_running_loop()
        try:
            msg, analysis = prepare(self.normalisers[payload.fmt], payload, prefix)
        except Exception as exc:
            future: asyncio.Future[Prepared] = loop.create_future()
            future.set_exception(exc)
            return future
        if any(att.data is not None for att in msg.attachments):  # file writes: off the loop
            return loop.run_in_executor(None, with_files, msg, analysis, self.blobs, self.max_attachment_bytes)
        future = loop.create_future()
        future.set_result((msg, analysis, not_kept(msg)))
        return future

    async def _apply(self, inbox_id: int, payload: RawPayload, prepared: asyncio.Future[Prepared]) -> None:
        structlog.contextvars.bind_contextvars(channel=payload.channel, inbox_id=inbox_id)
        try:
            msg, analysis, stored = await prepared
            op = apply_inbound(inbox_id, payload.connector, msg, stored, self.context, analysis,
                               from_quarantine=inbox_id in self._from_quarantine)
        except Exception as exc:
            await self._quarantine(inbox_id, exc)
            self._done()
            return
        finally:
            structlog.contextvars.unbind_contextvars("channel", "inbox_id")
        # A bounded backlog in memory; the rest waits, durable, in the inbox and the queues.
        while len(self._inflight) >= MAX_INFLIGHT:
            self._room.clear()
            await self._room.wait()
        try:
            future = self.store.submit(op, background=True)
        except StoreUnavailable:
            # Still pending in the inbox: processed again at the next start.
            log.error("processing_deferred_store_closed", inbox_id=inbox_id)
            self._done()
            return
        self._inflight.add(future)
        future.add_done_callback(lambda f: self._applied(f, inbox_id, payload))

    def _settled(self, future: asyncio.Future[Any]) -> None:
        self._inflight.discard(future)
        if len(self._inflight) < MAX_INFLIGHT:
            self._room.set()

    def _applied(self, future: asyncio.Future[Applied], inbox_id: int, payload: RawPayload) -> None:
        self._settled(future)
        if future.cancelled():
            self._done()
            return
        exc = future.exception()
        if exc is None:
            applied = future.result()
            self.processed += 1
            log.info("message_threaded", channel=payload.channel, inbox_id=inbox_id, ticket=applied.ticket_ref,
                     matched_by=applied.reason, created=applied.created, acknowledged=applied.acknowledged)
            for callback in self.on_applied:
                callback(inbox_id, applied)
            self._done()
        elif isinstance(exc, StoreUnavailable):
            # Still pending in the inbox: read back and threaded again after a pause (or at the
            # next start, when the store is closing).
            log.error("apply_failed_store_unavailable", inbox_id=inbox_id, error=str(exc))
            self._done()
            self._retry_later(inbox_id)
        else:
            task = asyncio.create_task(self._quarantine(inbox_id, exc))
            self._inflight.add(task)
            task.add_done_callback(lambda t: (self._settled(t), self._done()))

    async def _apply_again_later(self, inbox_id: int) -> None:
        await asyncio.sleep(APPLY_RETRY_SECONDS)
        try:
            rows = await self.store.fetchall(
                f"SELECT {INBOX_COLUMNS} FROM {INBOX_FROM} WHERE id = ? AND state = 'pending'", (inbox_id,))
        except Exception as exc:  # closing, or the read failed too: the next start takes it up
            log.error("apply_retry_failed", inbox_id=inbox_id, error=str(exc))
            return
        for row in rows:
            log.info("apply_retrying", inbox_id=inbox_id)
            self._enqueue(inbox_id, payload_from_row(row))

    async def _quarantine(self, inbox_id: int, exc: BaseException) -> None:
        summary = "".join(traceback.format_exception(exc, limit=-6))
        error = f"{type(exc).__name__}: {exc}"
        log.warning("message_quarantined", inbox_id=inbox_id, error=error)
        try:
            await self.store.write(quarantine(inbox_id, error, summary))
        except StoreUnavailable:
            # Still pending in the inbox: processed (and quarantined) again after a pause, as a
            # threading write that failed is, rather than left unlisted until the next start.
            log.error("quarantine_failed_store_unavailable", inbox_id=inbox_id)
            self._retry_later(inbox_id)

    def _retry_later(self, inbox_id: int) -> None:
        if not self.store.is_open:
            return  # closing: the next start takes it up
        retry = asyncio.create_task(self._apply_again_later(inbox_id))
        self._retrying.add(retry)
        retry.add_done_callback(self._retrying.discard)


def prepare(normaliser: Normaliser, payload: RawPayload, reference_prefix: str,
            ) -> tuple[InboundMessage, MessageAnalysis]:
    """Everything about a message that needs no store: its normal form and what its words say."""
    msg = normaliser(payload)
    return msg, analyse(msg, reference_prefix)


def store_files(msg: InboundMessage, blobs: BlobStore, max_attachment_bytes: int) -> StoredFiles:
    """Write the attachments' bytes to the blob store (durably); oversized ones are not kept."""
    stored: StoredFiles = []
    for att in msg.attachments:
        if att.data is None or len(att.data) > max_attachment_bytes:
            stored.append((att.size or (len(att.data) if att.data else 0), None))
        else:
            stored.append((len(att.data), blobs.put(att.data)))
    return stored


def not_kept(msg: InboundMessage) -> StoredFiles:
    """What store_files gives for a message none of whose attachments has bytes here."""
    return [(att.size or 0, None) for att in msg.attachments]


def with_files(msg: InboundMessage, analysis: MessageAnalysis, blobs: BlobStore,
               max_attachment_bytes: int) -> Prepared:
    return msg, analysis, store_files(msg, blobs, max_attachment_bytes)


def prepare_many_in_worker(payloads: list[RawPayload] | None, reference_prefix: str = "", blob_root: str = "",
                           max_attachment_bytes: int = 0) -> list[Prepared | WorkerFailure]:
    """Runs in a normaliser process: the registry there is the same entry-point registry. The
    attachment files are written here too, and their bytes not sent back (the write that
    records them needs only sizes and digests). None only loads the registry (warm-up)."""
    from connectors.registry import normalisers

    registry = normalisers()
    outcomes: list[Prepared | WorkerFailure] = []
    for payload in payloads or ():
        try:
            msg, analysis = prepare(registry[payload.fmt], payload, reference_prefix)
            stored = store_files(msg, BlobStore(blob_root), max_attachment_bytes)
        except Exception as exc:  # one bad payload is quarantined alone
            outcomes.append(WorkerFailure(_picklable(exc), traceback.format_exc()))
            continue
        if any(att.data is not None for att in msg.attachments):
            msg = dataclasses.replace(msg, attachments=tuple(dataclasses.replace(att, data=None)
                                                             for att in msg.attachments))
        outcomes.append((msg, analysis, stored))
    return outcomes


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def payload_from_row(row: Mapping) -> RawPayload:
    return RawPayload(
        channel=row["channel"],
        connector=row["connector"],
        dedupe_key=row["dedupe_key"].split(":", 1)[1],
        fmt=row["fmt"],
        body=bytes(row["body"]),
        received_at=datetime.fromisoformat(row["received_at"]),
        meta=json.loads(row["meta"]),
    )
