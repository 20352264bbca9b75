"""SMS segment counting and splitting: GSM-7 vs UCS-2, as carriers bill and handsets reassemble."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.sms_segments import count_segments, encoding_for, split_message

PERSIAN_WORD = "خسارت"  # five letters, UCS-2


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 1),
        ("Hello", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension table: escape + character, 160 septets
        ("€" * 81, "GSM-7", 2),
        ("{" * 153, "GSM-7", 3),  # 306 septets, but 76 doubles fill a 153-septet part: never split one
        ("ض" * 70, "UCS-2", 1),
        ("ض" * 71, "UCS-2", 2),
        ("ض" * 134, "UCS-2", 2),
        ("ض" * 135, "UCS-2", 3),
        ("a" * 159 + "ç", "UCS-2", 3),  # one character outside GSM-7 turns the whole message UCS-2
        ("😀" * 35, "UCS-2", 1),  # a surrogate pair is two UTF-16 units
        ("a" * 66 + "😀" + "a" * 10, "UCS-2", 2),
    ],
)
def test_segments_per_encoding(text: str, encoding: str, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.segments) == (encoding, segments)


def test_persian_is_ucs2_and_described_for_the_agent() -> None:
    text = "سلام، پرونده شما ثبت شد و کارشناس ما به زودی با شما تماس می‌گیرد. " * 3
    assert encoding_for(text) == "UCS-2"
    assert len(text) == 198  # 67 UTF-16 units a part
    assert str(count_segments(text)) == "3 segments UCS-2"
    assert str(count_segments("ok")) == "1 segment GSM-7"


def test_reply_within_limit_is_one_concatenated_message() -> None:
    text = " ".join([PERSIAN_WORD] * 100)  # 599 characters: 9 UCS-2 segments
    assert count_segments(text).segments == 9
    assert split_message(text, 10) == [text]


def test_long_persian_reply_is_split_between_words_into_messages_that_fit() -> None:
    text = " ".join([PERSIAN_WORD] * 200)
    chunks = split_message(text, 10)
    assert len(chunks) == 2
    assert all(count_segments(chunk).segments <= 10 for chunk in chunks)
    assert all(set(chunk.split()) == {PERSIAN_WORD} for chunk in chunks), "a word was cut in two"
    assert " ".join(chunks) == text


def test_unbroken_text_is_cut_where_it_must() -> None:
    chunks = split_message("x" * 2000, 10)
    assert [len(c) for c in chunks] == [1530, 470]


_ALPHABET = st.sampled_from(list("abc XYZ 019 €{}[] \n") + list("سلام پرونده ۱۲۳ ") + ["😀", "ç"])


@given(st.text(_ALPHABET, max_size=2500), st.integers(min_value=1, max_value=10))
def test_split_chunks_fit_and_keep_every_character(text: str, max_segments: int) -> None:
    chunks = split_message(text, max_segments)
    assert chunks
    assert all(count_segments(chunk).segments <= max_segments for chunk in chunks)
    # Only whitespace at the cuts may go.
    assert "".join("".join(chunks).split()) == "".join(text.split())
