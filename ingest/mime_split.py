"""A fast path to the stdlib's MIME tree, for the mail nearly everyone sends.

`email.message_from_bytes` (compat32) walks every line of a mail in Python: ~1.5 µs a line, so
a 20 KB mail with a photo costs milliseconds before any of our own work starts, and that was half
of the normaliser's time. Here the same tree (the same `Message` objects, headers, payload
strings, preambles and epilogues) is built by finding the header/body separators and the
multipart boundaries with C searches, and only header lines are looked at one by one.

Only what this module can read exactly as the feed parser would is taken: anything else (a
lone CR, a unix From line, a header line the feed parser would call a defect, a missing or
doubled boundary, a digest, a message/* part) returns None, and the caller uses the stdlib
parser. tests/test_mime_split.py holds the two to equality over the corpus and generated mail.
"""

from __future__ import annotations

import re
from email.message import Message
from email.policy import compat32

# The feed parser's own test (email/feedparser.py: headerRE).
_HEADER_LINE = re.compile(r"[\041-\071\073-\176]*:|[\t ]")
# What may follow "--boundary" on a boundary line (feedparser's boundaryre).
_SEPARATOR_TAIL = re.compile(r"(--)?[ \t]*(?:\r\n|\n|\Z)")
# The end of a header block: a line break followed by an empty line.
_BLANK_LINE = re.compile(r"(\r\n|\n)(?:\r\n|\n)")


def parse_fast(raw: bytes) -> Message | None:
    """The tree `email.message_from_bytes(raw, policy=compat32)` gives, or None when this mail
    needs the stdlib parser."""
    text = raw.decode("ascii", "surrogateescape")  # as BytesParser does
    if _needs_stdlib(text):
        return None
    return _entity(text, 0, len(text), ())


def parse_headers_fast(raw: bytes) -> Message | None:
    """The top-level headers as `BytesHeaderParser(policy=compat32)` reads them, or None when it
    needs that parser. The body is not looked at."""
    text = raw.decode("ascii", "surrogateescape")
    headed = None if _needs_stdlib(text) else _headed(text, 0, len(text))
    return headed[0] if headed else None


def _needs_stdlib(text: str) -> bool:
    # A lone CR ends a line for the feed parser; a unix From line is an envelope, not a header.
    return ("\r" in text and text.count("\r") != text.count("\r\n")) or text.startswith("From ")


def _header_lines(text: str, start: int, end: int) -> tuple[list[str], int] | None:
    """The header lines (with their line ends) of the entity at text[start:end], and where its
    body starts; None when a line is not one the feed parser takes as a header."""
    if text.startswith("\r\n", start):
        return [], start + 2
    if text.startswith("\n", start):
        return [], start + 1
    blank = _BLANK_LINE.search(text, start, end)
    header_end, body_start = (blank.end(1), blank.end()) if blank else (end, end)
    lines = text[start:header_end].split("\n")
    last = lines.pop()  # "" after a final line end; else a last line without one
    lines = [line + "\n" for line in lines]
    if last:
        lines.append(last)
    for line in lines:
        if line.startswith("From ") or not _HEADER_LINE.match(line) or line.startswith(":"):
            return None
    if lines and lines[0][0] in " \t":  # a continuation with nothing to continue: a defect
        return None
    return lines, body_start


def _headed(text: str, start: int, end: int) -> tuple[Message, int] | None:
    """A message holding the headers of the entity at text[start:end], and where its body starts."""
    parsed = _header_lines(text, start, end)
    if parsed is None:
        return None
    lines, body_start = parsed
    msg = Message(policy=compat32)
    source: list[str] = []  # one header's lines: the first and its continuations
    for line in lines:
        if line[0] in " \t":
            source.append(line)
            continue
        if source:
            msg.set_raw(*compat32.header_source_parse(source))
        source = [line]
    if source:
        msg.set_raw(*compat32.header_source_parse(source))
    return msg, body_start


def _entity(text: str, start: int, end: int, depth: tuple[str, ...]) -> Message | None:
    headed = _headed(text, start, end)
    if headed is None:
        return None
    msg, body_start = headed
    maintype = msg.get_content_maintype()
    if maintype == "message":
        return None
    if maintype != "multipart":
        msg._payload = text[body_start:end]  # what set_payload(str) stores
        return msg
    boundary = msg.get_boundary()
    if boundary is None or msg.get_content_type() == "multipart/digest" or boundary in depth or len(depth) > 20:
        return None
    return msg if _split_multipart(msg, text, body_start, end, boundary, (*depth, boundary)) else None


def _drop_line_end(s: str) -> str:
    # No lone CR gets this far (see _needs_stdlib).
    return s[:-2] if s.endswith("\r\n") else s[:-1] if s.endswith("\n") else s


def _separators(text: str, start: int, end: int, boundary: str) -> list[tuple[int, int, bool]]:
    """Boundary lines in text[start:end] (start is at a line start): (start, end, closing).
    Found with str.find: a `^`-anchored pattern is tried at every character (4 ms on 200 KB)."""
    found: list[tuple[int, int, bool]] = []
    marker = "--" + boundary
    at = text.find(marker, start, end)
    while at >= 0:
        if at == start or text[at - 1] == "\n":
            tail = _SEPARATOR_TAIL.match(text, at + len(marker), end)
            if tail:
                found.append((at, tail.end(), bool(tail[1])))
        at = text.find(marker, at + 1, end)
    return found


def _split_multipart(msg: Message, text: str, start: int, end: int, boundary: str,
                     depth: tuple[str, ...]) -> bool:
    separators = _separators(text, start, end, boundary)
    if not separators or separators[0][2] or not separators[-1][2]:
        return False  # no start, or no close boundary: the feed parser records a defect
    if any(closing for _, _, closing in separators[:-1]):
        return False  # text after the close boundary that looks like more parts
    if separators[0][0] > start:
        msg.preamble = _drop_line_end(text[start:separators[0][0]])
    parts: list[Message] = []
    for (_, part_start, _), (part_end, _, _) in zip(separators, separators[1:]):
        if part_end == part_start:
            return False  # boundary lines in a row: the feed parser skips them its own way
        part = _entity(text, part_start, part_end, depth)
        if part is None:
            return False
        # RFC 2046: the line break before a boundary belongs to the boundary.
        if isinstance(part._payload, list):
            part.epilogue = _drop_line_end(part.epilogue) if part.epilogue else None
        else:
            part._payload = _drop_line_end(part._payload)
        parts.append(part)
    msg._payload = parts
    msg.epilogue = text[separators[-1][1]:end]
    return True
