"""The one Persian text normaliser: digits, Arabic-vs-Persian letters, and the matching key.

Display helpers (`persian_digits`, `fix_letters`) change as little as possible; the matching key
(`normalize_for_matching`) folds every spelling variant a Persian writer, keyboard or legacy
mail encoding produces into one string, so search and dedupe compare like with like.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

_PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"  # U+06F0–06F9
_ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"  # U+0660–0669

_TO_ASCII = str.maketrans(_PERSIAN_DIGITS + _ARABIC_DIGITS, "0123456789" * 2)
_TO_PERSIAN = str.maketrans("0123456789", _PERSIAN_DIGITS)

# Arabic yeh/alef maksura and kaf: what Arabic keyboards and windows-1256/iso-8859-6 mail carry.
_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک"})

# Matching only: spellings Persian writers use interchangeably. ة (teh marbuta) and ۀ (heh with
# yeh above, the ezafe on heh) are written as plain ه by most people; hamza seats lose the hamza
# (أ إ ٱ → ا, ؤ → و, ئ → ی: "رؤیا"/"رویا", "پائیز"/"پاییز"). آ stays: it is a letter of its own.
_MATCH_LETTERS = str.maketrans(
    {"ة": "ه", "ۀ": "ه", "أ": "ا", "إ": "ا", "ٱ": "ا", "ؤ": "و", "ئ": "ی"}
)

# Zero-width and bidi-control characters. ZWNJ is the Persian half-space ("می‌خواهم"); writers
# and keyboards are inconsistent (half-space, nothing, or a full space), so for matching it joins
# the word: removed, never turned into a space. The bidi marks arrive with RTL copy-paste.
_INVISIBLE = dict.fromkeys(
    [0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF, 0x00AD, 0x061C]
    + list(range(0x202A, 0x202F))
    + list(range(0x2066, 0x206A))
)

# Tatweel (kashida) stretches a word for looks; harakat and superscript alef are optional vowels.
_DECORATION = dict.fromkeys([0x0640, 0x0670, *range(0x064B, 0x0660)])

_TOKEN = re.compile(r"\w+")
# Runs of what str.isalpha() accepts, near enough: word characters minus digits and _.
_LETTER_RUN = re.compile(r"[^\W\d_]+")


def _letter_class(blocks: list[tuple[int, int]]) -> str:
    """A regex character class of exactly the letters (`[^\\W\\d_]`) in these Unicode blocks,
    as ranges: a plain class is tested in one step per character, where a look-ahead per
    character cost 2.5 times as much."""
    spans: list[list[int]] = []
    for first, last in blocks:
        for code in range(first, last + 1):
            if _LETTER_RUN.fullmatch(chr(code)):
                if spans and spans[-1][1] == code - 1:
                    spans[-1][1] = code
                else:
                    spans.append([code, code])
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in spans)


# Arabic-script letters (not its digits or punctuation).
_ARABIC_BLOCKS = [(0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)]
_ARABIC_LETTER_RUN = re.compile(f"[{_letter_class(_ARABIC_BLOCKS)}]+")


def _translator(table: dict[int, object]) -> Callable[[str], str]:
    """`s.translate(table)`, fast. str.translate costs a dict look-up per character (~0.1 µs:
    1.5 ms for a 10 KB mail holding one half-space), and a regex character class is ~10 ns per
    character; `char in s` is a C search (~0.3 µs per 10 KB), so each of the table's characters
    is looked for that way and the ones present are replaced with one `str.replace` pass each.
    The tables here never map a character to another key, so the order of passes is free."""
    mapping = [(chr(key), "" if value is None else (chr(value) if isinstance(value, int) else str(value)))
               for key, value in table.items()]
    # str.isascii() is a flag look-up: an ASCII text (most of an English mail) skips the searches
    # for characters it cannot hold.
    ascii_mapping = [(char, replacement) for char, replacement in mapping if char.isascii()]

    def translate(s: str) -> str:
        for char, replacement in ascii_mapping if s.isascii() else mapping:
            if char in s:
                s = s.replace(char, replacement)
        return s

    return translate


_ascii_digits = _translator(_TO_ASCII)
_fix_letters = _translator(_LETTERS)
_remove_invisible = _translator(_INVISIBLE)
# Decoration, Arabic letters and matching variants have disjoint keys and no value of one is a
# key of another, so one pass equals the three in sequence.
_matching_letters = _translator({**_DECORATION, **_LETTERS, **_MATCH_LETTERS})


def ascii_digits(s: str) -> str:
    """Persian and Arabic-Indic digits to ASCII; everything else unchanged."""
    return _ascii_digits(s)


def persian_digits(s: str) -> str:
    """ASCII digits to Persian digits, for text shown to Persian readers."""
    return s.translate(_TO_PERSIAN)


def fix_letters(s: str) -> str:
    """Arabic yeh (ي, ى) to Persian ی and Arabic kaf ك to Persian ک; nothing else changes."""
    return _fix_letters(s)


def remove_invisible(s: str) -> str:
    """Drop zero-width and bidi-control characters (ZWNJ included), e.g. before parsing a
    number or reference copied out of right-to-left text."""
    return _remove_invisible(s)


def normalize_for_matching(s: str) -> str:
    """The comparison key: same words, however typed, give the same string. Idempotent."""
    if s.isascii():  # a flag look-up; none of the steps below changes ASCII but the case
        return " ".join(s.lower().split())
    return _normalize_any(s)


def _normalize_any(s: str) -> str:
    # Invisible characters go first, so NFKC can compose what they used to separate.
    s = remove_invisible(s)
    # NFKC before stripping marks: a decomposed ا + madda must become آ, not a bare ا.
    # It also folds Arabic presentation forms (old PDFs) and fullwidth characters to base letters.
    s = unicodedata.normalize("NFKC", s).casefold()
    s = _matching_letters(s)
    # Again, since casefolding and mark removal can leave sequences NFKC would recompose.
    s = ascii_digits(unicodedata.normalize("NFKC", s))
    return " ".join(s.split())


# Every Unicode dash (category Pd, as NFKC leaves them: it has already made the small, fullwidth
# and vertical forms one of these) and the minus sign is the hyphen; the division, fraction and
# Arabic date slashes are the solidus (NFKC makes the fullwidth one a solidus itself).
_CLAIM_SEPARATORS = str.maketrans(
    dict.fromkeys("\u058a\u05be\u1400\u1806\u2010\u2012\u2013\u2014\u2015\u2212\u2e17\u2e1a\u2e3a\u2e3b"
                  "\u2e40\u2e5d\u301c\u3030\u30a0\U00010ead", "-")
    | dict.fromkeys("\u060d\u2044\u2215\u29f8", "/")
)


def claim_number_key(number: str) -> str:
    """What an insurer's claim number is matched by: "۱۴۰۵/۱۲۳۴", "1405/1234" and "١٤٠٥ ∕ ١٢٣٤"
    have one key, "asia-9" and "ASIA–9" another. The matching key's folding (digits, letter
    variants, case, invisible characters and tatweel), every dash made "-" and every slash "/",
    and no whitespace at all: an insurer's system pads or splits its numbers at will. Idempotent."""
    key = "".join(normalize_for_matching(number).translate(_CLAIM_SEPARATORS).split())
    # Once more: NFKC spells some characters with a space (¨ is a space and a diaeresis), and
    # taking the space out joins the mark to the letter before it.
    return unicodedata.normalize("NFKC", key)


