"""The normaliser processes: parsing runs there, beside the writer, instead of competing with it
for the daemon's GIL (see docs/decisions.md).

A process of the pool can die: killed by the operator or the kernel's OOM killer, or by a
plugin's C code crashing on one message. A `ProcessPoolExecutor` that lost a process is broken
for good (every later call fails at once), so the pool is replaced, and the batch that was in
the dead process is prepared again one message at a time in a process of its own: a message
that kills that one too is the cause, and comes back as a `WorkerFailure` (quarantined with a
clear error, retryable), while the others are threaded as usual.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import structlog

from ingest.records import RawPayload

log = structlog.get_logger(__name__)

POOL_SHUTDOWN_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class WorkerFailure:
    """A payload the normaliser process could not prepare: its exception's type, text and
    traceback (exceptions travel between processes without theirs)."""

    error: BaseException
    traceback: str

    def exception(self) -> BaseException:
        self.error.__cause__ = RemoteTraceback(self.traceback)
        return self.error


class RemoteTraceback(Exception):
    def __str__(self) -> str:
        return str(self.args[0])


class NormaliserCrashed(Exception):
    """Preparing this message, alone, ended the process doing it."""


def worker_setup() -> None:
    """Runs first in each normaliser process. Its life is the daemon's to end: Ctrl-C at a
    terminal (or a service manager's SIGTERM) reaches every process of the group, and the daemon
    drains what it accepted through these processes before it stops them. They end when the
    daemon does, however the daemon ended: a pool's worker waits on a queue whose pipe it holds
    both ends of, so after a kill -9 of the daemon it would wait for ever (and each restart would
    leave one more)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # nothing of the daemon's is held here: what it acknowledged is in the store

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class NormaliserPool:
    """`work(payloads, *args)` in normaliser processes, one outcome per payload; `work(None)`
    warms a process up."""

    def __init__(self, processes: int, work: Callable[..., list[Any]]) -> None:
        self.processes = processes
        self.work = work
        self._pool = self._new_pool(processes)
        self._one_at_a_time = asyncio.Lock()

    @staticmethod
    def _new_pool(processes: int) -> ProcessPoolExecutor:
        # Spawned: forking a process that runs threads is unsafe.
        return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=worker_setup)

    async def start(self) -> None:
        """Spawn the processes now, not on the first message."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self.work, None)

    async def run(self, payloads: list[RawPayload], *args: Any) -> list[Any]:
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, self.work, payloads, *args)
        except BrokenProcessPool as exc:
            self._replace(pool, exc)
        async with self._one_at_a_time:  # one of these may kill a process again: nothing beside it
            return await self._one_by_one(payloads, *args)

    async def _one_by_one(self, payloads: list[RawPayload], *args: Any) -> list[Any]:
        loop = asyncio.get_running_loop()
        outcomes: list[Any] = []
        alone: ProcessPoolExecutor | None = None
        try:
            for payload in payloads:
                alone = alone or self._new_pool(1)
                try:
                    (outcome,) = await loop.run_in_executor(alone, self.work, [payload], *args)
                except BrokenProcessPool:
                    alone.shutdown(wait=False, cancel_futures=True)
                    alone = None
                    log.error("normaliser_killed_by_message", channel=payload.channel, dedupe_key=payload.dedupe_key)
                    outcome = WorkerFailure(
                        NormaliserCrashed("the normaliser process died while preparing this message on its own"),
                        "the process ended without a Python traceback (a crash in C code, or killed)")
                outcomes.append(outcome)
        finally:
            if alone is not None:
                alone.shutdown(wait=False)
        return outcomes

    def _replace(self, broken: ProcessPoolExecutor, exc: BrokenProcessPool) -> None:
        """A new pool for everything that follows, once per broken one (several batches in
        flight fail together)."""
        if self._pool is not broken:
            return
        log.error("normaliser_process_died", error=str(exc))
        self._pool = self._new_pool(self.processes)
        broken.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        """Stop the processes without blocking the event loop. One that does not exit in time
        is killed: once seen hanging a test run's shutdown (Python 3.11), and nothing it held is
        lost (its message is still pending in the inbox)."""
        pool = self._pool
        try:
            await asyncio.wait_for(asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True),
                                   timeout=POOL_SHUTDOWN_SECONDS)
        except TimeoutError:
            processes = list(getattr(pool, "_processes", {}).values())  # the pool keeps them privately
            log.error("normaliser_processes_killed", count=len(processes), after_seconds=POOL_SHUTDOWN_SECONDS)
            for process in processes:
                process.kill()
