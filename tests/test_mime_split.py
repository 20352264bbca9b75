"""ingest.mime_split builds the stdlib's MIME tree without reading every line: for any mail it
either gives exactly what `email.message_from_bytes(raw, policy=compat32)` gives, or declines."""

from __future__ import annotations

import email
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.mime_split import parse_fast, parse_headers_fast
from tests.mailgen import mail

CORPUS = Path("/work/shared/corpus/mail-spamscope")


def tree(msg: Message) -> Any:
    payload = msg._payload
    return (msg._headers, msg._unixfrom, msg._default_type, msg.preamble, msg.epilogue, msg._charset,
            [tree(part) for part in payload] if isinstance(payload, list) else payload)


def assert_same_or_declined(raw: bytes) -> bool:
    fast = parse_fast(raw)
    if fast is not None:
        assert tree(fast) == tree(email.message_from_bytes(raw, policy=compat32))
    return fast is not None


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_corpus_mail_gives_the_stdlib_tree(path: Path) -> None:
    assert_same_or_declined(path.read_bytes())


def _everyday_mails() -> list[bytes]:
    plain = mail(subject="خسارت بدنه", body="سلام\nپلاک ۲۲ی۴۵۶\n")
    with_photo = mail(body="Photo attached.\n.\n..dots\n")
    with_photo.add_attachment(b"\xff\xd8" + bytes(range(256)) * 40, maintype="image", subtype="jpeg",
                              filename="عکس.jpg")
    alternative = mail(body="plain part")
    alternative.add_alternative("<p>html <b>part</b></p>", subtype="html")
    nested = mail(body="outer")
    nested.add_alternative("<p>alt</p>", subtype="html")
    nested.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="report.pdf")
    return [m.as_bytes(policy=policy) for m in (plain, with_photo, alternative, nested)
            for policy in (SMTP_POLICY, compat32)]


@pytest.mark.parametrize("index", range(8))
def test_everyday_mail_takes_the_fast_path_and_gives_the_stdlib_tree(index: int) -> None:
    assert assert_same_or_declined(_everyday_mails()[index])


# Mail assembled from parts that stress the edges: line ends, blank and whitespace lines, preambles
# and epilogues, boundaries with trailing space or that prefix one another, nesting, stray bytes.
_EOL = st.sampled_from(["\r\n", "\n", "\r"])
_TEXT = st.lists(st.sampled_from(["", " ", "a", "--b", "--b--", "--bb", "x: y", "\t", ".", "\udcff", "é", "From me"]),
                 max_size=4)
_GOOD_HEADER = st.sampled_from(["Subject: hi", "X-A: 1", "Content-Transfer-Encoding: base64", "X-Folded: a\r\n continued"])
_ODD_HEADER = st.sampled_from([" continued", "\tcontinued", "Bad header", ": no name", "From x"])


@st.composite
def _entity(draw: Any, depth: int = 0) -> str:
    odd = draw(st.integers(0, 9)) == 0  # most generated mail is well formed, some not
    eol = draw(_EOL) if odd else draw(st.sampled_from(["\r\n", "\n"]))
    headers = draw(st.lists(st.one_of(_GOOD_HEADER, _ODD_HEADER) if odd else _GOOD_HEADER, max_size=3))
    if depth < 2 and draw(st.booleans()):
        boundary = draw(st.sampled_from(["b", "bb", "b c", f"inner{depth}"]))
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest"]))
        headers.append(f'Content-Type: multipart/{subtype}; boundary="{boundary}"')
        parts = draw(st.lists(_entity(depth + 1), min_size=1, max_size=3))
        body = eol.join(draw(_TEXT))
        for part in parts:
            padding = draw(st.sampled_from(["", " ", "  \t"]))
            body += f"{eol}--{boundary}{padding}{eol}{part}"
        if not odd or draw(st.booleans()):
            body += f"{eol}--{boundary}--{eol}" + eol.join(draw(_TEXT))
    else:
        headers.append(draw(st.sampled_from(["Content-Type: text/plain", "Content-Type: image/png",
                                             "Content-Type: message/rfc822", "X-None: 1"])))
        body = eol.join(draw(_TEXT))
    return eol.join(headers) + eol + (eol if not odd or draw(st.booleans()) else "") + body


@settings(max_examples=400, deadline=None)
@given(_entity())
def test_generated_mime_gives_the_stdlib_tree_or_is_declined(text: str) -> None:
    assert_same_or_declined(text.encode("utf-8", "surrogateescape"))


def test_mail_the_fast_path_declines_is_left_to_the_stdlib() -> None:
    assert parse_fast(b"From someone Mon Jan 1\r\nSubject: x\r\n\r\nbody") is None
    assert parse_fast(b"Subject: x\rX: y\r\n\r\nbody") is None
    assert parse_fast(b'Content-Type: multipart/mixed; boundary="q"\r\n\r\n--q\r\n\r\nno close\r\n') is None


def _header_blocks() -> list[bytes]:
    blocks = [path.read_bytes() for path in sorted(CORPUS.iterdir())] + _everyday_mails()
    return [raw[: raw.find(b"\n\n") + 2 if b"\n\n" in raw else len(raw)] for raw in blocks] + blocks


@pytest.mark.parametrize("index", range(len(_header_blocks())))
def test_header_fast_path_reads_what_the_header_parser_reads(index: int) -> None:
    raw = _header_blocks()[index]
    fast = parse_headers_fast(raw)
    if fast is not None:
        assert fast._headers == BytesHeaderParser(policy=compat32).parsebytes(raw)._headers