def search_words(s: str) -> list[str]:
    """Normalised word tokens for search, in order, repeats kept: a detached affix ("می", "ها")
    belongs to the word beside it, each time it is written."""
    # A word of underscores alone is none to the full-text index (its tokenizer splits on them):
    # asked for, it would be a phrase of no words, and one of those in an AND matches nothing.
    return [word for word in _TOKEN.findall(normalize_for_matching(s)) if word.strip("_")]


# The opening of a message tells its language; reading a whole 1 MB mail would not change it.
LANGUAGE_SAMPLE_CHARS = 1000


def looks_persian(s: str) -> bool:
    """True when at least half of the letters are in Arabic script (ties go to Persian: most
    senders are Iranian, and Latin claim refs or e-mail addresses inflate the other side)."""
    sample = s[:LANGUAGE_SAMPLE_CHARS]
    if sample.isascii():  # no Arabic-script letter (a C check, for the English half of the mail)
        return False
    # Counted as what removing every run of them takes away (in C): neither a per-character
    # Python loop nor findall's list of one-character strings.
    letters = len(sample) - len(_LETTER_RUN.sub("", sample))
    arabic = len(sample) - len(_ARABIC_LETTER_RUN.sub("", sample))
    return arabic > 0 and 2 * arabic >= letters
