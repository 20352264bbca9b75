"""Raw RFC 5322 mail → `InboundMessage`. Pure: bytes in, record out.

Mail is hostile and often broken, so the rule is: degrade, never crash. `MalformedMessage` is
raised only when there is nothing to work with (no bytes, no headers). The tree is parsed with
`policy.default`; any read through it that raises on malformed headers is retried through a
compat32 view (`safe_read`). Display headers (Subject, names) are always decoded here from the raw
text, so the charset repair below applies to them too.

Charset heuristic (`decode_text`), for bodies and RFC 2047 words alike:
1. the declared charset, strictly, unless it is a single-byte charset and the result is suspect:
   the bytes are also valid UTF-8 (8-bit text that is valid UTF-8 by accident is vanishingly rare),
   or a Latin label produced mojibake (C1 controls, runs of accented letters: windows-1256 Persian
   read as iso-8859-1);
2. UTF-8, strictly, or with a little damage (a truncated or corrupted sequence here and there);
3. windows-1256 when most of the non-ASCII letters it yields are Arabic script (our senders are
   Iranian; legacy Persian mail is windows-1256, often unlabelled or labelled iso-8859-1/us-ascii);
4. windows-1252 when it reads as Latin text (what unlabelled Western mail nearly always is, and
   where charset-normalizer tends to pick an exotic relative such as mac-latin2);
5. charset-normalizer's best guess; 6. the declared (or UTF-8) decoding with replacement characters.
"""

from __future__ import annotations

import base64
import codecs
import email
import email.message
import email.utils
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.policy import compat32
from email.policy import default as default_policy
from functools import lru_cache

import charset_normalizer
from bs4 import BeautifulSoup, NavigableString

from ingest.autoreply import bounced_message_ids, detect_automatic, header_values, safe_read
from ingest.persian import fix_letters
from ingest.quoting import trim_quoted
from ingest.records import AttachmentData, Identity, InboundMessage
from router.identity import normalize_email

Message = email.message.Message


class MalformedMessage(ValueError):
    """The input holds nothing usable as an e-mail (no bytes, no headers)."""


# --- charsets -----------------------------------------------------------------------------------

# Labels mail software uses that Python's codec registry does not know, or knows narrower.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",  # senders routinely put GBK/GB18030 characters under the older label
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "windows-874": "cp874",
    "x-mac-arabic": "mac-arabic",
    "unicode-1-1-utf-7": "utf-7",
}
_LATIN_LABELS = frozenset({"ascii", "iso8859-1", "iso8859-15", "cp1252"})
_ARABIC_LETTER = re.compile(r"[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\s]{3,}")
_GUESS_SAMPLE = 256 * 1024


