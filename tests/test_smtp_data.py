"""The listener reads DATA in chunks (connectors/smtp/data.py) where aiosmtpd reads it a line at a
time: over a real socket, fed in fragments of any size, both must hand on the same bytes and give
the same reply, dot-stuffing, limits and all."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.smtp import _ListenerSMTP
from connectors.smtp.data import read_data_section, unstuff

LINE_LIMIT = 120
SIZE_LIMIT = 1500


class _Capture:
    def __init__(self) -> None:
        self.content: bytes | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.content = envelope.original_content
        return "250 stored"


class _Stock(SMTP):
    line_length_limit = LINE_LIMIT


class _Ours(_ListenerSMTP):
    line_length_limit = LINE_LIMIT


async def _exchange(server_class: type[SMTP], data: bytes, fragment: int) -> tuple[bytes, bytes | None]:
    """Send one mail whose DATA section is `data` (terminator included) in `fragment`-byte writes;
    returns the reply to it and what the handler was given."""
    capture = _Capture()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: server_class(capture, data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True, decode_data=False),
        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()  # greeting
        for command in (b"HELO client", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>", b"DATA"):
            writer.write(command + b"\r\n")
            await reader.readline()
        for start in range(0, len(data), fragment):
            writer.write(data[start:start + fragment])
            await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
    return reply[:3], capture.content


# Lines as mailers send them: empty, dots where they matter, long, with bare CR or LF inside.
_LINE = st.one_of(
    st.sampled_from([b"", b".", b"..", b".x", b"x.", b"a.b", b"\r", b"\n", b"x\ny", b"end."]),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r\n", b"")),
    st.integers(LINE_LIMIT - 4, LINE_LIMIT + 2).map(lambda n: b"L" * n),
    st.sampled_from([b"M" * (LINE_LIMIT - 2), b"O" * (LINE_LIMIT + 50), b"N" * 300 + b"."]),  # size and line limits
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_LINE, max_size=60), st.sampled_from([1, 2, 3, 7, 64, 4096]))
async def test_chunked_data_reading_equals_aiosmtpds_line_reading(lines: list[bytes], fragment: int) -> None:
    data = b"".join(line + b"\r\n" for line in lines) + b".\r\n"
    assert await _exchange(_Ours, data, fragment) == await _exchange(_Stock, data, fragment)


async def test_the_end_of_data_is_found_when_the_readers_limit_cuts_its_crlf_in_two() -> None:
    # The listener's reader is limited to a line's length (aiosmtpd's choice), so a long mail is
    # read in cuts; when the bytes so far end in CRLF "." the cut falls after the CR, and the end
    # of data arrives as LF "." CRLF. Seen as a hang in CI: the sender waited for ever for its 250.
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    reader.feed_data(b"A" * (LINE_LIMIT + 10) + b"\r\n.")
    section = asyncio.ensure_future(read_data_section(reader, size_limit=SIZE_LIMIT, line_limit=10_000))
    await asyncio.sleep(0)  # the first cut is read: everything but the last two bytes
    reader.feed_data(b"\r\n")
    done = await asyncio.wait_for(section, 5)
    assert done.content == b"A" * (LINE_LIMIT + 10) + b"\r\n"


def test_transparency_dots_are_removed_once_per_line() -> None:
    assert unstuff(b"..a\r\nb\r\n...\r\n.\r\n") == b".a\r\nb\r\n..\r\n\r\n"
