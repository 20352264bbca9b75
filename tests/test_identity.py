from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ingest.persian import persian_digits
from ingest.records import Identity
from router.identity import (
    email_identity,
    is_unattended_address,
    is_valid_national_id,
    normalize_email,
    normalize_national_id,
    normalize_phone,
    phone_identity,
    stated_phones,
)

# --- e-mail -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ali@example.com", "ali@example.com"),
        ("  Ali.Rezaei@Example.COM ", "ali.rezaei@example.com"),
        ("Ali Rezaei <Ali@Example.com>", "ali@example.com"),
        ('"Rezaei, Ali" <ali@example.com>', "ali@example.com"),
        ("علی رضایی <ali@example.ir>", "ali@example.ir"),
        ("<ali+claims@example.co.ir>", "ali+claims@example.co.ir"),
        ("ali@example.com.", "ali@example.com"),
        ("ali@مثال.ایران", "ali@xn--mgbh0fb.xn--mgba3a4f16a"),
        ("ali@Bücher.DE", "ali@xn--bcher-kva.de"),
        ("ali@xn--bcher-kva.de", "ali@xn--bcher-kva.de"),
    ],
)
def test_normalize_email_lowercases_and_punycodes(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ali",
        "ali@",
        "@example.com",
        "ali@localhost",  # no customer writes from a bare host
        "ali@example.123",
        "ali@exa mple.com",
        "ali@-example.com",
        "ali@example..com",
        "ali..rezaei@example.com",
        ".ali@example.com",
        "ali@@example.com",
        "a@b.com, c@d.com",  # two addresses are not one identity
        '"ali rezaei"@example.com',
        "x" * 65 + "@example.com",
        "ali@" + "a" * 64 + ".com",
    ],
)
def test_normalize_email_rejects_what_is_not_one_valid_address(raw: str) -> None:
    assert normalize_email(raw) is None


def test_email_identity_takes_display_name_from_the_header() -> None:
    assert email_identity("علی <Ali@Example.com>") == Identity("email", "ali@example.com", "علی")


def test_email_identity_prefers_the_given_name() -> None:
    assert email_identity("Ali <ali@example.com>", name="Dr Ali") == Identity(
        "email", "ali@example.com", "Dr Ali"
    )


def test_email_identity_of_an_invalid_address_is_none() -> None:
    assert email_identity("not an address") is None


# --- unattended addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        "noreply@bank.ir",
        "no-reply@bank.ir",
        "No_Reply@bank.ir",
        "no.reply@bank.ir",
        "DoNotReply@bank.ir",
        "do-not-reply@bank.ir",
        "noreply-dmarc-support@google.com",
        "info-noreply@insurer.ir",
        "MAILER-DAEMON@mx.example.com",
        "MAILER-DAEMON",
        "postmaster@example.com",
        "bounce@lists.example.com",
        "bounces+abc123=ali=example.com@mailer.example.com",
        "mc-bounces-42@example.com",
        "notifications@github.com",
        "Jira <jira-notification@example.com>",
        "Bank <noreply@bank.ir>",
        "<>",  # the SMTP null sender: bounces come from it
        "",
    ],
)
def test_unattended_addresses_are_recognised(addr: str) -> None:
    assert is_unattended_address(addr)


@pytest.mark.parametrize(
    "addr",
    [
        "ali@example.com",
        "Replies Team <reply@example.com>",
        "claims@insurer.ir",
        "notify.me.ali@example.com",
        "bouncer.ali@example.com",
        "No Reply Fan <ali@example.com>",  # only the address counts, not the display name
    ],
)
def test_people_are_not_unattended(addr: str) -> None:
    assert not is_unattended_address(addr)


# --- phone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "09121234567",
        "+989121234567",
        "00989121234567",
        "9121234567",
        "989121234567",
        "0912 123 4567",
        "0912-123-4567",
        "(0912) 123-4567",
        "+98 (912) 123 45 67",
        "۰۹۱۲۱۲۳۴۵۶۷",
        "٠٩١٢١٢٣٤٥٦٧",
        "+۹۸ ۹۱۲ ۱۲۳ ۴۵۶۷",
        "whatsapp:+989121234567",
        "WhatsApp:09121234567",
        "tel:+98-912-123-4567",
        "sms:09121234567",
        "\u200e+98 912 123 4567\u200f",
        "0912\u2013123\u20134567",
    ],
)
def test_every_spelling_of_a_mobile_number_gives_one_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+989121234567"


def test_tehran_landline_normalises_with_its_area_code() -> None:
    assert normalize_phone("021-1234 5678") == "+982112345678"


def test_foreign_number_is_kept_in_its_own_country() -> None:
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


def test_national_format_follows_the_given_region() -> None:
    assert normalize_phone("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "hello",
        "whatsapp:",
        "call me on 09121234567",  # a number inside prose is not an identity
        "1-800-FLOWERS",
        "091212345678901",
        "+98",
        "12",
    ],
)
def test_normalize_phone_rejects_what_is_not_a_possible_number(raw: str) -> None:
    assert normalize_phone(raw) is None


