"""Raw RFC 5322 mail → `InboundMessage`. Pure: bytes in, record out.

Mail is hostile and often broken, so the rule is: degrade, never crash. `MalformedMessage` is
raised only when there is nothing to work with (no bytes, no headers). The tree is parsed once,
with `policy.compat32`: headers stay raw strings (8-bit bytes surrogate-escaped) and every header
we use is decoded here (`decode_header_text`, `_part_info`), never by the stdlib's header registry,
which costs more than the rest of the parse and raises on malformed input. So the charset repair
below applies to display headers (Subject, names) and attachment names too.

Charset heuristic (`decode_text`), for bodies and RFC 2047 words alike:
1. the declared charset, strictly, unless it is a single-byte charset and the result is suspect:
   the bytes are also valid UTF-8 (8-bit text that is valid UTF-8 by accident is vanishingly rare),
   or a Latin label produced mojibake (C1 controls, runs of accented letters: windows-1256 Persian
   read as iso-8859-1), or another non-Arabic label reads what charset-normalizer, choosing
   between that label and windows-1256, takes for windows-1256;
2. UTF-8, strictly, or with a little damage (a truncated or corrupted sequence here and there:
   under 1 in 20 characters, or at most two in a short text);
3. windows-1256 when most of the non-ASCII letters it yields are Arabic script (our senders are
   Iranian; legacy Persian mail is windows-1256, often unlabelled or labelled iso-8859-1/us-ascii),
   unless it reads as UTF-8 Persian seen through windows-1256 (ط ظ ع غ, UTF-8's lead bytes, as
   every other letter): badly damaged UTF-8 is then shown as UTF-8 with its holes;
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
from functools import lru_cache
from typing import Any

import charset_normalizer
from bs4 import BeautifulSoup, NavigableString, Tag

from ingest.autoreply import bounced_message_ids, detect_automatic, header_index, safe_read
from ingest.mime_split import parse_fast
from ingest.persian import fix_letters as _fix_all_letters
from ingest.quoting import trim_quoted
from ingest.records import AttachmentData, Identity, InboundMessage
from router.identity import PLAIN_ADDRESS, normalize_email, stated_phones

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
_ARABIC_CODECS = frozenset({"cp1256", "iso8859-6", "mac-arabic", "cp720", "cp864"})
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
    """UTF-8, strictly or with a little damage: under 1 in 20 non-ASCII characters broken, or
    one or two broken sequences (a cut at the end, a lost byte) in a short text that otherwise
    reads as UTF-8. Text in a single-byte charset breaks at nearly every non-ASCII byte."""
    text = _strict(data, "utf-8")
    if text is not None:
        return text
    text = data.decode("utf-8", "replace")
    broken = text.count("\ufffd")
    whole = sum(1 for c in text if ord(c) > 0x7F) - broken
    return text if 20 * broken < whole or (broken <= 2 and whole >= 3 * broken) else None


# UTF-8 Arabic-script letters all start with one of the bytes D8-DB, which windows-1256 reads as
# ط ظ ع غ: in that mojibake they are every other letter; in Persian text a few in a hundred.
_UTF8_LEADS_IN_CP1256 = frozenset("طظعغ")


def _utf8_read_as_cp1256(text: str) -> bool:
    letters = [c for c in text if _ARABIC_LETTER.match(c)]
    return len(letters) >= 4 and 3 * sum(1 for c in letters if c in _UTF8_LEADS_IN_CP1256) >= len(letters)


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


# Characters no text in a single-byte charset is written with: a sure sign the label is wrong.
_IMPROBABLE = re.compile(r"[\x80-\x9f\u2500-\u259f]")
_ARBITRATED_MIN_BYTES = 16  # under this, language models guess (a Russian "Привет мир" reads as Persian)


def _windows_1256_under(codec: str, data: bytes, declared_text: str) -> bool:
    """Whether bytes labelled with another single-byte charset (koi8-r, iso-8859-5, windows-1251...)
    are windows-1256 Persian: its reading is mostly Arabic, and the declared reading holds
    control or box-drawing characters, or (in a text long enough to judge) charset-normalizer,
    asked to choose between the two, picks windows-1256. Both readings are letters in runs, so
    only a model of the languages tells Persian from Russian; the rare label pays (~1-4 ms)."""
    if not _mostly_arabic(data.decode("cp1256", "replace")):
        return False
    if _IMPROBABLE.search(declared_text):
        return True
    if sum(1 for byte in data if byte > 0x7F) < _ARBITRATED_MIN_BYTES:
        return False
    try:
        best = charset_normalizer.from_bytes(data[:_GUESS_SAMPLE], cp_isolation=[codec, "cp1256"]).best()
        return best is not None and best.encoding is not None and codecs.lookup(best.encoding).name == "cp1256"
    except Exception:  # the guesser failing must not fail the mail: keep the declared reading
        return False


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
            _utf8(data) is not None
            or (codec in _LATIN_LABELS and _latin_mojibake(declared_text))
            or (codec not in _ARABIC_CODECS and _windows_1256_under(codec, data, declared_text))
        )
        if not suspect:
            return declared_text
    if data.isascii():
        return data.decode("ascii")
    utf8 = _utf8(data)
    if utf8 is not None:
        return utf8
    arabic = data.decode("cp1256", "replace")
    if _utf8_read_as_cp1256(arabic):  # badly damaged UTF-8: its own reading, with the holes shown
        return data.decode("utf-8", "replace")
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
_WHITESPACE = re.compile(r"\s")  # str.isspace, character for character
_ANGLE_ADDR = re.compile(r"(.*?)<\s*([^<>\s]+@[^<>\s]+?)\s*>\s*", re.DOTALL)
_FOLD = re.compile(r"\r?\n")
_MAX_MAILBOX_CHARS = 2000  # keeps _ANGLE_ADDR's backtracking cheap on hostile headers


_B64_URLSAFE = bytes.maketrans(b"-_", b"+/")
_B64_NOT_ALPHABET = bytes(
    b for b in range(256) if b not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
)


def _lenient_b64(text: str | bytes) -> bytes:
    """Base64 as broken mailers write it: stray characters, URL-safe alphabet, bad padding."""
    raw = text.encode("ascii", "ignore") if isinstance(text, str) else text
    clean = raw.translate(_B64_URLSAFE, _B64_NOT_ALPHABET)  # deletes first, then maps -_ to +/
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


# What `persian.fix_letters` replaces (Arabic yeh, alef maksura, kaf); tests/test_mime.py checks
# this against it.
_LETTERS_TO_FIX = "\u064a\u0649\u0643"


def fix_letters(text: str) -> str:
    """`persian.fix_letters` (a str.translate, ~80 ns a character) only when it changes something;
    `in` is a memchr, far cheaper than even a regex search."""
    return _fix_all_letters(text) if any(c in text for c in _LETTERS_TO_FIX) else text


def _clean(text: str) -> str:
    """Safe to store and show: no lone surrogates, no NULs."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def _one_line(text: str) -> str:
    return " ".join(_clean(text).split())


