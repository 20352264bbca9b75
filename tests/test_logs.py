"""Log lines: JSON, and written once per event-loop turn on a loop's thread (config/logs.py)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from config.logs import TurnBufferedLogger, configure_logging, log_context


class RecordingStream(io.StringIO):
    """A text stream that remembers each write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def stream() -> Iterator[RecordingStream]:
    recorded = RecordingStream()
    configure_logging("info", "json", stream=recorded)
    yield recorded
    structlog.reset_defaults()


def events(text: str) -> list[str]:
    return [json.loads(line)["event"] for line in text.splitlines()]


async def test_lines_logged_in_one_loop_turn_are_written_together_after_it(stream: RecordingStream) -> None:
    log = structlog.get_logger("test")
    log.info("first", n=1)
    log.warning("second", text="خسارت")
    assert stream.writes == [], "nothing written while the turn runs"
    await asyncio.sleep(0)  # the turn ends
    assert len(stream.writes) == 1, "one write for the turn's lines"
    assert events(stream.writes[0]) == ["first", "second"]
    assert json.loads(stream.writes[0].splitlines()[1])["text"] == "خسارت"
    log.info("third")
    await asyncio.sleep(0)
    assert events("".join(stream.writes)) == ["first", "second", "third"]


def test_a_line_logged_off_any_loop_is_written_at_once(stream: RecordingStream) -> None:
    structlog.get_logger("test").error("no_loop_here", code=7)
    assert events(stream.getvalue()) == ["no_loop_here"]


async def test_another_thread_writes_at_once_while_the_loop_holds_its_turn(stream: RecordingStream) -> None:
    log = structlog.get_logger("test")
    log.info("on_the_loop")
    worker = threading.Thread(target=lambda: log.info("from_a_thread"))
    worker.start()
    worker.join()
    assert events(stream.getvalue()) == ["from_a_thread"]
    await asyncio.sleep(0)
    assert events(stream.getvalue()) == ["from_a_thread", "on_the_loop"]


async def test_lines_still_pending_are_written_at_exit() -> None:
    stream = RecordingStream()
    logger = TurnBufferedLogger(stream)
    logger.msg("pending when the process ends")
    assert stream.getvalue() == ""
    logger.flush_all()  # registered with atexit
    assert stream.getvalue() == "pending when the process ends\n"
    await asyncio.sleep(0)  # the turn's own flush finds nothing left to write
    assert stream.getvalue() == "pending when the process ends\n"


def test_log_context_binds_for_its_block_and_restores_what_was_bound_before(stream: RecordingStream) -> None:
    log = structlog.get_logger("test")
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id="r1")
    with log_context(channel="sms", request_id="r2"):
        log.error("inside")
        with log_context(channel="whatsapp"):
            log.error("nested")
        log.error("back")
    log.error("after")
    structlog.contextvars.clear_contextvars()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(ln["event"], ln.get("channel"), ln.get("request_id")) for ln in lines] == [
        ("inside", "sms", "r2"), ("nested", "whatsapp", "r2"), ("back", "sms", "r2"), ("after", None, "r1"),
    ]


def test_log_context_unbinds_when_its_block_raises(stream: RecordingStream) -> None:
    structlog.contextvars.clear_contextvars()
    with pytest.raises(RuntimeError), log_context(message_id="SM1"):
        raise RuntimeError("handler failed")
    assert structlog.contextvars.get_contextvars() == {}


def test_json_lines_are_stamped_in_utc_rfc3339_with_z(stream: RecordingStream) -> None:
    before = datetime.now(UTC)
    structlog.get_logger("test").error("stamped")
    stamp = json.loads(stream.getvalue())["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp)
    assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)