def _codec(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, None when unknown or not a text encoding."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
        b"".decode(info.name)  # rejects bytes-to-bytes codecs such as "base64"
    except Exception:
        return None
    return info.name


@lru_cache(maxsize=None)
def _single_byte(codec: str) -> bool:
    """One byte, one character: the charsets that decode anything, so a wrong label goes unnoticed."""
    decodable = 0
    for byte in range(0x80, 0x100):
        try:
            decodable += len(bytes([byte]).decode(codec)) == 1
        except Exception:
            pass
    return decodable >= 64


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except Exception:
        return None


def _utf8(data: bytes) -> str | None:
    """UTF-8, strictly or with a little damage: under 1 in 20 non-ASCII characters broken."""
    text = _strict(data, "utf-8")
    if text is not None:
        return text
    text = data.decode("utf-8", "replace")
    return text if 20 * text.count("\ufffd") < sum(1 for c in text if ord(c) > 0x7F) else None


def _latin_mojibake(text: str) -> bool:
    """Non-Latin bytes read as Latin-1: C1 controls, or accented letters in runs, not alone."""
    non_ascii = sum(1 for c in text if ord(c) > 0x7F)
    if any("\x80" <= c <= "\x9f" for c in text):
        return True
    in_runs = sum(len(run) for run in _NON_ASCII_RUN.findall(text))
    return non_ascii > 0 and 2 * in_runs >= non_ascii


def _mostly_arabic(text: str) -> bool:
    # Only non-ASCII letters count: English boilerplate around Persian text must not outvote it.
    letters = [c for c in text if ord(c) > 0x7F and c.isalpha()]
    arabic = sum(1 for c in letters if _ARABIC_LETTER.match(c))
    return arabic > 0 and 3 * arabic >= 2 * len(letters)


def _guess(data: bytes) -> str | None:
    try:
        best = charset_normalizer.from_bytes(data[:_GUESS_SAMPLE]).best()
        return None if best is None or best.encoding is None else data.decode(best.encoding, "replace")
    except Exception:
        return None


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Bytes of text in a declared (possibly wrong or missing) charset → str; see the module doc."""
    if not data:
        return ""
    codec = _codec(declared)
    declared_text = _strict(data, codec) if codec else None
    if declared_text is not None:
        suspect = not data.isascii() and _single_byte(codec) and (
            _utf8(data) is not None or (codec in _LATIN_LABELS and _latin_mojibake(declared_text))
        )
        if not suspect:
            return declared_text
    if data.isascii():
        return data.decode("ascii")
    utf8 = _utf8(data)
    if utf8 is not None:
        return utf8
    arabic = data.decode("cp1256", "replace")
    if _mostly_arabic(arabic):
        return arabic
    western = _strict(data, "cp1252")
    if western is not None and not _latin_mojibake(western):
        return western
    guessed = _guess(data)
    if guessed is not None:
        return guessed
    return declared_text if declared_text is not None else data.decode(codec or "utf-8", "replace")


# --- headers ------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_MSGID = re.compile(r"<([^<>\s]+)>")
_ANGLE_ADDR = re.compile(r"(.*?)<\s*([^<>\s]+@[^<>\s]+?)\s*>\s*", re.DOTALL)
_FOLD = re.compile(r"\r?\n")
_MAX_MAILBOX_CHARS = 2000  # keeps _ANGLE_ADDR's backtracking cheap on hostile headers


def _lenient_b64(text: str | bytes) -> bytes:
    """Base64 as broken mailers write it: stray characters, URL-safe alphabet, bad padding."""
    raw = text.encode("ascii", "ignore") if isinstance(text, str) else text
    clean = re.sub(rb"[^A-Za-z0-9+/]", b"", raw.replace(b"-", b"+").replace(b"_", b"/"))
    if len(clean) % 4 == 1:  # a lone trailing sextet carries no whole byte
        clean = clean[:-1]
    return base64.b64decode(clean + b"=" * (-len(clean) % 4))


def _q_decode(text: str) -> bytes:
    raw = text.replace("_", " ").encode("utf-8", "surrogateescape")
    return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _literal(text: str) -> str:
    """Header text outside encoded words; raw 8-bit bytes arrive surrogate-escaped."""
    if not _SURROGATE.search(text):
        return text
    return decode_text(text.encode("utf-8", "surrogateescape"))


def decode_header_text(value: str) -> str:
    """RFC 2047 decoding that forgives: words anywhere (even inside quotes), adjacent words of one
    charset joined before decoding (senders split multibyte characters across words), bad base64
    padding, wrong charset labels (repaired by `decode_text`), raw 8-bit text."""
    value = _FOLD.sub("", value)
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # (charset, bytes) of adjacent encoded words
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        pos = match.end()
        if gap and not (gap.isspace() and pending):
            if pending:
                out.append(decode_text(bytes(pending[1]), pending[0]))
                pending = None
            out.append(_literal(gap))
        charset = match.group(1).split("*")[0].lower()  # RFC 2231 language suffix: utf-8*fa
        try:
            data = _lenient_b64(match.group(3)) if match.group(2) in "bB" else _q_decode(match.group(3))
        except Exception:
            data = match.group(0).encode("utf-8", "surrogateescape")
        if pending and pending[0] == charset:
            pending[1].extend(data)
        else:
            if pending:
                out.append(decode_text(bytes(pending[1]), pending[0]))
            pending = (charset, bytearray(data))
    if pending:
        out.append(decode_text(bytes(pending[1]), pending[0]))
    out.append(_literal(value[pos:]))
    return "".join(out)


def _clean(text: str) -> str:
    """Safe to store and show: no lone surrogates, no NULs."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def _one_line(text: str) -> str:
    return " ".join(_clean(text).split())


def _header(msg: Message, name: str) -> str:
    values = header_values(msg, name)
    return _one_line(decode_header_text(values[0])) if values else ""


def _message_id(value: str) -> str:
    match = _MSGID.search(value)
    ident = match.group(1) if match else value.strip().strip("<>")
    return _clean(ident) if ident and len(ident) <= 900 and not any(c.isspace() for c in ident) else ""


def _message_ids(values: list[str]) -> list[str]:
    ids: list[str] = []
    for value in values:
        found = _MSGID.findall(value) or [t for t in value.split() if "@" in t]
        ids += [i for i in map(_message_id, found) if i]
    return list(dict.fromkeys(ids))


def _display_name(raw: str) -> str:
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return fix_letters(_one_line(decode_header_text(name)).strip("\"' "))


def _mailbox(value: str) -> tuple[str, str]:
    """(display name, address) of a single-mailbox header (From, Sender, Return-Path). The
    angle-address form is taken literally: getaddresses splits `a@x <b@y>` into two mailboxes."""
    unfolded = _FOLD.sub("", value)
    match = _ANGLE_ADDR.fullmatch(unfolded) if len(unfolded) <= _MAX_MAILBOX_CHARS else None
    if match and unfolded.count("<") == 1:
        return _display_name(match.group(1)), match.group(2)
    pairs = [(n, a) for n, a in email.utils.getaddresses([unfolded]) if a]
    return (_display_name(pairs[0][0]), pairs[0][1]) if pairs else ("", "")


def _identity(name: str, address: str) -> Identity | None:
    value = normalize_email(_clean(address)) if address else None
    return Identity("email", value, name) if value else None


def _sender(msg: Message) -> Identity:
    """From, else Sender, else Return-Path: the first with a valid address."""
    from_name = ""
    for header in ("from", "sender", "return-path"):
        for value in header_values(msg, header):
            name, address = _mailbox(value)
            from_name = from_name or name
            identity = _identity(name or from_name, address)
            if identity:
                return identity
    return Identity("email", "", from_name)


def _recipients(msg: Message) -> tuple[Identity, ...]:
    found: dict[str, Identity] = {}
    for header in ("to", "cc", "delivered-to", "x-original-to"):
        values = [_FOLD.sub("", v) for v in header_values(msg, header)]
        for name, address in email.utils.getaddresses(values):
            identity = _identity(_display_name(name), address)
            if identity and identity.value not in found:
                found[identity.value] = identity
    return tuple(found.values())


def _sent_at(msg: Message) -> datetime | None:
    values = header_values(msg, "date")
    if not values:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(values[0])
    except Exception:  # ValueError, TypeError, OverflowError... for garbage dates
        return None
    # "-0000" means UTC with the sender's zone unknown; the result must always be tz-aware.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# --- HTML ---------------------------------------------------------------------------------------

_DROP_TAGS = ("script", "style", "noscript", "template", "title", "object", "iframe")
# Paragraph-like blocks get a blank line around them, the others a line break.
_PARAGRAPH_TAGS = ("p", "table", "ul", "ol", "dl", "blockquote", "pre", "hr", "h1", "h2", "h3", "h4", "h5", "h6")
_LINE_TAGS = (
    "div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "address", "center",
    "form", "fieldset",
)
_HTML_SPACE = re.compile(r"[ \t\r\n\f\v\xa0]+")
# Block boundaries are marked with private-use sentinels first, so that nested and adjacent
# blocks merge into one break instead of piling up blank lines.
_LINE, _PARAGRAPH = "\ue000", "\ue001"
_BREAKS = re.compile(f"[\\s{_LINE}{_PARAGRAPH}]+")
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
_NO_LINK_SCHEMES = ("#", "javascript:", "cid:", "data:")


def html_to_text(html: str) -> str:
    """Readable text of an HTML mail: scripts and styles dropped, block elements and <br> as line
    breaks, list items as "- ", links as "text (url)" when the url adds something."""
    html = html.replace(_LINE, "").replace(_PARAGRAPH, "")
    try:
        soup = BeautifulSoup(html, "html.parser")
        for tag in soup(_DROP_TAGS):
            tag.decompose()
        # Source whitespace means nothing in HTML (outside <pre>): collapse it before adding ours.
        for string in soup.find_all(string=True):
            if type(string) is NavigableString and string.find_parent("pre") is None:
                string.replace_with(_HTML_SPACE.sub(" ", str(string)))
        for link in soup.find_all("a"):
            href = str(link.get("href") or "").strip()
            label = link.get_text(" ", strip=True)
            if label and href and not href.lower().startswith(_NO_LINK_SCHEMES):
                if href not in (label, f"mailto:{label}", f"tel:{label}"):
                    link.append(f" ({href})")
        for br in soup.find_all("br"):
            br.replace_with("\n")
        for cell in soup.find_all(["td", "th"]):
            cell.insert_after(" ")
        for block in soup.find_all(_PARAGRAPH_TAGS + _LINE_TAGS):
            gap = _PARAGRAPH if block.name in _PARAGRAPH_TAGS else _LINE
            block.insert_before(gap)
            block.insert_after(gap)
            if block.name == "li":
                block.insert(0, "- ")
        text = soup.get_text()
    except Exception:  # bs4 has no failure mode we rely on; tags stripped crudely beats nothing
        text = re.sub(r"<[^>]*>", " ", html)
    text = _BREAKS.sub(_merge_breaks, text)
    lines = [line.strip() for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _merge_breaks(run: re.Match[str]) -> str:
    text = run.group(0)
    if _PARAGRAPH in text or (_LINE in text and text.count("\n") >= 2):
        return "\n\n"
    return "\n" if _LINE in text else text


# --- attachments ---------------------------------------------------------------------------------

_MAX_FILENAME = 150
_FILENAME_BAD = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"|?*\u202a-\u202e\u2066-\u2069]')
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
)
_FALLBACK_EXT = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "image/png": ".png",
    "image/jpeg": ".jpg", "image/gif": ".gif", "application/pdf": ".pdf", "message/rfc822": ".eml",
    "message/delivery-status": ".txt", "text/rfc822-headers": ".txt",
    "message/rfc822-headers": ".txt", "message/disposition-notification": ".txt",
}


