from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.persian import persian_digits
from router.claimref import (
    TEHRAN,
    find_claim_refs,
    format_claim_ref,
    jalali_year,
    parse_claim_ref,
)

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# --- Jalali year ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "year"),
    [
        # Nowruz 1405 is 21 March 2026 in Tehran (UTC+03:30).
        (datetime(2026, 3, 20, 20, 29, tzinfo=UTC), 1404),
        (datetime(2026, 3, 20, 20, 30, tzinfo=UTC), 1405),
        (datetime(2026, 3, 21, 0, 0, tzinfo=TEHRAN), 1405),
        (datetime(2025, 12, 31, 23, 0, tzinfo=UTC), 1404),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), 1405),
    ],
)
def test_jalali_year_turns_over_at_nowruz_in_tehran_time(moment: datetime, year: int) -> None:
    assert jalali_year(moment) == year


def test_jalali_year_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        jalali_year(datetime(2026, 3, 21))


# --- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "year", "seq", "ref"),
    [
        ("PV", 1405, 123, "PV-1405-000123"),
        ("pv", 1405, 1, "PV-1405-000001"),
        ("PV", 1300, 999_999, "PV-1300-999999"),
        ("AB2", 1499, 42, "AB2-1499-000042"),
    ],
)
def test_format_claim_ref_pads_the_sequence_to_six_digits(
    prefix: str, year: int, seq: int, ref: str
) -> None:
    assert format_claim_ref(prefix, year, seq) == ref


@pytest.mark.parametrize(
    ("prefix", "year", "seq"),
    [
        ("PV", 1299, 1),
        ("PV", 1500, 1),
        ("PV", 1405, 0),
        ("PV", 1405, 1_000_000),
        ("", 1405, 1),
        ("P-V", 1405, 1),
        ("2PV", 1405, 1),
    ],
)
def test_format_claim_ref_rejects_out_of_range_parts(prefix: str, year: int, seq: int) -> None:
    with pytest.raises(ValueError):
        format_claim_ref(prefix, year, seq)


# --- finding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("PV-1405-000123", ["PV-1405-000123"]),
        ("Re: [PV-1405-000123] damage photos", ["PV-1405-000123"]),
        ("Re: [pv-۱۴۰۵-۰۰۰۱۲۳]", ["PV-1405-000123"]),
        ("ملف PV-١٤٠٥-٠٠٠١٢٣", ["PV-1405-000123"]),
        ("PV 1405 123", ["PV-1405-000123"]),
        ("pv_1405_000123", ["PV-1405-000123"]),
        ("PV/1405/123", ["PV-1405-000123"]),
        ("PV1405000123", ["PV-1405-000123"]),
        ("PV – 1405 – 000123", ["PV-1405-000123"]),
        ("PV\u20111405\u2212000123", ["PV-1405-000123"]),
        ("پرونده‌PV-1405-000123ها", ["PV-1405-000123"]),  # glued to Persian script is fine
        ("\u200fPV\u200e-۱۴۰۵-۱۲۳\u200f", ["PV-1405-000123"]),  # bidi marks from RTL paste
        ("(PV-1405-000123).", ["PV-1405-000123"]),
        (
            "PV-1405-000123, pv 1405 123 and PV-1404-000007",
            ["PV-1405-000123", "PV-1404-000007"],
        ),
        ("XPV-1405-000123", []),
        ("2PV-1405-000123", []),
        ("PV-1405-0001234567", []),
        ("PV-1405-000123X", []),
        ("PV-1505-000123", []),  # not a plausible Jalali year
        ("PV-2026-000123", []),
        ("PV-1405-000000", []),
        ("PV-1405-", []),
        ("QV-1405-000123", []),
        ("nothing to see here", []),
    ],
)
def test_find_claim_refs_reads_every_way_a_ref_gets_retyped(text: str, refs: list[str]) -> None:
    assert find_claim_refs(text, "PV") == refs


def test_find_claim_refs_accepts_a_lowercase_configured_prefix() -> None:
    assert find_claim_refs("[PV-1405-000123]", "pv") == ["PV-1405-000123"]


def test_find_claim_refs_rejects_a_prefix_that_is_not_alphanumeric() -> None:
    with pytest.raises(ValueError, match="prefix"):
        find_claim_refs("P.V-1405-000123", "P.V")


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("PV-1405-000123", "PV-1405-000123"),
        ("  pv-۱۴۰۵-۱۲۳ \n", "PV-1405-000123"),
        ("PV 1405 000123", "PV-1405-000123"),
        ("[PV-1405-000123]", None),
        ("PV-1405-000123 please", None),
        ("PV-1405-000123 PV-1405-000124", None),
        ("PV-1405-0001234", None),
        ("", None),
    ],
)
def test_parse_claim_ref_accepts_only_a_whole_reference(text: str, ref: str | None) -> None:
    assert parse_claim_ref(text, "PV") == ref


# --- properties -------------------------------------------------------------------------------

separators = st.sampled_from(["-", " ", "_", "/", "", "\u2010", "\u2013", "\u2014", "\u2212", " - "])
digit_scripts: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [str, persian_digits, lambda s: s.translate(ARABIC_INDIC)]
)
# Surrounding prose may be anything; a space keeps it from gluing onto the ref.
prose = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@given(
    year=st.integers(1300, 1499),
    seq=st.integers(1, 999_999),
    pad=st.booleans(),
    seps=st.tuples(separators, separators),
    digits=digit_scripts,
    prefix=st.sampled_from(["PV", "pv", "Pv"]),
    before=prose,
    after=prose,
    bracket=st.booleans(),
)
def test_a_ref_retyped_in_any_style_is_found_in_surrounding_text(
    year: int,
    seq: int,
    pad: bool,
    seps: tuple[str, str],
    digits: Callable[[str], str],
    prefix: str,
    before: str,
    after: str,
    bracket: bool,
) -> None:
    number = f"{seq:06d}" if pad else str(seq)
    typed = digits(f"{prefix}{seps[0]}{year}{seps[1]}{number}")
    if bracket:
        typed = f"[{typed}]"
    expected = format_claim_ref("PV", year, seq)
    assert expected in find_claim_refs(f"{before} {typed} {after}", "PV")
    assert parse_claim_ref(typed.strip("[]"), "pv") == expected


@given(year=st.integers(1300, 1499), seq=st.integers(1, 999_999))
def test_formatted_ref_parses_back_to_itself(year: int, seq: int) -> None:
    ref = format_claim_ref("PV", year, seq)
    assert parse_claim_ref(ref, "PV") == ref
    assert find_claim_refs(persian_digits(ref), "PV") == [ref]
