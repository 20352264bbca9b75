"""The durable store: SQLite in WAL mode, one writer with group commit, aiosqlite readers.

Every write is an *operation*: a plain function run against the writer's connection inside its
own savepoint. The writer task takes whatever operations are queued (up to `max_batch`; the
background lane, threading of accepted messages, up to `background_batch` after the rest), runs
them in a transaction, commits (one fsync for many writes at synchronous=FULL), and only then
resolves the callers' futures; an acknowledgement queued during a long run of threading work
joins the running transaction, which commits early for it. A caller that got its result
therefore knows its write is durable: that is what releases channel acknowledgements.

The writer runs the whole batch in its thread in one hop, rather than one aiosqlite round trip
per statement; see docs/decisions.md for why and what it measured.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite
import structlog

from connectors.base import StoreUnavailable
from ingest.supervision import watched
from ingest.migrations import migrate

T = TypeVar("T")
CHECKPOINT_INTERVAL_SECONDS = 0.25
CHECKPOINT_RESTART_FRAMES = 2048  # 8 MB of 4 KiB pages
log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """Something that changed, published to live subscribers after its commit."""

    kind: str
    ticket_ref: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Tx:
    """What a write operation sees: the connection inside the batch, and an outbox of events."""

    __slots__ = ("conn", "events", "now", "stamp", "context")

    def __init__(self, conn: sqlite3.Connection, now: datetime, context: Any = None) -> None:
        self.conn = conn
        self.now = now
        self.stamp = now.astimezone(UTC).isoformat(timespec="microseconds")  # `now` as stored, made once
        # The daemon's apply context (ingest/apply.py), for operations built without one
        # (a status change from the agent API still runs the routing and SLA hooks).
        self.context = context
        self.events: list[StoreEvent] = []

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def emit(self, kind: str, ticket_ref: str = "", **data: Any) -> None:
        self.events.append(StoreEvent(kind, ticket_ref, data))


WriteOp = Callable[[Tx], T]
_Outcome = tuple[bool, Any, list[StoreEvent]]  # (committed?, its value or exception, its events)


class _Pending(Generic[T]):
    __slots__ = ("op", "future", "queued_at")

    def __init__(self, op: WriteOp[T], future: asyncio.Future[T]) -> None:
        self.op = op
        self.future = future
        self.queued_at = time.perf_counter()


class EventBus:
    """In-process fan-out of committed changes (console feed, outbox wake-ups)."""

    def __init__(self) -> None:
        self._subscribers: dict[asyncio.Queue[StoreEvent], Callable[[str], bool] | None] = {}

    def subscribe(self, maxsize: int = 10_000, *,
                  wants: Callable[[str], bool] | None = None) -> asyncio.Queue[StoreEvent]:
        """A queue of the committed events whose kind `wants` accepts (every event without it).
        A subscriber waiting for one kind is not woken by the others: each message commits
        several events, and a wake-up costs the event loop more than the test."""
        queue: asyncio.Queue[StoreEvent] = asyncio.Queue(maxsize)
        self._subscribers[queue] = wants
        return queue

    def unsubscribe(self, queue: asyncio.Queue[StoreEvent]) -> None:
        self._subscribers.pop(queue, None)

    def publish(self, events: list[StoreEvent]) -> None:
        for queue, wants in self._subscribers.items():
            for event in events:
                if wants is not None and not wants(event.kind):
                    continue
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:  # a stalled subscriber resyncs from the store
                    log.warning("event_subscriber_lagging", kind=event.kind)
                    break


class Store:
    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        max_batch: int = 256,
        background_batch: int = 128,
        ack_wait_ms: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.max_batch = max_batch
        self.background_batch = background_batch
        self.ack_wait = ack_wait_ms / 1000
        self.clock = clock
        self.context: Any = None  # handed to every operation as `tx.context`; bound by Ingest
        self.bus = EventBus()
        # Two lanes: what a caller is waiting on (a channel's acknowledgement, an agent's click)
        # and background work (threading accepted messages), which may lag under load.
        self._foreground: deque[_Pending[Any]] = deque()
        self._background: deque[_Pending[Any]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._conn: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self._open = False
        self.batches = 0
        self.ops = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30,
                               cached_statements=1024)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        # No checkpoints in the writer's commits: copying the WAL into the database (and its
        # fsync) stalled a commit, and every acknowledgement waiting on it, for 100+ ms. The
        # checkpointer thread does it beside the writer (see `_checkpoint_loop`).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        # A page cache that holds the hot indexes while large raw payloads stream through.
        conn.execute("PRAGMA cache_size=-65536")
        return conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()

        def setup() -> sqlite3.Connection:
            conn = self._connect()
            version = migrate(conn)
            log.info("store_opened", path=str(self.path), schema_version=version)
            return conn

        self._conn = await loop.run_in_executor(self._executor, setup)
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="store-checkpointer", daemon=True)
        self._checkpointer.start()
        self._reader = await aiosqlite.connect(self.path)
        self._reader.row_factory = sqlite3.Row
        await self._reader.execute("PRAGMA query_only=ON")
        self._open = True
        self._writer_task = watched(asyncio.create_task(self._writer_loop(), name="store-writer"))

    async def close(self) -> None:
        """Stop taking writes, commit what is queued, close connections."""
        if not self._open:
            return
        self._open = False
        self._closing = True
        self._wake.set()
        if self._writer_task:
            await self._writer_task
        self._checkpoint_stop.set()
        if self._checkpointer:
            await asyncio.to_thread(self._checkpointer.join)
        if self._reader:
            await self._reader.close()
        conn = self._conn
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._writer_task]

    @property
    def queued(self) -> tuple[int, int]:
        """Writes waiting for the writer: (acknowledgements, background)."""
        return len(self._foreground), len(self._background)

    def _checkpoint_loop(self) -> None:
        """Copies committed WAL frames into the database file on its own connection, beside the
        writer. A passive checkpoint never blocks a write, but under a steady stream of writes it
        never finishes either, and the WAL only starts over once one has: so when the WAL holds
        more than `CHECKPOINT_RESTART_FRAMES`, a passive pass (most of the copying) is followed by
        a restarting one, which holds the writer back only while it copies the frames written
        since."""
        # A restarting checkpoint holds the writer's lock while it waits for readers: it gives up
        # (and copies what it can) after 10 ms, rather than stall every write behind a long report.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.01)
        try:
            while not self._checkpoint_stop.wait(CHECKPOINT_INTERVAL_SECONDS):
                try:
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > CHECKPOINT_RESTART_FRAMES:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                except sqlite3.Error as exc:  # e.g. disk full: the WAL keeps everything meanwhile
                    log.error("store_checkpoint_failed", error=str(exc))
            try:
                conn.execute("PRAGMA busy_timeout=5000")  # the writer has stopped: readers may finish
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # a reader still busy: the WAL is checkpointed at next start
                log.warning("store_final_checkpoint_skipped", error=str(exc))
        finally:
            conn.close()

    # -- writes ------------------------------------------------------------------------------

    def submit(self, op: WriteOp[T], *, background: bool = False) -> asyncio.Future[T]:
        """Queue a write; the future resolves after the batch holding it has committed.

        Background writes run in submission order among themselves, after the batch's
        foreground writes, at most `background_batch` per batch. A foreground write (an
        acknowledgement a channel is waiting for) queued while a batch runs its background
        writes joins that batch's transaction once it has waited `ack_wait_ms`, and the
        transaction commits there and then: it never waits behind a backlog."""
        if not self._open:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._background if background else self._foreground).append(_Pending(op, future))
        self._wake.set()
        return future

    async def write(self, op: WriteOp[T]) -> T:
        return await self.submit(op)

    def _next_batch(self) -> tuple[list[_Pending[Any]], list[_Pending[Any]]]:
        foreground: list[_Pending[Any]] = []
        while self._foreground and len(foreground) < self.max_batch:
            foreground.append(self._foreground.popleft())
        background: list[_Pending[Any]] = []
        room = min(self.background_batch, self.max_batch - len(foreground))
        while self._background and len(background) < room:
            background.append(self._background.popleft())
        return foreground, background

    async def _writer_loop(self) -> None:
        loop = asyncio.get_running_loop()

        def settle(batch: list[_Pending[Any]], outcomes: list[_Outcome]) -> None:
            loop.call_soon_threadsafe(self._settle, batch, outcomes)

        while True:
            foreground, background = self._next_batch()
            if not foreground and not background:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await loop.run_in_executor(self._executor, self._run_batch, foreground, background, settle)
            except sqlite3.Error as exc:
                # What was committed is settled already; the rest of the batch fails (nothing of
                # it stands), and the callers' channels retry.
                log.error("store_commit_failed", error=str(exc), batch=len(foreground) + len(background))
                for pending in (*foreground, *background):
                    if not pending.future.done():
                        pending.future.set_exception(StoreUnavailable(f"commit failed: {exc}"))
            self.batches += 1

    def _settle(self, batch: list[_Pending[Any]], outcomes: list[_Outcome]) -> None:
        """On the event loop: resolve the committed writes' futures and publish their events."""
        self.ops += len(batch)
        events: list[StoreEvent] = []
        for pending, (ok, value, op_events) in zip(batch, outcomes):
            if ok:
                events.extend(op_events)  # also when the caller gave up waiting: the write stands
            if pending.future.done():
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)
        if events:
            self.bus.publish(events)

    def _run_batch(self, foreground: list[_Pending[Any]], background: list[_Pending[Any]],
                   settle: Callable[[list[_Pending[Any]], list[_Outcome]], None]) -> None:
        """Runs in the writer thread. The foreground writes are committed first, on their own
        when background writes follow (an acknowledgement never waits for threading work queued
        before it); then the background writes, in order. A foreground write queued meanwhile
        that has waited `ack_wait` is taken into the running transaction, which commits at once,
        and the work goes on in a new one: acknowledgements wait at most `ack_wait` plus the
        write in progress, and threading loses no more than a commit. Each write is handed to
        `settle` right after the commit that made it durable (or its failure)."""
        conn = self._conn
        assert conn is not None
        ran: list[_Pending[Any]] = []
        outcomes: list[_Outcome] = []

        def run(pending: _Pending[Any]) -> None:
            ran.append(pending)
            outcomes.append(self._run_op(conn, pending.op, now))

        def commit() -> None:
            conn.execute("COMMIT")
            settle(ran[:], outcomes[:])
            ran.clear()
            outcomes.clear()

        try:
            now = self._begin(conn)
            for pending in foreground:
                run(pending)
            if foreground and background:
                commit()
                now = self._begin(conn)
            for pending in background:
                # `self._foreground` is appended to by the event loop's thread; reading its
                # head, and popping from it while this batch runs, is safe under the GIL.
                if self._foreground and time.perf_counter() - self._foreground[0].queued_at >= self.ack_wait:
                    for _ in range(min(len(self._foreground), self.max_batch)):
                        run(self._foreground.popleft())
                    commit()
                    now = self._begin(conn)
                run(pending)
            commit()
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Writes taken from the foreground lane are not in the caller's lists: fail them here.
            failure = StoreUnavailable(f"commit failed: {exc}")
            settle(ran[:], [(False, failure, [])] * len(ran))
            raise

    def _begin(self, conn: sqlite3.Connection) -> datetime:
        """Opens a transaction; its operations see one instant, `tx.now`."""
        conn.execute("BEGIN IMMEDIATE")
        return self.clock()

    def _run_op(self, conn: sqlite3.Connection, op: WriteOp[Any], now: datetime) -> _Outcome:
        conn.execute("SAVEPOINT op")
        tx = Tx(conn, now, self.context)
        try:
            value = op(tx)
        except Exception as exc:  # one bad operation must not sink the batch
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return False, exc, []
        conn.execute("RELEASE op")
        return True, value, tx.events

    # -- reads -------------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreUnavailable("the store is not open")
        # One hop on the reader's thread: a cursor left open between hops would hold its read
        # snapshot, and another task's query slipped in meanwhile would miss newer commits.
        return list(await self._reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        if self._reader is None:
            raise StoreUnavailable("the store is not open")
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None
