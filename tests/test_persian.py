from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.persian import (
    _ARABIC_LETTER_RUN,
    _normalize_any,
    ascii_digits,
    fix_letters,
    looks_persian,
    normalize_for_matching,
    persian_digits,
    remove_invisible,
    search_words,
)

ZWNJ = "\u200c"

# Text that looks like what reaches us: Persian and Arabic letters, marks, digits in three
# scripts, invisible characters, Latin, and the odd character from anywhere else.
persianish = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
        st.characters(min_codepoint=0xFB50, max_codepoint=0xFEFF),
        st.sampled_from(["\u200c", "\u200d", "\u200f", "\u200e", " ", "\t", "\n", "\u00a0"]),
        st.characters(max_codepoint=0x024F),
        st.characters(),
    )
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
        ("پرونده ۱۴۰۵-٠٠٠١٢٣", "پرونده 1405-000123"),
        ("no digits", "no digits"),
    ],
)
def test_ascii_digits_converts_persian_and_arabic_indic_digits(raw: str, expected: str) -> None:
    assert ascii_digits(raw) == expected


def test_persian_digits_converts_only_ascii_digits() -> None:
    assert persian_digits("PV-1405-000123 ٤") == "PV-۱۴۰۵-۰۰۰۱۲۳ ٤"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("علي", "علی"),  # Arabic yeh
        ("مصطفى", "مصطفی"),  # alef maksura
        ("كتاب", "کتاب"),  # Arabic kaf
        ("ي ى ك".encode("windows-1256").decode("windows-1256"), "ی ی ک"),
        ("ي ك".encode("iso-8859-6").decode("iso-8859-6"), "ی ک"),
        ("خانۀ می‌خواهم ة ١", "خانۀ می‌خواهم ة ١"),  # everything else is kept for display
    ],
)
def test_fix_letters_turns_arabic_yeh_and_kaf_into_persian(raw: str, expected: str) -> None:
    assert fix_letters(raw) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("می‌خواهم", "میخواهم"),  # ZWNJ is a joiner
        ("می\u200dخواهم", "میخواهم"),  # ZWJ too
        ("كتابهاي", "کتابهای"),
        ("علـــــی", "علی"),  # tatweel
        ("عَلِیّ", "علی"),  # harakat
        ("خانۀ", "خانه"),  # heh with yeh above
        ("خانهٔ", "خانه"),  # heh + combining hamza
        ("مدرسة", "مدرسه"),  # teh marbuta
        ("مسأله", "مساله"),
        ("رؤیا", "رویا"),
        ("پائیز", "پاییز"),
        ("\u0627\u0653ب", "آب"),  # decomposed alef madda stays آ
        ("ﻛﺘﺎﺏ", "کتاب"),  # presentation forms from old PDFs
        ("شماره ۱۲۳", "شماره 123"),
        ("  Claim\u00a0\tNUMBER \n", "claim number"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("\u200fسلام\u200e", "سلام"),  # bidi marks
    ],
)
def test_spelling_variants_normalise_to_the_same_key(a: str, b: str) -> None:
    assert normalize_for_matching(a) == normalize_for_matching(b)


def test_alef_madda_is_kept_distinct_from_bare_alef() -> None:
    assert normalize_for_matching("آب") != normalize_for_matching("اب")


def test_normalised_key_is_casefolded_with_ascii_digits_and_single_spaces() -> None:
    assert normalize_for_matching("  PV–۱۴۰۵   Ali  ") == "pv–1405 ali"


def test_remove_invisible_drops_zero_width_and_bidi_characters() -> None:
    assert remove_invisible("\u202bمی\u200cخواهم\u202c\u2066x\u2069\ufeff") == "میخواهمx"


def test_search_words_are_normalised_in_order() -> None:
    text = "سلام، پرونده‌ي PV-1405-000123 را مي‌خواهم. سلام!"
    assert search_words(text) == ["سلام", "پروندهی", "pv", "1405", "000123", "را", "میخواهم", "سلام"]


def test_search_words_of_blank_text_are_empty() -> None:
    assert search_words(" \u200c\n") == []


def test_search_words_keep_order_and_repeats_but_no_word_of_underscores() -> None:
    # A query's detached "می" belongs to each verb it is written before.
    assert search_words("مي خواهم _ می\u200cبینم، می __ رم foo_bar") == [
        "می", "خواهم", "میبینم", "می", "رم", "foo_bar"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("سلام، خسارت خودرو دارم", True),
        ("سلام PV-1405-000123", True),
        ("ملف رقم ٣", True),  # Arabic is script-wise the same answer
        ("Hello, I have a claim", False),
        ("Ali علی", True),  # a tie goes to Persian
        ("My claim: خسارت", False),
        ("۱۲۳۴ 5678 !!", False),  # digits are not letters
        ("", False),
    ],
)
def test_looks_persian_follows_the_script_of_most_letters(text: str, expected: bool) -> None:
    assert looks_persian(text) is expected


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_text_takes_a_shortcut_to_the_same_key(s: str) -> None:
    assert normalize_for_matching(s) == _normalize_any(s)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_text_has_no_character_the_tables_replace(s: str) -> None:
    assert (ascii_digits(s), fix_letters(s), remove_invisible(s)) == (s, s, s)
    assert looks_persian(s) is False


@given(persianish)
def test_normalize_for_matching_is_idempotent(s: str) -> None:
    once = normalize_for_matching(s)
    assert normalize_for_matching(once) == once


@given(persianish)
def test_normalised_text_contains_no_arabic_digits_letters_or_joiners(s: str) -> None:
    key = normalize_for_matching(s)
    assert not set(key) & set("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹يىكةۀ\u0640\u200c\u200d")


@given(persianish, st.integers(min_value=0), st.sampled_from([ZWNJ, "\u200d", "\u200f"]))
def test_inserting_an_invisible_joiner_does_not_change_the_key(s: str, at: int, mark: str) -> None:
    at %= len(s) + 1
    assert normalize_for_matching(s[:at] + mark + s[at:]) == normalize_for_matching(s)


@given(st.text())
def test_ascii_digits_undoes_persian_digits(s: str) -> None:
    assert ascii_digits(persian_digits(s)) == ascii_digits(s)


@given(st.text(alphabet=st.characters(blacklist_categories=["Nd"]) | st.sampled_from("0123456789")))
def test_persian_digits_round_trips_text_with_ascii_digits(s: str) -> None:
    assert ascii_digits(persian_digits(s)) == s


@given(persianish)
def test_fix_letters_is_idempotent_and_keeps_length(s: str) -> None:
    fixed = fix_letters(s)
    assert fix_letters(fixed) == fixed
    assert len(fixed) == len(s)


@given(st.lists(st.sampled_from(list("ab_1۲ یﻻ-x٣ك\u064b\u0640\u06d4\u0621") + ["ﷲ", "\ufe8e", "\u08a0"]), max_size=20).map("".join))
def test_the_arabic_letter_class_is_the_arabic_blocks_letters(text: str) -> None:
    # The look-ahead definition the precomputed class replaced.
    reference = re.compile(r"(?:(?![\W\d_])[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF])+")
    assert _ARABIC_LETTER_RUN.sub("", text) == reference.sub("", text)