# Lower-cased header name → its raw values, unfolded (`autoreply.header_index`): one pass over
# the headers instead of one per header looked up.
Headers = dict[str, list[str]]
_NONE: list[str] = []


def _header(headers: Headers, name: str) -> str:
    values = headers.get(name)
    return _one_line(decode_header_text(values[0])) if values else ""


def _message_id(value: str) -> str:
    match = _MSGID.search(value)
    ident = match.group(1) if match else value.strip().strip("<>")
    return _clean(ident) if ident and len(ident) <= 900 and not _WHITESPACE.search(ident) else ""


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
    return fix_letters(_one_line(decode_header_text(name)).strip("\"' ")) if name else ""


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """`email.utils.getaddresses`, without its slow pure-Python parser for plain addresses."""
    plain = [p.strip(" \t") for value in values for p in value.split(",")]
    if all(PLAIN_ADDRESS.fullmatch(p) for p in plain):
        return [("", p) for p in plain]
    return email.utils.getaddresses(values)


def _mailbox(value: str) -> tuple[str, str]:
    """(display name, address) of a single-mailbox header (From, Sender, Return-Path). The
    angle-address form is taken literally: getaddresses splits `a@x <b@y>` into two mailboxes."""
    unfolded = _FOLD.sub("", value)
    match = _ANGLE_ADDR.fullmatch(unfolded) if len(unfolded) <= _MAX_MAILBOX_CHARS else None
    if match and unfolded.count("<") == 1:
        return _display_name(match.group(1)), match.group(2)
    pairs = [(n, a) for n, a in _addresses([unfolded]) if a]
    return (_display_name(pairs[0][0]), pairs[0][1]) if pairs else ("", "")


@lru_cache(maxsize=4096)
def _normalized_address(address: str) -> str | None:
    return normalize_email(address)  # pure, and the same few addresses recur (ours above all)


