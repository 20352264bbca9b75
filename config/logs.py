"""structlog, configured once: JSON lines when not on a terminal, pretty on a terminal."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


def _json_line(event: dict, **kwargs: object) -> str:
    # orjson (C) instead of json.dumps: half the cost of a log line on a daemon that writes
    # several per message. Non-string keys are allowed as json.dumps allows them; `default`
    # is structlog's fallback for values JSON has no type for.
    return orjson.dumps(event, default=kwargs.get("default"), option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: str = "info", fmt: str = "auto", stream=None) -> None:
    stream = stream or sys.stderr
    pretty = fmt == "console" or (fmt == "auto" and stream.isatty())
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if pretty:
        processors.append(structlog.dev.ConsoleRenderer())
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer(serializer=_json_line)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
