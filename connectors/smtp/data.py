"""Reading the SMTP DATA section in chunks.

aiosmtpd reads DATA one line at a time (an awaited `readuntil` and a few Python steps per
line, ~8 µs): a 20 KB mail is ~300 lines, so the listener spent milliseconds of the event
loop per message on the reading alone. Here the stream is read up to each `.<CRLF>` (found in C;
most of them end the data), and the transparency dots are removed in one pass. The bytes handed
on, the size limit (552) and the line limit (500) are the same as aiosmtpd's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

_DOT_LINE = b".\r\n"
TOO_MUCH = "552 Error: Too much mail data"
TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"


@dataclass(frozen=True, slots=True)
class DataSection:
    content: bytes | None  # None when refused
    refusal: str = ""


def unstuff(raw: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line starting with a dot had one dot added by the client."""
    if raw.startswith(b"."):
        raw = raw[1:]
    return raw.replace(b"\r\n.", b"\r\n")


def longest_line(raw: bytes) -> int:
    """The longest line's length with its CRLF, as aiosmtpd measures it."""
    return max(map(len, raw.split(b"\r\n"))) + 2 if raw else 0


def first_refusal(raw: bytes, *, size_limit: int | None, line_limit: int) -> str:
    """The reply aiosmtpd gives for this DATA section (stuffed, without its final `.` line):
    the limit the stream crosses first, "" for none. A line longer than the line limit is
    caught before its bytes count towards the size when it overruns the reader's buffer (more
    than `line_limit` bytes before its CRLF), after them when only its CRLF makes it too long."""
    if not (size_limit and len(raw) > size_limit) and not (len(raw) > line_limit and longest_line(raw) > line_limit):
        return ""
    size = 0
    for line in raw.split(b"\r\n"):
        if len(line) > line_limit:
            return TOO_LONG
        size += len(line) + 2
        if size_limit and size > size_limit:
            return TOO_MUCH
        if len(line) + 2 > line_limit:
            return TOO_LONG
    return ""


async def read_data_section(reader: asyncio.StreamReader, *, size_limit: int | None,
                            line_limit: int) -> DataSection:
    """Read up to and including the lone `.` line. Over a limit, the rest is still read (and
    dropped) so the reply comes after the data, as RFC 5321 §4.2.5 implies."""
    # Past this much, which limit was crossed first is decided: the rest is read, not kept.
    keep = size_limit + line_limit + 4 if size_limit else None
    chunks: list[bytes] = []
    size = 0
    # The last two bytes read before this chunk: the `.` line ends the data only at the start of
    # a line, and the CRLF before it may have come in the previous chunk, even split in two
    # (a chunk cut at the reader's limit can end in CR, the next begin with LF).
    before = b"\r\n"  # the data starts at the beginning of a line
    while True:
        try:
            chunk = await reader.readuntil(_DOT_LINE)
        except asyncio.LimitOverrunError as overrun:  # no `.<CRLF>` within the reader's limit yet
            chunk = await reader.readexactly(overrun.consumed)
        last = chunk.endswith(_DOT_LINE) and (before + chunk[-5:-3]).endswith(b"\r\n")  # the 2 bytes before `.`
        if last:
            chunk = chunk[: -len(_DOT_LINE)]
        if keep is None or size < keep:
            chunks.append(chunk)
        size += len(chunk)
        if last:
            break
        before = (before + chunk[-2:])[-2:]
    raw = b"".join(chunks)
    refusal = first_refusal(raw, size_limit=size_limit, line_limit=line_limit)
    return DataSection(None, refusal) if refusal else DataSection(unstuff(raw))