def _identity(name: str, address: str) -> Identity | None:
    if not address:
        return None
    # An internationalised address (SMTPUTF8, RFC 6532: "علی@example.ir") arrives as raw UTF-8,
    # surrogate-escaped: `_clean` alone made every such byte a "?", so that two customers whose
    # local parts had as many bytes became one identity, and replies went to "??????@...".
    address = _clean(_literal(address))
    value = _normalized_address(address) if len(address) <= 320 else normalize_email(address)
    return Identity("email", value, name) if value else None


def _sender(headers: Headers) -> Identity:
    """From, else Sender, else Return-Path: the first with a valid address."""
    from_name = ""
    for header in ("from", "sender", "return-path"):
        for value in headers.get(header, _NONE):
            name, address = _mailbox(value)
            from_name = from_name or name
            identity = _identity(name or from_name, address)
            if identity:
                return identity
    return Identity("email", "", from_name)


def _recipients(headers: Headers) -> tuple[Identity, ...]:
    found: dict[str, Identity] = {}
    for header in ("to", "cc", "delivered-to", "x-original-to"):
        values = [_FOLD.sub("", v) for v in headers.get(header, _NONE)]
        if not values:
            continue
        for name, address in _addresses(values):
            identity = _identity(_display_name(name), address)
            if identity and identity.value not in found:
                found[identity.value] = identity
    return tuple(found.values())


def _sent_at(headers: Headers) -> datetime | None:
    values = headers.get("date")
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
_BLOCK_TAGS = frozenset(_PARAGRAPH_TAGS + _LINE_TAGS)
_HTML_SPACE = re.compile(r"[ \t\r\n\f\v\xa0]+")
# Block boundaries are marked with private-use sentinels first, so that nested and adjacent
# blocks merge into one break instead of piling up blank lines.
_LINE, _PARAGRAPH = "\ue000", "\ue001"
_BREAKS = re.compile(f"[\\s{_LINE}{_PARAGRAPH}]+")
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
_NO_LINK_SCHEMES = ("#", "javascript:", "cid:", "data:")


