"""The daemon's long-running tasks (the store's writer, the ingest processor, the outbox, the SLA
scheduler, the attachment fetcher) run until it stops. One that ends before, with an exception
(a bug), must not go unnoticed: its end is logged at once with the traceback, and /healthz
answers 503 naming it, so a service manager or a probe restarts the daemon; what was accepted
is in the store and is taken up again at start."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def watched(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    task.add_done_callback(_report)
    return task


def _report(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        log.error("background_task_died", task=task.get_name(), error=f"{type(exc).__name__}: {exc}", exc_info=exc)


def ended(tasks: Iterable[asyncio.Task[Any] | None]) -> list[str]:
    """The names of those that have ended (None: a task that was never started)."""
    return sorted(task.get_name() for task in tasks if task is not None and task.done())
