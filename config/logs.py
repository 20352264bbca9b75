"""structlog, configured once: JSON lines when not on a terminal, pretty on a terminal."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog


def _json_line(event: dict, **kwargs: object) -> str:
    # orjson (C) instead of json.dumps: half the cost of a log line on a daemon that writes
    # several per message. Non-string keys are allowed as json.dumps allows them; `default`
    # is structlog's fallback for values JSON has no type for. Datetimes (the timestamp) in
    # RFC 3339, UTC as "Z".
    return orjson.dumps(event, default=kwargs.get("default"),
                        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z).decode()


def _utc_now(logger: object, method_name: str, event_dict: dict) -> dict:
    # The datetime itself, for orjson to write: structlog's TimeStamper formats it in Python
    # (isoformat, then "+00:00" → "Z"), ~3 µs of the ~12 a line costs.
    event_dict["timestamp"] = datetime.now(UTC)
    return event_dict


class TurnBufferedLogger:
    """Writes lines logged on an event loop's thread once per loop turn, together (one write
    scheduled with `call_soon`), and lines logged anywhere else at once.

    structlog's PrintLogger writes and flushes every line: a system call that hands the GIL to
    the store's writer thread and waits to take it back, twice per webhook — ~10 % of the event
    loop's time under load (docs/decisions.md). A kill -9 loses at most the lines of the turn
    then running, whose work was microseconds from done anyway; what is pending when a loop
    closes is written at exit."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list[str]] = {}
        atexit.register(self.flush_all)

    def msg(self, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write([message])
            return
        # Only this loop's thread touches its entry; dict operations are atomic under the GIL.
        lines = self._pending.get(loop)
        if lines is None:
            self._pending[loop] = [message]
            loop.call_soon(self._flush, loop)
        else:
            lines.append(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._write(self._pending.pop(loop, []))

    def flush_all(self) -> None:
        for loop in list(self._pending):
            self._flush(loop)

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            if self._stream.closed:  # at interpreter exit, or a log file closed: nowhere to write
                return
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()


class log_context:  # noqa: N801 (used like the context manager function it replaces)
    """Binds values into structlog's context for a `with` block, then restores what was there.

    What `structlog.contextvars.bound_contextvars` does, without what makes it cost ~20 µs under
    load: it copies the whole context to find what to restore, and runs a generator. This sets
    and resets the variables' own tokens (a webhook binds twice: ~4 % of the event loop)."""

    __slots__ = ("_values", "_tokens")

    def __init__(self, **values: object) -> None:
        self._values = values

    def __enter__(self) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(**self._values)

    def __exit__(self, *exc_info: object) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)


_request_line: ContextVar[dict[str, Any] | None] = ContextVar("parvandeh_request_line", default=None)


class request_line:  # noqa: N801 (a context manager, named for what it collects)
    """Collects, for the one line an HTTP request is logged with when it ends, what its handler
    did (`log_or_add_to_request_line`): a webhook is then one line, not two. Each log line costs
    the event loop ~40 µs under load, ~8 % of a webhook."""

    __slots__ = ("fields", "_token")

    def __enter__(self) -> dict[str, Any]:
        self.fields: dict[str, Any] = {}
        self._token = _request_line.set(self.fields)
        return self.fields

    def __exit__(self, *exc_info: object) -> None:
        _request_line.reset(self._token)


def log_or_add_to_request_line(logger: Any, event: str, **fields: Any) -> None:
    """Inside an HTTP request, put `event` and its fields on the request's line (once: a second
    such event in the same request gets a line of its own, as it does outside any request)."""
    line = _request_line.get()
    if line is None or event in line:
        logger.info(event, **fields)
    else:
        line[event] = fields


def configure_logging(level: str = "info", fmt: str = "auto", stream=None) -> None:
    stream = stream or sys.stderr
    logger = TurnBufferedLogger(stream)
    pretty = fmt == "console" or (fmt == "auto" and stream.isatty())
    processors: list = [structlog.contextvars.merge_contextvars, structlog.processors.add_log_level]
    if pretty:
        processors += [structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.dev.ConsoleRenderer()]
    else:
        processors += [_utc_now, structlog.processors.format_exc_info,
                       structlog.processors.JSONRenderer(serializer=_json_line)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=lambda *args: logger,
        cache_logger_on_first_use=True,
    )
