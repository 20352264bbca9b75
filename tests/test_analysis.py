"""ingest.analysis computes each normalised key once and reuses it: that must give exactly what
normalising the joined text would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import re

from ingest.analysis import _joined, analyse, letters_apart_from_digits, search_key, text_facts
from ingest.persian import normalize_for_matching
from ingest.records import Identity, InboundMessage

# Letters in both scripts and their variants, digits, marks, invisible and odd spaces, ligatures.
TRICKY = st.lists(st.sampled_from(list("abcAB يكی۱۲3ةأإؤ\u200c\u200d\u200f\u064b\u0640\n\t") +
                                  ["ﻻ", "ﷲ", "e\u0301", "\u0627\u0653", "ǅ", "ß", "\u00a0", "\u2028", "ﬁ", "Σ"]),
                  max_size=12).map("".join)


@given(TRICKY, TRICKY, st.sampled_from([" ", "\n", "  \t"]))
def test_the_key_of_joined_texts_is_their_keys_joined(a: str, b: str, between: str) -> None:
    assert normalize_for_matching(a + between + b) == _joined(normalize_for_matching(a), normalize_for_matching(b))


@given(TRICKY, TRICKY, TRICKY)
def test_analysis_gives_what_normalising_from_scratch_gives(subject: str, text: str, name: str) -> None:
    msg = InboundMessage(channel="sms", channel_message_id="x", sender=Identity("phone", "+989121234567", name),
                         subject=subject, text=text)
    analysis = analyse(msg, "PV")
    assert analysis.search_body == search_key(f"{subject} {name} +989121234567 {text}")
    assert analysis.text == text_facts(msg)


# What the digit-run rule replaced: a space at every letter/digit boundary, tried at each position.
_BOUNDARY = re.compile(r"(?<=[0-9])(?=[^\W\d])|(?<=[^\W\d])(?=[0-9])")


@given(st.lists(st.sampled_from(list("ab_ 1 29ی۲ک-\u064b\u00b2") + ["ﻻ", "PV", "\n"]), max_size=20).map("".join))
def test_letters_are_split_from_digits_at_every_boundary(text: str) -> None:
    assert letters_apart_from_digits(text) == _BOUNDARY.sub(" ", text)


def test_plates_and_refs_split_into_searchable_parts() -> None:
    assert search_key("پلاک ۲۲ی۴۵۶ pv1405") == "پلاک 22 ی 456 pv 1405"


def test_fts_match_offers_both_spellings_of_a_detachable_affix() -> None:
    from ingest.analysis import fts_match
    assert fts_match(["خسارت", "خودرو"]) == '"خسارت"* "خودرو"*'
    assert fts_match(["می", "خواهم"]) == '("میخواهم"* OR "می خواهم"*)'
    assert fts_match(["میخواهم"]) == '("میخواهم"* OR "می خواهم"*)'
    assert fts_match(["پرونده", "ها", "کو"]) == '("پروندهها"* OR "پرونده ها"*) "کو"*'
    assert fts_match(["میز", "تر"]) == '("میزتر"* OR "میز تر"*)'
    assert fts_match(["میز"]) == '"میز"*'  # a stem of one letter is no stem
    assert fts_match([]) == ""