def html_to_text(html: str) -> str:
    """Readable text of an HTML mail: scripts and styles dropped, block elements and <br> as line
    breaks, list items as "- ", links as "text (url)" when the url adds something.

    One iterative walk over the parsed tree, which is never modified: bs4's insertions cost a
    scan of the parent's children and of the previous sibling's descendants each, so marking
    every block in place was quadratic (80 KB of flat `<p>` took 25 s, deep nesting longer)."""
    html = html.replace(_LINE, "").replace(_PARAGRAPH, "")
    try:
        soup = BeautifulSoup(html, "html.parser")
        text = "".join(_html_pieces(soup))
    except Exception:  # bs4 has no failure mode we rely on; tags stripped crudely beats nothing
        text = re.sub(r"<[^>]*>", " ", html)
    text = _BREAKS.sub(_merge_breaks, text)
    lines = [line.strip() for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _string_types(tag: Tag) -> tuple[type, ...]:
    """The strings `tag.get_text()` reads (NavigableString and CData: no comments)."""
    types = tag.interesting_string_types or Tag.MAIN_CONTENT_STRING_TYPES
    return (types,) if isinstance(types, type) else tuple(types)


def _html_pieces(soup: BeautifulSoup) -> list[str]:
    """The text of the tree in document order, with the marks `html_to_text` turns into breaks:
    what `get_text()` gives after dropping `_DROP_TAGS`, collapsing source whitespace outside
    <pre>, a link's text followed by " (url)", <br> as a line break, a space after each cell,
    block sentinels around blocks and "- " opening list items."""
    out: list[str] = []
    shown = _string_types(soup)
    # A link's label is its `get_text(" ", strip=True)`: the stripped, non-empty strings inside
    # it, in `words`; `sizes[i]` is the length of words[:i] joined with a space after each, so
    # whether a label can equal its href is known without joining it (nested links would
    # otherwise rebuild the same text at every level).
    words: list[str] = []
    sizes = [0]
    links: list[tuple[str, int, tuple[type, ...]]] = []  # (href, first word, string types)
    in_pre = 0
    # (node, True) enters a node, (tag, False) leaves it; children are pushed in reverse.
    stack: list[tuple[Any, bool]] = [(child, True) for child in reversed(soup.contents)]
    while stack:
        node, entering = stack.pop()
        if not isinstance(node, Tag):
            kind = type(node)
            text = _HTML_SPACE.sub(" ", node) if kind is NavigableString and not in_pre else str(node)
            if kind in shown:
                out.append(text)
            if links and kind in links[-1][2] and (word := text.strip()):
                words.append(word)
                sizes.append(sizes[-1] + len(word) + 1)
            continue
        name = node.name
        if not entering:
            if name == "a":
                href, first, _ = links.pop()
                if href and len(words) > first and not href.lower().startswith(_NO_LINK_SCHEMES):
                    short = sizes[-1] - sizes[first] - 1 <= len(href)
                    label = " ".join(words[first:]) if short else None
                    if label is None or href not in (label, f"mailto:{label}", f"tel:{label}"):
                        out.append(f" ({href})")
                if not links:
                    del words[:], sizes[1:]
            elif name in ("td", "th"):
                out.append(" ")
            elif name == "pre":
                in_pre -= 1
            if name in _BLOCK_TAGS:
                out.append(_PARAGRAPH if name in _PARAGRAPH_TAGS else _LINE)
            continue
        if name in _DROP_TAGS:
            continue
        if name == "br":
            out.append("\n")
            continue
        if name in _BLOCK_TAGS:
            out.append(_PARAGRAPH if name in _PARAGRAPH_TAGS else _LINE)
            if name == "li":
                out.append("- ")
        if name == "pre":
            in_pre += 1
        elif name == "a":
            links.append((str(node.get("href") or "").strip(), len(words), _string_types(node)))
        stack.append((node, False))
        stack.extend((child, True) for child in reversed(node.contents))
    return out


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


# --- MIME headers of a part ---------------------------------------------------------------------

# One parameter segment of a structured header, as the stdlib splits them (`message._parseparam`):
# up to the next ";" outside a quoted string, where a quote right after a backslash is escaped.
# Linear, unlike the stdlib's loop, which rescans the value for every ";" inside quotes.
_PARAM_SEGMENT = re.compile(r'(?:[^"\\;]+|\\"?|"(?:[^"\\]+|\\"?)*"?)*')
_CHARSET_TOKEN = re.compile(r'[^\s"\'();]+')
# A quoted value, closed or not (header cut short); what follows the closing quote is dropped.
_QUOTED_VALUE = re.compile(r'"(?:[^"\\]|\\.?)*')


@dataclass(frozen=True, slots=True)
class _Part:
    """What the walk needs from a part's MIME headers, read once from their raw text."""

    content_type: str
    charset: str | None
    disposition: str | None
    filename: str | None  # decoded, None when absent or empty
    base64: bool


def _sanitize(text: str) -> str:
    """Surrogate-escaped 8-bit bytes as U+FFFD (what the stdlib's header objects hold)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


Param = str | tuple[str | None, str | None, str]  # plain, or RFC 2231 (charset, language, text)


def _params(value: str) -> tuple[str, dict[str, Param]]:
    """(the value before the first ";", {parameter: value}): `Message.get_param` semantics (first
    occurrence wins, quotes removed, RFC 2231 continuations joined), without the stdlib's header
    objects."""
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(value)
    while True:
        stop = _PARAM_SEGMENT.match(value, pos).end()  # type: ignore[union-attr]  # always matches
        name, eq, val = value[pos:stop].partition("=")
        val = val.strip()
        if val[:1] == '"':  # the stdlib's header parser reads `"a.pdf` and `"a.pdf"junk` as a.pdf
            val = _QUOTED_VALUE.match(val).group(0) + '"'  # type: ignore[union-attr]
        pairs.append((name.strip().lower(), val) if eq else (name.strip(), ""))
        if stop >= end:
            break
        pos = stop + 1
    head = value.partition(";")[0].strip()
    try:
        decoded = email.utils.decode_params(pairs)
    except Exception:  # nothing known raises here; a bad parameter is no reason to lose the part
        decoded = pairs[:1]
    found: dict[str, Param] = {}
    for name, val in decoded[1:]:
        key = name.lower()
        if key not in found:
            unquoted = email.utils.unquote(val[2] if isinstance(val, tuple) else val)
            found[key] = (val[0], val[1], unquoted) if isinstance(val, tuple) else unquoted
    return head, found


def _charset(value: Param | None) -> str | None:
    """`Message.get_content_charset`: lower-cased, None unless ASCII; a trailing comment or stray
    quote ("us-ascii" (Plain text)) is dropped, as the stdlib's header parser drops it."""
    if value is None:
        return None
    if isinstance(value, tuple):
        try:
            value = value[2].encode("raw-unicode-escape").decode(value[0] or "us-ascii")
        except (LookupError, UnicodeError):
            value = value[2]
    if not value.isascii():
        return None
    token = _CHARSET_TOKEN.search(value)
    return token.group(0).lower() if token else value.lower()


def _param_text(value: Param) -> str:
    """A parameter as text; RFC 2231 bytes through the charset repair (an unknown or wrong label
    is no reason for mojibake)."""
    if not isinstance(value, tuple):
        return email.utils.unquote(value)
    charset, _, text = value
    try:
        data = text.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:  # unencoded continuations may hold any character
        return text
    return decode_text(data, charset or "us-ascii")


def _part_info(part: Message) -> _Part:
    raw: dict[str, str] = {}
    for key, value in part.raw_items():
        key = str(key).lower()
        if key in ("content-type", "content-disposition", "content-transfer-encoding") and key not in raw:
            raw[key] = str(value).replace("\r", "").replace("\n", "")
    if "content-type" in raw:
        head, type_params = _params(raw["content-type"])
        content_type = _sanitize(head).lower()
        if content_type.count("/") != 1:  # RFC 2045 5.2
            content_type = "text/plain"
    else:
        content_type, type_params = part.get_default_type(), {}
    disposition, disposition_params = None, {}
    if "content-disposition" in raw:
        head, disposition_params = _params(raw["content-disposition"])
        disposition = _sanitize(head).lower()
    name = disposition_params.get("filename", type_params.get("name"))
    filename = _param_text(name).strip() if name is not None else ""
    return _Part(
        content_type=content_type,
        charset=_charset(type_params.get("charset")),
        disposition=disposition,
        filename=decode_header_text(filename) if filename else None,
        base64=raw.get("content-transfer-encoding", "").strip().lower().startswith("base64"),
    )


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
Texts = list[tuple[bool, "str | _HtmlText"]]


class _HtmlText:
    """An HTML body's text, converted when first asked for: the HTML branch of an alternative
    whose plain branch wins is never converted (BeautifulSoup is the costliest step there is)."""

    __slots__ = ("html", "_text")

    def __init__(self, html: str) -> None:
        self.html = html
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = html_to_text(self.html)
        return self._text


def _payload_bytes(part: Message, base64_cte: bool) -> bytes:
    if base64_cte:
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


def _add_attachment(part: Message, info: _Part, walk: _Walk) -> None:
    content_type = info.content_type
    name = sanitize_filename(info.filename, _fallback_name(content_type, len(walk.attachments) + 1))
    data = _payload_bytes(part, info.base64)
    if len(data) > walk.max_attachment_bytes:
        walk.attachments.append(AttachmentData(name, content_type, None, "", len(data)))
        walk.notes.append(
            f"attachment {name!r} ({len(data)} bytes) exceeds the {walk.max_attachment_bytes}-byte limit; content not kept"
        )
    else:
        walk.attachments.append(AttachmentData(name, content_type, data, size=len(data)))


def _body_text(part: Message, info: _Part, walk: _Walk, texts: Texts) -> None:
    data = _payload_bytes(part, info.base64)
    charset = info.charset
    if info.content_type == "text/html":
        if not charset:
            declared = _META_CHARSET.search(data[:4096])
            charset = declared.group(1).decode("ascii", "ignore") if declared else None
        html = _clean(decode_text(data, charset))
        walk.htmls.append(html)
        texts.append((True, _HtmlText(html)))
    else:
        texts.append((False, decode_text(data, charset)))


def _forwarded(inner: Message, walk: _Walk, texts: Texts, depth: int) -> None:
    header = [_FORWARD_MARKER]
    headers = header_index(inner)
    for label in ("From", "Date", "Subject", "To"):
        value = _header(headers, label.lower())
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
    # Plain renderings first, so HTML is converted only when no plain one says anything.
    chosen = next((r for r in renderings if not any(from_html for from_html, _ in r) and _join(r)), None)
    if chosen is None:
        with_text = [r for r in renderings if _join(r)]
        chosen = with_text[-1] if with_text else []
    texts.extend(chosen)


def _walk(part: Message, walk: _Walk, texts: Texts, depth: int = 0) -> None:
    walk.parts += 1
    if walk.parts > walk.max_parts or depth > _MAX_DEPTH:
        if not walk.truncated:
            walk.truncated = True
            walk.notes.append(f"more than {walk.max_parts} parts or {_MAX_DEPTH} levels; the rest was skipped")
        return
    info = _part_info(part)
    content_type = info.content_type
    payload = part.get_payload() if part.is_multipart() else None
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
        body = _payload_bytes(part, info.base64)
        repaired = _rebound(body, content_type)
        if repaired is not None:
            for child in repaired:
                _walk(child, walk, texts, depth + 1)
        else:  # the whole body as text is better read than lost
            texts.append((False, decode_text(body)))
    elif content_type in _BODY_TYPES and not info.filename and info.disposition != "attachment":
        _body_text(part, info, walk, texts)
    else:
        _add_attachment(part, info, walk)


_BOUNDARY_LINE = re.compile(rb"^--([^\s\"]{1,200})\r?\n(?=[A-Za-z-]+:)", re.MULTILINE)


def _rebound(body: bytes, content_type: str) -> list[Message] | None:
    """Parts of a multipart whose declared boundary never occurs (a common spam-kit and broken
    mailer bug): re-parse with the boundary the body actually uses."""
    found = _BOUNDARY_LINE.search(body)
    if not found:
        return None
    header = f'Content-Type: {content_type}; boundary="{found.group(1).decode("ascii", "replace")}"\r\n\r\n'
    try:
        repaired = email.message_from_bytes(header.encode() + body, policy=compat32)
    except Exception:
        return None
    payload = safe_read(repaired, lambda m: m.get_payload(), None)
    children = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    return children or None


def _join(texts: Texts) -> str:
    pieces = (str(text).replace("\r\n", "\n").replace("\r", "\n").strip("\n") for _, text in texts)
    return "\n\n".join(p for p in pieces if p.strip())


# --- entry point --------------------------------------------------------------------------------


def _parse(raw: bytes) -> Message:
    try:
        return parse_fast(raw) or email.message_from_bytes(raw, policy=compat32)
    except Exception as exc:  # the feed parser is lenient; nothing known reaches here
        raise MalformedMessage(f"mail could not be parsed at all: {exc!r}") from exc


def parse_email(
    raw: bytes, *, max_attachment_bytes: int = 25 * 2**20, max_parts: int = 500
) -> InboundMessage:
    """Normalise one raw mail. Only `MalformedMessage` escapes, and only for input with nothing
    usable; oversized attachments are recorded without their bytes, with a note in `meta`."""
    if not raw or not raw.strip():
        raise MalformedMessage("empty mail: no bytes to parse")
    msg = _parse(raw)
    headers = header_index(msg)
    if not headers:
        raise MalformedMessage("no header lines found: input is not an RFC 5322 message")

    walk = _Walk(max_attachment_bytes, max_parts)
    texts: Texts = []
    _walk(msg, walk, texts)
    text = fix_letters(_clean(_join(texts))).strip()

    sender = _sender(headers)
    # From raw header text: 8-bit bytes in Auto-Submitted arrive surrogate-escaped.
    auto_reason = _clean(detect_automatic(msg, sender.value, headers))
    message_id = next(map(_message_id, headers.get("message-id", _NONE)), "")
    references = _message_ids(headers.get("references", _NONE))
    references += [i for i in map(_message_id, bounced_message_ids(msg)) if i and i not in references]
    in_reply_to = _message_ids(headers.get("in-reply-to", _NONE))
    meta = [(name, value) for name in _META_HEADERS if (value := _header(headers, name))]
    meta += [("note", note) for note in walk.notes]
    display_text = trim_quoted(text) if text else ""

    return InboundMessage(
        channel="email",
        kind="message",
        channel_message_id=message_id or "sha256:" + hashlib.sha256(raw).hexdigest(),
        message_id=message_id,
        in_reply_to=in_reply_to[0] if in_reply_to else "",
        references=tuple(references),
        sender=sender,
        conversation_key=f"email:{sender.value}" if sender.value else "",
        recipients=_recipients(headers),
        subject=fix_letters(_header(headers, "subject")),
        text=text,
        html="\n".join(walk.htmls),
        display_text=display_text,
        # The sender's own phone, from their signature, links their SMS and calls to them.
        extra_identities=() if auto_reason else tuple(stated_phones(display_text)),
        attachments=tuple(walk.attachments),
        sent_at=_sent_at(headers),
        auto_reason=auto_reason,
        # Machines never open tickets on their own (ARCHITECTURE: matching, step 4).
        opens_ticket=not auto_reason,
        meta=tuple(meta),
    )