def sanitize_filename(name: str | None, fallback: str = "attachment-1.bin") -> str:
    """A safe display/storage name: basename only (no path traversal), no control or bidi-override
    characters (the "gpj.exe" trick), no leading dots, at most 150 characters keeping the extension;
    `fallback` when nothing usable remains."""
    if not name:
        return fallback
    text = unicodedata.normalize("NFC", _clean(name)).replace("\\", "/")
    text = _FILENAME_BAD.sub("_", text.rsplit("/", 1)[-1])
    text = text.strip().lstrip(".").rstrip(". ")
    if not text.strip("_. "):
        return fallback
    stem, dot, ext = text.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, dot, ext = text, "", ""
    if stem.lower() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    stem = stem[: _MAX_FILENAME - len(dot + ext)].rstrip()
    return f"{stem}{dot}{ext}"


def _fallback_name(content_type: str, number: int) -> str:
    if content_type == "application/ms-tnef":
        return "winmail.dat"
    return f"attachment-{number}{_FALLBACK_EXT.get(content_type, '.bin')}"


# --- the MIME tree ------------------------------------------------------------------------------

_MAX_DEPTH = 30
_FORWARD_MARKER = "---------- Forwarded message ----------"
_FORWARDED_MESSAGE_TYPES = ("message/rfc822", "message/global")
_BODY_TYPES = ("text/plain", "text/html")
_META_HEADERS = (
    "x-mailer", "user-agent", "x-priority", "importance", "content-language", "list-id",
    "auto-submitted", "x-original-to",
)


