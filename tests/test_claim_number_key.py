"""The key an insurer's claim number is matched by (ingest.persian.claim_number_key): every way an
insurer's system may write one number gives one key, and different numbers keep different keys."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.persian import claim_number_key, persian_digits
from tests.test_persian import persianish

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
DASHES = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\ufe63", "\uff0d"]
SLASHES = ["/", "\u2215", "\u2044", "\uff0f", "\u060d"]
# Persian letters with the spellings keyboards and legacy encodings give them.
LETTER_SPELLINGS = {"ی": ["ی", "ي", "ى"], "ک": ["ک", "ك"], "ه": ["ه", "ة"], "ا": ["ا", "أ", "إ"],
                    "و": ["و", "ؤ"]}
# What an insurer's system may put between the characters of a number.
FILLERS = ["", " ", "\u00a0", "\t", "\u200c", "\u200d", "\u200f", "\u0640", "\u3000"]

# A number as its key writes it: lower-case Latin, ASCII digits, Persian letters, - and /.
canonical = st.text(alphabet="abcxyz0123456789-/" + "پرونده" + "".join(LETTER_SPELLINGS), min_size=1, max_size=16)


@st.composite
def respelled(draw: st.DrawFn, number: str) -> str:
    """`number` as another system writes it: each digit in any script, letters in any case or
    variant, any dash or slash, and spaces, half-spaces, bidi marks or tatweel anywhere."""
    out = [draw(st.sampled_from(FILLERS))]
    for char in number:
        if char.isdigit():
            char = draw(st.sampled_from([char, persian_digits(char), char.translate(ARABIC_INDIC)]))
        elif char.isascii() and char.isalpha():
            char = draw(st.sampled_from([char, char.upper()]))
        else:
            choices = DASHES if char == "-" else SLASHES if char == "/" else LETTER_SPELLINGS.get(char, [char])
            char = draw(st.sampled_from(choices))
        out += [char, draw(st.sampled_from(FILLERS))]
    return "".join(out)


@pytest.mark.parametrize(("a", "b"), [
    ("۱۴۰۵/۱۲۳۴", "1405/1234"),
    ("١٤٠٥/١٢٣٤", "1405/1234"),
    ("ASIA-۱۴۰۵-۰۰۹", "asia–1405—009"),
    (" 1405 / 1234 ", "1405/1234"),
    ("1405\u200c/\u200c1234", "1405/1234"),
    ("۱۴۰۵ـ۱۲۳۴", "14051234"),  # tatweel stretches, it separates nothing
    ("خسارت-ي-ك-۱", "خسارت-ی-ک-1"),
    ("ＡＳＩＡ／９", "asia/9"),  # fullwidth
    ("PV\u2044۱۲", "pv/12"),
])
def test_spellings_of_one_number_have_one_key(a: str, b: str) -> None:
    assert claim_number_key(a) == claim_number_key(b)


@pytest.mark.parametrize(("a", "b"), [
    ("1405/1234", "1405-1234"),  # a slash is not a dash
    ("1405/1234", "1405/1235"),
    ("1405/1234", "1405.1234"),
    ("14/051234", "1405/1234"),
    ("آب-1", "اب-1"),  # alef madda is a letter of its own
])
def test_different_numbers_have_different_keys(a: str, b: str) -> None:
    assert claim_number_key(a) != claim_number_key(b)


@given(canonical.flatmap(lambda number: st.tuples(st.just(number), respelled(number))))
def test_any_spelling_of_a_number_has_the_number_itself_as_its_key(drawn: tuple[str, str]) -> None:
    number, spelling = drawn
    assert claim_number_key(number) == number
    assert claim_number_key(spelling) == number


@given(st.text(alphabet="0123456789/- ", min_size=1))
def test_persian_and_latin_digits_give_the_same_key(number: str) -> None:
    assert claim_number_key(persian_digits(number)) == claim_number_key(number)
    assert claim_number_key(number.translate(ARABIC_INDIC)) == claim_number_key(number)


@given(st.data(), canonical, canonical)
def test_distinct_numbers_stay_distinct_however_written(data: st.DataObject, a: str, b: str) -> None:
    spelt_a, spelt_b = data.draw(respelled(a)), data.draw(respelled(b))
    assert (claim_number_key(spelt_a) == claim_number_key(spelt_b)) == (a == b)


@given(persianish)
def test_the_key_is_idempotent_and_has_no_spaces_or_persian_digits(s: str) -> None:
    key = claim_number_key(s)
    assert claim_number_key(key) == key
    assert not any(c.isspace() or "۰" <= c <= "۹" or "٠" <= c <= "٩" for c in key)


def test_every_unicode_dash_and_the_minus_sign_are_the_hyphen() -> None:
    dashes = [c for c in map(chr, range(sys.maxunicode + 1)) if unicodedata.category(c) == "Pd"]
    assert len(dashes) > 20
    assert {c: claim_number_key(f"1{c}2") for c in [*dashes, "\u2212"]} == dict.fromkeys([*dashes, "\u2212"], "1-2")
