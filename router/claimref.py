"""Claim references, `PREFIX-<Jalali year>-<6-digit sequence>` (e.g. `PV-1405-000123`):
formatting, and finding them again however a customer retyped them in a reply."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from itertools import product
from zoneinfo import ZoneInfo

from persiantools.jdatetime import JalaliDate

from ingest.persian import ascii_digits, remove_invisible

TEHRAN = ZoneInfo("Asia/Tehran")

_MIN_YEAR, _MAX_YEAR = 1300, 1499
_MAX_SEQ = 999_999
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# Between the parts: nothing, or a short run of spaces, dashes (ASCII, U+2010–2015, minus sign),
# underscores or slashes, as people and mail clients mangle "PV-1405-000123".
_SEP = r"[\s_/\-\u2010-\u2015\u2212]{0,3}"


def jalali_year(moment: datetime) -> int:
    """The Jalali (solar hijri) year in Tehran at `moment`; Nowruz turns it over."""
    if moment.tzinfo is None:
        raise ValueError(f"jalali_year needs a timezone-aware datetime, got naive {moment!r}")
    return JalaliDate.to_jalali(moment.astimezone(TEHRAN).date()).year


def _canonical_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"claim ref prefix must be ASCII letters then digits, got {prefix!r}")
    return prefix.upper()


def format_claim_ref(prefix: str, year: int, seq: int) -> str:
    """`format_claim_ref("PV", 1405, 123)` → `"PV-1405-000123"`."""
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"claim ref year must be a Jalali year {_MIN_YEAR}–{_MAX_YEAR}, got {year}")
    if not 1 <= seq <= _MAX_SEQ:
        raise ValueError(f"claim ref sequence must be 1–{_MAX_SEQ}, got {seq}")
    return f"{_canonical_prefix(prefix)}-{year}-{seq:06d}"


@lru_cache(maxsize=16)
def _pattern(prefix: str) -> re.Pattern[str]:
    # `prefix` is already checked alphanumeric by `_canonical_prefix`, so it needs no escaping.
    # Not glued to a longer ASCII word or number on either side ("XPV-…", "…-0001234567").
    # Persian letters may touch it: mixed-script text often has no space at the script switch.
    return re.compile(
        rf"(?<![A-Za-z0-9])(?i:{prefix}){_SEP}(1[34][0-9]{{2}}){_SEP}([0-9]{{1,6}})"
        r"(?![A-Za-z0-9])"
    )


@lru_cache(maxsize=16)
def _openings(prefix: str) -> frozenset[str]:
    """The prefix's first two characters in every mix of case ("PV", "Pv", "pV", "pv")."""
    return frozenset(map("".join, product(*((c.lower(), c.upper()) for c in prefix[:2]))))


def _prepare(text: str) -> str:
    # Digits to ASCII and invisible marks out, so "PV‏-۱۴۰۵" reads as "PV-1405".
    return ascii_digits(remove_invisible(text))


def _from_match(prefix: str, match: re.Match[str]) -> str | None:
    seq = int(match[2])
    return f"{prefix}-{match[1]}-{seq:06d}" if seq else None


def find_claim_refs(text: str, prefix: str) -> list[str]:
    """Every claim reference in `text`, canonical, in order of first appearance, no repeats."""
    canonical = _canonical_prefix(prefix)
    prepared = _prepare(text)
    # Most messages name no reference; a plain substring search (in C) for the prefix's opening
    # letters rules that out far faster than the case-insensitive pattern could.
    if not any(opening in prepared for opening in _openings(canonical)):
        return []
    refs = (_from_match(canonical, m) for m in _pattern(canonical).finditer(prepared))
    return list(dict.fromkeys(ref for ref in refs if ref))


def parse_claim_ref(text: str, prefix: str) -> str | None:
    """The canonical reference when the whole (trimmed) `text` is exactly one reference."""
    canonical = _canonical_prefix(prefix)
    match = _pattern(canonical).fullmatch(_prepare(text).strip())
    return _from_match(canonical, match) if match else None
