"""SMS length in segments, the unit carriers bill and handsets reassemble.

A message that fits the GSM-7 alphabet costs 7 bits a character: 160 in one SMS, 153 a part once
concatenated (the user-data header takes the rest). Anything else, Persian included, goes as UCS-2
(UTF-16 code units): 70 in one SMS, 67 a part. Characters of the GSM extension table (`€ [ ] { }`
...) are an escape plus a character, so they count double and are never split across parts; nor
is a UTF-16 surrogate pair. A message split into several is cut between grapheme clusters. Pure
functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import regex

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (without the escape character itself) and its extension table.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

_SINGLE = {"GSM-7": 160, "UCS-2": 70}
_PART = {"GSM-7": 153, "UCS-2": 67}
_LAST_SPACE = re.compile(r".*\s", re.DOTALL)


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    segments: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)

    def __str__(self) -> str:
        return f"{self.segments} segment{'' if self.segments == 1 else 's'} {self.encoding}"


def encoding_for(text: str) -> Encoding:
    return "GSM-7" if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text) else "UCS-2"


def _unit_weights(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count_segments(text: str) -> SegmentCount:
    """How many SMS `text` takes (an empty message still takes one)."""
    encoding = encoding_for(text)
    weights = _unit_weights(text, encoding)
    units = sum(weights)
    if units <= _SINGLE[encoding]:
        return SegmentCount(encoding, 1, units)
    capacity, parts, used = _PART[encoding], 1, 0
    for weight in weights:  # greedy packing: a double-unit character never straddles two parts
        if used + weight > capacity:
            parts, used = parts + 1, 0
        used += weight
    return SegmentCount(encoding, parts, units)


def _longest_fitting_prefix(text: str, fits: Callable[[str], bool]) -> int:
    # `fits` only turns false as a prefix grows (more segments, more characters): bisect.
    low, high = 1, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(text[:mid]):
            low = mid
        else:
            high = mid - 1
    return low


# Grapheme clusters by UAX #29 (`regex`'s \X): a flag's two regional indicators, an emoji ZWJ
# sequence or skin tone, a Persian letter with its harakat or ZWNJ, CR LF stay in one piece.
_GRAPHEME = regex.compile(r"\X")


def cluster_cut(text: str, cut: int) -> int:
    """The last grapheme-cluster boundary at or before `cut`; `cut` itself when one cluster
    reaches past it from the start (a cluster longer than a message: cut inside it rather than
    not at all)."""
    boundary = 0
    for cluster in _GRAPHEME.finditer(text):
        if cluster.end() > cut:
            break
        boundary = cluster.end()
    return boundary or cut


def split_text(text: str, fits: Callable[[str], bool]) -> list[str]:
    """`text` whole when it fits, else in chunks that each fit, cut at the last whitespace when
    there is one in the second half of a chunk, else between grapheme clusters, so that a flag,
    an emoji sequence or a letter and its mark is not shown broken across two messages. `fits`
    must hold for any single character."""
    chunks: list[str] = []
    rest = text
    while not fits(rest):
        cut = _longest_fitting_prefix(rest, fits)
        space = _LAST_SPACE.match(rest[:cut])
        if space and space.end() > cut // 2:
            cut = space.end()
        cut = cluster_cut(rest, cut)
        if chunk := rest[:cut].rstrip():
            chunks.append(chunk)
        rest = rest[cut:].lstrip()
    if rest or not chunks:
        chunks.append(rest)
    return chunks


def split_message(text: str, max_segments: int = 10) -> list[str]:
    """`text` as one (concatenated) SMS when it takes at most `max_segments`, else as several."""
    if max_segments < 1:
        raise ValueError(f"max_segments = {max_segments}: expected at least 1")
    return split_text(text, lambda chunk: count_segments(chunk).segments <= max_segments)


# Over ten segments handsets and carriers stop reassembling reliably: the reply goes as several.
MAX_SEGMENTS = 10


@dataclass(frozen=True, slots=True)
class TextPlan:
    """How a reply leaves: the message bodies, and what the agent is shown about its length."""

    parts: tuple[str, ...]
    detail: str


def plan_sms(text: str, max_segments: int = MAX_SEGMENTS) -> TextPlan:
    """One concatenated SMS counted in segments ("3 segments UCS-2"), or several messages over
    `max_segments` ("14 segments UCS-2 in 2 messages"). Shared by every SMS gateway."""
    count = count_segments(text)
    parts = split_message(text, max_segments)
    return TextPlan(tuple(parts), str(count) if len(parts) == 1 else f"{count} in {len(parts)} messages")