@dataclass
class _Walk:
    """What walking the tree collects, besides the texts (see `Texts`)."""

    max_attachment_bytes: int
    max_parts: int
    htmls: list[str] = field(default_factory=list)
    attachments: list[AttachmentData] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parts: int = 0
    truncated: bool = False


# Body texts in document order, each as (came_from_html, text).
Texts = list[tuple[bool, str]]


def _content_type(part: Message) -> str:
    return safe_read(part, lambda m: m.get_content_type(), "application/octet-stream")


def _payload_bytes(part: Message) -> bytes:
    cte = safe_read(part, lambda m: str(m.get("content-transfer-encoding", "")), "")
    if cte.strip().lower().startswith("base64"):
        # The stdlib hands back the undecoded text when base64 is broken beyond its padding fixes.
        raw = safe_read(part, lambda m: m.get_payload(), "")
        if isinstance(raw, str):
            try:
                return _lenient_b64(raw)
            except Exception:
                pass
    data = safe_read(part, lambda m: m.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    raw = safe_read(part, lambda m: m.get_payload(), None)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b"\n".join(_serialize(m) for m in raw or () if isinstance(m, Message))


def _serialize(msg: Message) -> bytes:
    try:
        return msg.as_bytes(policy=compat32)
    except Exception:
        return b""


def _filename(part: Message) -> str | None:
    name = safe_read(part, lambda m: m.get_filename(), None)
    return decode_header_text(str(name)) if name else None


def _add_attachment(part: Message, content_type: str, walk: _Walk) -> None:
    name = sanitize_filename(_filename(part), _fallback_name(content_type, len(walk.attachments) + 1))
    data = _payload_bytes(part)
    if len(data) > walk.max_attachment_bytes:
        walk.attachments.append(AttachmentData(name, content_type, None, "", len(data)))
        walk.notes.append(
            f"attachment {name!r} ({len(data)} bytes) exceeds the {walk.max_attachment_bytes}-byte limit; content not kept"
        )
    else:
        walk.attachments.append(AttachmentData(name, content_type, data, size=len(data)))


def _body_text(part: Message, content_type: str, walk: _Walk, texts: Texts) -> None:
    data = _payload_bytes(part)
    charset = safe_read(part, lambda m: m.get_content_charset(), None)
    if content_type == "text/html":
        if not charset:
            declared = _META_CHARSET.search(data[:4096])
            charset = declared.group(1).decode("ascii", "ignore") if declared else None
        html = _clean(decode_text(data, charset))
        walk.htmls.append(html)
        texts.append((True, html_to_text(html)))
    else:
        texts.append((False, decode_text(data, charset)))


def _forwarded(inner: Message, walk: _Walk, texts: Texts, depth: int) -> None:
    header = [_FORWARD_MARKER]
    for label in ("From", "Date", "Subject", "To"):
        value = _header(inner, label)
        if value:
            header.append(f"{label}: {value}")
    inner_texts: Texts = []
    _walk(inner, walk, inner_texts, depth + 1)
    body = _join(inner_texts)
    texts.append((False, "\n".join(header) + ("\n\n" + body if body else "")))


def _alternative(children: list[Message], walk: _Walk, texts: Texts, depth: int) -> None:
    """One rendering of the same content: plain text when it says something, else the richest
    other (HTML converted). Every branch is walked, so inline images and the HTML are kept."""
    renderings: list[Texts] = []
    for child in children:
        child_texts: Texts = []
        _walk(child, walk, child_texts, depth + 1)
        renderings.append(child_texts)
    with_text = [r for r in renderings if _join(r)]
    plain = [r for r in with_text if not any(from_html for from_html, _ in r)]
    chosen = plain[0] if plain else (with_text[-1] if with_text else [])
    texts.extend(chosen)


def _walk(part: Message, walk: _Walk, texts: Texts, depth: int = 0) -> None:
    walk.parts += 1
    if walk.parts > walk.max_parts or depth > _MAX_DEPTH:
        if not walk.truncated:
            walk.truncated = True
            walk.notes.append(f"more than {walk.max_parts} parts or {_MAX_DEPTH} levels; the rest was skipped")
        return
    content_type = _content_type(part)
    payload = safe_read(part, lambda m: m.get_payload(), None)
    children = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else None
    if content_type in _FORWARDED_MESSAGE_TYPES and children:
        _forwarded(children[0], walk, texts, depth)
    elif content_type.startswith("multipart/") and children is not None:
        if content_type == "multipart/alternative":
            _alternative(children, walk, texts, depth)
        else:
            for child in children:
                _walk(child, walk, texts, depth + 1)
    elif content_type.startswith("multipart/"):
        repaired = _rebound(part, content_type)
        if repaired is not None:
            for child in repaired:
                _walk(child, walk, texts, depth + 1)
        else:  # the whole body as text is better read than lost
            texts.append((False, decode_text(_payload_bytes(part))))
    elif content_type in _BODY_TYPES and not _filename(part) and (
        safe_read(part, lambda m: m.get_content_disposition(), None) != "attachment"
    ):
        _body_text(part, content_type, walk, texts)
    else:
        _add_attachment(part, content_type, walk)


_BOUNDARY_LINE = re.compile(rb"^--([^\s\"]{1,200})\r?\n(?=[A-Za-z-]+:)", re.MULTILINE)


def _rebound(part: Message, content_type: str) -> list[Message] | None:
    """Parts of a multipart whose declared boundary never occurs (a common spam-kit and broken
    mailer bug): re-parse with the boundary the body actually uses."""
    body = _payload_bytes(part)
    found = _BOUNDARY_LINE.search(body)
    if not found:
        return None
    header = f'Content-Type: {content_type}; boundary="{found.group(1).decode("ascii", "replace")}"\r\n\r\n'
    try:
        repaired = email.message_from_bytes(header.encode() + body, policy=default_policy)
    except Exception:
        return None
    payload = safe_read(repaired, lambda m: m.get_payload(), None)
    children = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    return children or None


def _join(texts: Texts) -> str:
    pieces = (text.replace("\r\n", "\n").replace("\r", "\n").strip("\n") for _, text in texts)
    return "\n\n".join(p for p in pieces if p.strip())


# --- entry point --------------------------------------------------------------------------------


def _parse(raw: bytes) -> Message:
    try:
        return email.message_from_bytes(raw, policy=default_policy)
    except Exception:
        try:
            return email.message_from_bytes(raw, policy=compat32)
        except Exception as exc:
            raise MalformedMessage(f"mail could not be parsed at all: {exc!r}") from exc


def parse_email(
    raw: bytes, *, max_attachment_bytes: int = 25 * 2**20, max_parts: int = 500
) -> InboundMessage:
    """Normalise one raw mail. Only `MalformedMessage` escapes, and only for input with nothing
    usable; oversized attachments are recorded without their bytes, with a note in `meta`."""
    if not raw or not raw.strip():
        raise MalformedMessage("empty mail: no bytes to parse")
    msg = _parse(raw)
    if not any(True for _ in msg.raw_items()):
        raise MalformedMessage("no header lines found: input is not an RFC 5322 message")

    walk = _Walk(max_attachment_bytes, max_parts)
    texts: Texts = []
    _walk(msg, walk, texts)
    text = fix_letters(_clean(_join(texts))).strip()

    sender = _sender(msg)
    auto_reason = detect_automatic(msg, sender.value)
    message_id = next(map(_message_id, header_values(msg, "message-id")), "")
    references = _message_ids(header_values(msg, "references"))
    references += [i for i in map(_message_id, bounced_message_ids(msg)) if i and i not in references]
    in_reply_to = _message_ids(header_values(msg, "in-reply-to"))
    meta = [(name, value) for name in _META_HEADERS if (value := _header(msg, name))]
    meta += [("note", note) for note in walk.notes]

    return InboundMessage(
        channel="email",
        kind="message",
        channel_message_id=message_id or "sha256:" + hashlib.sha256(raw).hexdigest(),
        message_id=message_id,
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=tuple(references),
        sender=sender,
        conversation_key=f"email:{sender.value}" if sender.value else "",
        recipients=_recipients(msg),
        subject=fix_letters(_header(msg, "subject")),
        text=text,
        html="\n".join(walk.htmls),
        display_text=trim_quoted(text) if text else "",
        attachments=tuple(walk.attachments),
        sent_at=_sent_at(msg),
        auto_reason=auto_reason,
        # Machines never open tickets on their own (ARCHITECTURE: matching, step 4).
        opens_ticket=not auto_reason,
        meta=tuple(meta),
    )