def test_phone_identity_carries_e164() -> None:
    assert phone_identity("whatsapp:۰۹۱۲۱۲۳۴۵۶۷") == Identity("phone", "+989121234567")
    assert phone_identity("nope") is None


mobile_subscriber = st.from_regex(r"9[0-39][0-9]{8}", fullmatch=True)


@st.composite
def phone_spellings(draw: st.DrawFn, subscriber: str) -> str:
    """One of the ways people and channels write the Iranian mobile `subscriber` (9XXXXXXXXX)."""
    lead = draw(st.sampled_from(["0", "+98", "0098", "98", ""]))
    sep = draw(st.sampled_from(["", " ", "-", "."]))
    groups = [subscriber[:3], subscriber[3:6], subscriber[6:]]
    body = sep.join(groups)
    if draw(st.booleans()) and lead in ("0", ""):
        body = f"({lead}{groups[0]}) {groups[1]}{sep}{groups[2]}"
        lead = ""
    text = lead + (" " if lead.startswith("+") and draw(st.booleans()) else "") + body
    if draw(st.booleans()):
        text = persian_digits(text)
    channel = draw(st.sampled_from(["", "whatsapp:", "tel:", "sms:"]))
    return channel + text


@given(st.data(), mobile_subscriber)
def test_any_spelling_of_the_same_mobile_gives_the_same_e164(data: st.DataObject, sub: str) -> None:
    spellings = [data.draw(phone_spellings(sub)) for _ in range(3)]
    assert {normalize_phone(s) for s in spellings} == {"+98" + sub}


# --- national id (کد ملی) ----------------------------------------------------------------------


def check_digit(first_nine: str) -> str:
    """The published کد ملی rule, written independently of the code under test."""
    total = sum(int(first_nine[i]) * (10 - i) for i in range(9))
    r = total % 11
    return str(r if r < 2 else 11 - r)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0013542419", "0013542419"),
        ("۰۰۱۳۵۴۲۴۱۹", "0013542419"),
        ("001-354241-9", "0013542419"),
        ("0013 5424 19", "0013542419"),
        ("13542419", "0013542419"),  # leading zeros dropped by a spreadsheet
        ("4608968882", "4608968882"),
        ("0499370899", "0499370899"),
    ],
)
def test_valid_national_ids_normalise_to_ten_digits(raw: str, expected: str) -> None:
    assert normalize_national_id(raw) == expected
    assert is_valid_national_id(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "0013542418",  # wrong check digit
        "1111111111",  # passes the checksum but is never issued
        "0000000000",
        "1234567",  # too short to pad
        "00135424190",  # too long
        "00135a2419",
        "",
    ],
)
def test_invalid_national_ids_are_rejected(raw: str) -> None:
    assert normalize_national_id(raw) is None
    assert not is_valid_national_id(raw)


@given(st.from_regex(r"[0-9]{9}", fullmatch=True).filter(lambda s: len(set(s)) > 1))
def test_generated_national_id_is_valid_and_every_other_check_digit_is_not(nine: str) -> None:
    good = check_digit(nine)
    assert normalize_national_id(nine + good) == nine + good
    assert is_valid_national_id(persian_digits(nine + good))
    for other in set("0123456789") - {good}:
        assert not is_valid_national_id(nine + other)


def test_stated_phone_on_a_labelled_signature_line_is_found() -> None:
    text = "سلام، خودروی من تصادف کرد.\n\nعلی رضایی\nشماره همراه: ۰۹۱۲ ۱۲۳ ۴۵۶۷\nMobile: +98 935 111 2233"
    assert [i.value for i in stated_phones(text)] == ["+989121234567", "+989351112233"]


def test_numbers_without_a_phone_label_are_not_taken_as_the_senders_phone() -> None:
    assert stated_phones("بیمه‌نامه شماره 1403123456 و پلاک 12ب345") == []


@given(st.one_of(st.text(alphabet="ab1.-_+=@ \t\"<>(),", max_size=24),
                 st.from_regex(r"[ \t]?[a-z0-9_+=-]{1,4}(\.[a-z0-9_+=-]{1,3})?@[a-z0-9-]{1,4}\.[a-z]{1,3}[ \t]?",
                               fullmatch=True)))
@example("a@b.c")
@example("a..b@c.d")
@example(" Ali.Rezaei@Example.COM\t")
def test_the_plain_address_fast_path_splits_as_getaddresses_does(addr: str) -> None:
    import email.utils

    from router.identity import _split_address

    parsed = email.utils.getaddresses([addr])
    expected = parsed[0] if len(parsed) == 1 and parsed[0][1] and parsed[0][1] in addr else None
    assert _split_address(addr) == expected
