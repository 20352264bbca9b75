"""ingest.analysis computes each normalised key once and reuses it: that must give exactly what
normalising the joined text would."""

from __future__ import annotations

import re
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.analysis import (
    _joined,
    analyse,
    fts_match,
    letters_apart_from_digits,
    message_search_body,
    search_key,
    search_match,
    text_facts,
)
from ingest.persian import normalize_for_matching, search_words
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
    assert fts_match(["خسارت", "خودرو"]) == '"خسارت"* AND "خودرو"*'
    assert fts_match(["می", "خواهم"]) == '("میخواهم"* OR "می خواهم"*)'
    assert fts_match(["میخواهم"]) == '("میخواهم"* OR "می خواهم"*)'
    assert fts_match(["پرونده", "ها", "کو"]) == '("پروندهها"* OR "پرونده ها"*) AND "کو"*'
    assert fts_match(["میز", "تر"]) == '("میزتر"* OR "میز تر"*)'
    assert fts_match(["میز"]) == '"میز"*'  # a stem of one letter is no stem
    assert fts_match([]) == ""


def _finds(text: str, query: str) -> bool:
    """Whether `query`, as the agent API's search asks it, finds a message holding `text` (in the
    store's own full-text table)."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE search_index USING fts5(body)")
        db.execute("INSERT INTO search_index (rowid, body) VALUES (1, ?)", (message_search_body("", "", "", text),))
        match = search_match(query)
        return bool(match) and bool(db.execute("SELECT 1 FROM search_index WHERE search_index MATCH ?",
                                               (match,)).fetchall())
    finally:
        db.close()


@pytest.mark.parametrize("text", ["بیمه نامه شخص ثالث", "بیمه\u200cنامه شخص ثالث", "بیمهنامه شخص ثالث"])
def test_a_half_space_in_the_query_finds_the_word_joined_or_apart(text: str) -> None:
    # Compounds of insurance mail ("بیمه‌نامه", "بیمه‌گذار") are written all three ways; the index
    # keeps the writer's, and the agent's half-space says where the word may part.
    assert _finds(text, "بیمه\u200cنامه")
    assert _finds(text, "بیمه\u200cنامه ثالث")
    assert not _finds("بیمه و نامه", "بیمه\u200cنامه")  # apart means next to each other


def test_a_half_space_marks_every_split_of_a_word_and_none_beside_a_space() -> None:
    assert search_match("بیمه\u200cنامه\u200cها") == (
        '("بیمهنامهها"* OR "بیمهنامه ها"* OR "بیمه نامهها"* OR "بیمه نامه ها"*)')
    assert search_match("می\u200c خواهم") == search_match("می خواهم") == '("میخواهم"* OR "می خواهم"*)'


def test_an_affix_group_beside_other_words_is_a_valid_fts5_query() -> None:
    # FTS5 has no implicit AND beside a parenthesised group: '"خسارت"* ("میخواهم"* OR …)' raised.
    assert _finds("خسارت خودرو: من می\u200cخواهم پرونده\u200cها را ببینم", "خسارت می خواهم پرونده ها")


def test_each_detached_prefix_of_a_query_belongs_to_its_own_verb() -> None:
    # Made unique first, the second "می" was gone and "بینم" had to be a word of its own.
    assert _finds("می\u200cخواهم مدارک را می\u200cبینم", "می خواهم می بینم")
    assert fts_match(search_words("می خواهم می بینم می خواهم")) == (
        '("میخواهم"* OR "می خواهم"*) AND ("میبینم"* OR "می بینم"*)')


@pytest.mark.parametrize(("text", "query"), [
    ("میلیون ها تومان خسارت", "میلیون\u200cها"),  # opens like می, and ها is the affix
    ("میوه ها", "میوهها"),
    ("می خواهم", "میخواهم"),  # and the other way round
])
def test_a_word_opening_like_a_prefix_and_ending_like_a_suffix_is_tried_split_at_either(
        text: str, query: str) -> None:
    assert _finds(text, query)


def test_a_word_of_underscores_does_not_empty_a_query() -> None:
    # The index's tokenizer splits on "_": such a word is a phrase of nothing, and AND-ed it
    # matches nothing at all.
    assert _finds("claim for alireza", "alireza ___")


# What a query may be made of: the detachable affixes, words, spelling variants of letters and
# digits, decoration, invisible characters and what FTS5 reads as syntax.
_PIECES = st.sampled_from(
    ["می", "نمی", "ها", "های", "ترین", "خواهم", "پرونده", "مسئول", "PV", "۱۴۰۵", "٠١٢", "22ی", "ي", "ك", "ة", "أ",
     "ؤ", "ـ", "\u064e", "\u200c", " ", "-", "*", ":", '"', "(", ")", "_", "^", "AND", "OR", "NOT", "NEAR", "a"])


@given(st.lists(_PIECES, max_size=10).map("".join))
def test_a_text_searched_for_as_it_is_written_is_found(text: str) -> None:
    # Indexing and querying normalise alike, and no query is an FTS5 syntax error.
    assert _finds(text, text) or not search_words(search_key(text))


_STEMS = ["خواهم", "توانم", "پرونده", "مدارک", "بزرگ", "بیمه", "خودرو", "مسئول", "رئیس", "مؤسسه", "مدرسه", "احمد",
          "۱۲۳", "پلاک۲۲ی۴۵۶"]
_VARIANTS = {"ی": "یيى", "ک": "کك", "ه": "هة", "ا": "اأإ", "ئ": "ئی", "ؤ": "ؤو", "۱": "۱١1", "۲": "۲٢2", "۳": "۳٣3",
             "۴": "۴٤4", "۵": "۵٥5", "۶": "۶٦6"}


@st.composite
def _spelt(draw: st.DrawFn, words: list[tuple[str, str, str]]) -> str:
    """`words` (prefix, stem, suffix) as one writer might type them: affixes joined, half-spaced
    or apart, letters and digits in any of their variants, tatweel and harakat sprinkled."""
    out = []
    for prefix, stem, suffix in words:
        joiners = st.sampled_from(["", "\u200c", " "])
        word = f"{prefix}{draw(joiners) if prefix else ''}{stem}{draw(joiners) if suffix else ''}{suffix}"
        out.append("".join(draw(st.sampled_from(_VARIANTS.get(c, c))) + draw(st.sampled_from(["", "", "ـ", "\u064e"]))
                           if c not in " \u200c" else c for c in word))
    return " ".join(out)


_WORD = st.one_of(st.tuples(st.sampled_from(["", "می", "نمی"]), st.sampled_from(_STEMS), st.just("")),
                  st.tuples(st.just(""), st.sampled_from(_STEMS), st.sampled_from(["", "ها", "های", "تر", "ترین"])))


@given(st.lists(_WORD, min_size=1, max_size=4).flatmap(
    lambda words: st.tuples(_spelt(words), st.lists(st.sampled_from(words), min_size=1, max_size=3).flatmap(_spelt))))
def test_any_spelling_of_the_words_of_a_text_finds_it(text_and_query: tuple[str, str]) -> None:
    text, query = text_and_query
    assert _finds(text, query)
