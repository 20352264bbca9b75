"""Right-to-left lines for terminals without bidi support: brackets and other mirrored characters
at a right-to-left level are shown as their mirror image (UAX #9 rule L4), so a Persian
"(جزئی)" reads "(جزئی)", not ")جزئی(". The visual order is held to python-bidi's (the Rust
unicode-bidi crate); left-to-right text is never touched."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from bidi import get_display
from bidi.mirror import MIRRORED
from hypothesis import given, settings
from hypothesis import strategies as st

from console.app import ConsoleApp
from console.labels import shown
from console.main_screen import MainScreen
from console.render import Prefs, display_lines, safe_text
from console.visual_order import levels, mirror, paragraph_level, reorder, visual
from tests.test_agent_api import Harness, running_harness
from tests.test_console import SIZE, screen_text, ticket_list, until

PERSIAN = Prefs()


def rtl(word: str) -> str:
    """A Persian word as a terminal without bidi prints it: its letters reversed."""
    return word[::-1]


# -- examples ------------------------------------------------------------------------------------

def test_a_persian_subject_in_brackets_has_them_facing_its_words() -> None:
    assert display_lines("تصادف (جزئی)", PERSIAN) == [f"({rtl('جزئی')}) {rtl('تصادف')}"]


@pytest.mark.parametrize(("opening", "closing"), [("(", ")"), ("[", "]"), ("{", "}"), ("<", ">"), ("«", "»"),
                                                  ("\u2039", "\u203a"), ("\u2045", "\u2046")])
def test_every_kind_of_bracket_in_persian_text_faces_its_words(opening: str, closing: str) -> None:
    line = f"خسارت {opening}بدنه{closing} ثالث"
    assert display_lines(line, PERSIAN) == [f"{rtl('ثالث')} {opening}{rtl('بدنه')}{closing} {rtl('خسارت')}"]


def test_nested_and_unclosed_brackets() -> None:
    assert display_lines("الف (ب [ج] د)", PERSIAN) == ["(د [ج] ب) فلا"]
    # An opening bracket never closed is still right to left: it faces the words before it.
    assert display_lines("سلام (", PERSIAN) == [f") {rtl('سلام')}"]


def test_a_latin_reference_in_brackets_in_a_persian_sentence() -> None:
    # The brackets take the sentence's direction (rule N0: the text before them is Persian).
    assert display_lines("شماره (PV-1405-22) ثبت شد", PERSIAN) == [f"{rtl('شد')} {rtl('ثبت')} (PV-1405-22) {rtl('شماره')}"]
    # ... and the Latin text's when it runs on from Latin text: left to right, as written.
    assert display_lines("سلام abc (def) ghi", PERSIAN) == [f"abc (def) ghi {rtl('سلام')}"]


def test_a_left_to_right_line_keeps_its_brackets_unless_they_hold_persian_after_persian() -> None:
    assert display_lines("Claim (تصادف) filed", PERSIAN) == [f"Claim ({rtl('تصادف')}) filed"]
    assert display_lines("ok سلام (جزئی)", PERSIAN) == [f"ok ({rtl('جزئی')}) {rtl('سلام')}"]


def test_latin_lines_and_a_terminal_doing_bidi_itself_are_left_alone() -> None:
    for line in ("Claim (minor) [PV-1405-22] {x} <a@b.c> «q» 2 > 1", "(", ")(", ""):
        assert display_lines(line, PERSIAN) == [line]
    assert display_lines("تصادف (جزئی)", Prefs(bidi=False)) == ["تصادف (جزئی)"]


def test_wrapped_rows_and_single_line_cells_are_mirrored_too() -> None:
    rows = display_lines("تصادف (جزئی) در بزرگراه (همت) ساعت ۱۲", PERSIAN, width=14)
    assert all(row.count("(") == row.count(")") for row in rows)
    assert all(row.index("(") < row.index(")") for row in rows if "(" in row)
    assert safe_text("تصادف (جزئی)", PERSIAN, single_line=True).plain == f"({rtl('جزئی')}) {rtl('تصادف')}"


def test_persian_labels_with_brackets() -> None:
    assert shown("internal_note", PERSIAN) == f"  ({rtl('داخلی')} {rtl('یادداشت')})"
    assert shown("bytes", PERSIAN, size=12) == f" ({rtl('بایت')} ۱۲)"


def test_each_paragraph_of_a_line_is_reordered_on_its_own() -> None:
    # The separator ends the first paragraph, at its level: right to left, it is printed first.
    assert visual("الف (ب)\u2029ج", 1) == "\u2029(ب) فلاج"


def test_levels_follow_the_bidirectional_algorithm() -> None:
    assert levels("تصادف (جزئی)", 1) == [1] * 12
    assert levels("abc (def) ghi", 1) == [2] * 13  # Latin in a right-to-left paragraph
    assert levels("a b ", 1) == [2, 2, 2, 1]  # L1: a trailing space at the paragraph's level
    assert levels("سلام 12", 0) == [1, 1, 1, 1, 1, 2, 2]  # a number in Persian text: I1
    assert paragraph_level("  (PV-1) سلام") == 0 and paragraph_level("«سلام» PV") == 1 and paragraph_level("12") == 0


# -- properties ----------------------------------------------------------------------------------

PERSIAN_LETTERS = "ابپتجدرزسشصطعفکگلمنوهی"
LATIN = "abcXYZ"
NEUTRALS = " .,:;/-+%$#!?_"
BRACKETS = "()[]{}<>«»\u2039\u203a"
OTHER = "۰۱۲123٠١\u064e\u0301\u200c\u200d\u200e\u200f\u060c\u066a\u00ad\u2029\u05d0"
BOUNDARY_NEUTRALS = "\u200c\u200d\u00ad"  # ZWNJ, ZWJ, soft hyphen: class BN, zero width
any_line = st.text(st.sampled_from(PERSIAN_LETTERS + LATIN + NEUTRALS + BRACKETS + OTHER), max_size=40)
left_to_right_line = st.text(st.sampled_from(LATIN + NEUTRALS + BRACKETS + "۰۱۲123\u0301\u200c\u200e"), max_size=40)


def visible(text: str) -> str:
    return "".join(char for char in text if char not in BOUNDARY_NEUTRALS)


@settings(max_examples=400, deadline=None)
@given(any_line, st.sampled_from([0, 1]))
def test_the_order_is_python_bidis(line: str, base: int) -> None:
    """The levels resolved here put every visible character where python-bidi's reordering does.
    (The Rust crate places a line's trailing zero-width BN characters by their level before rule
    L1; they have no width, and the rest of the line is unaffected.)"""
    ours = "".join(reorder(paragraph, levels(paragraph, base)) for paragraph in split_paragraphs(line))
    assert visible(ours) == visible(get_display(line, base_dir="LR"[base]))


def split_paragraphs(line: str) -> list[str]:
    parts = line.split("\u2029")
    return [part + "\u2029" for part in parts[:-1]] + [parts[-1]]


@settings(max_examples=300, deadline=None)
@given(any_line, st.sampled_from([0, 1]))
def test_only_mirrored_characters_at_right_to_left_levels_change(line: str, base: int) -> None:
    for paragraph in split_paragraphs(line):
        paragraph_levels = levels(paragraph, base)
        mirrored = mirror(paragraph, paragraph_levels)
        for char, shown_as, level in zip(paragraph, mirrored, paragraph_levels, strict=True):
            assert shown_as == (MIRRORED.get(char, char) if level % 2 else char)
            assert shown_as == char or unicodedata.mirrored(char)
        assert mirror(mirrored, paragraph_levels) == paragraph  # mirroring twice is the identity


@settings(max_examples=300, deadline=None)
@given(left_to_right_line)
def test_left_to_right_text_is_unchanged(line: str) -> None:
    assert visual(line, 0) == line
    assert display_lines(line, PERSIAN) == [line]


def balanced(depth: int = 0) -> st.SearchStrategy[str]:
    word = st.text(st.sampled_from(PERSIAN_LETTERS), min_size=1, max_size=5)
    if depth == 2:
        return word
    pairs = st.sampled_from(["()", "[]", "{}", "«»"])
    group = st.tuples(pairs, balanced(depth + 1)).map(lambda pair_inner: pair_inner[0][0] + pair_inner[1] + pair_inner[0][1])
    return st.lists(st.one_of(word, group), min_size=1, max_size=4).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(balanced())
def test_persian_text_with_balanced_brackets_shows_them_balanced_left_to_right(line: str) -> None:
    """The point of the fix: what the terminal prints, read left to right, opens each bracket
    before closing it, as the sentence does read right to left."""
    (row,) = display_lines(line, PERSIAN)
    stack = []
    for char in row:
        if char in "([{«":
            stack.append(char)
        elif char in ")]}»":
            assert stack and MIRRORED[stack.pop()] == char, row
    assert not stack, row


# -- the console ---------------------------------------------------------------------------------

@pytest.fixture
async def harness(make_daemon: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with running_harness(make_daemon) as h:
        yield h


async def test_the_ticket_list_shows_a_persian_subjects_brackets_facing_its_words(harness: Harness) -> None:
    ref = await harness.mail(subject="تصادف (جزئی)", sender="ali@example.com")
    app = ConsoleApp(harness.url, await harness.agent("sara"), PERSIAN)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await until(pilot, lambda: rtl("تصادف") in screen_text(app))
        (row,) = [line for line in screen_text(app).splitlines() if rtl("تصادف") in line]
        assert f"({rtl('جزئی')}) {rtl('تصادف')}" in row
        assert ")" + rtl("جزئی") + "(" not in row  # as python-bidi alone printed it
