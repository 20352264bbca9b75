"""Identity normalisation: one canonical value per e-mail address, phone number and کد ملی,
so the same person reaching us on two channels, or typing their number two ways, is one contact."""

from __future__ import annotations

import re
from email.utils import getaddresses

import phonenumbers

from ingest.persian import ascii_digits, remove_invisible
from ingest.records import Identity

# Dot-atom local part (RFC 5322) plus non-ASCII characters (RFC 6531). Quoted local parts are
# legal but so rare from real senders that rejecting them costs less than matching them.
_LOCAL = re.compile(r"[^\s\"(),:;<>@\[\\\].]+(?:\.[^\s\"(),:;<>@\[\\\].]+)*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

_CHANNEL_PREFIX = re.compile(r"^\s*(?:whatsapp|tel|sms):", re.IGNORECASE)
# After the channel prefix only a number's own punctuation may remain; anything else (words,
# vanity letters) means this is not a phone number, rather than one phonenumbers digs out of text.
_PHONE_CHARS = re.compile(r"\+?[0-9\s().\-/\u2010-\u2015\u2212]+")
_DASHES_AND_SPACES = re.compile(r"[\s\-\u2010-\u2015\u2212]")

# Local parts that no person reads. Matched on the local part with separators removed
# ("no.reply", "do_not_reply", "MAILER-DAEMON"), or as one whole separator-delimited word.
_UNATTENDED_FRAGMENTS = ("noreply", "donotreply", "mailerdaemon")
_UNATTENDED_WORDS = frozenset({"postmaster", "bounce", "bounces", "notification", "notifications"})
_LOCAL_SEPARATORS = re.compile(r"[._+=\-]")


# A bare addr-spec of the shape nearly all mail uses, which getaddresses returns unchanged: read
# without the email package's character-by-character parser (~0.15 ms an address).
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _split_address(addr: str) -> tuple[str, str] | None:
    """(display name, address) when `addr` holds exactly one address, else None."""
    plain = addr.strip(" \t")
    if PLAIN_ADDRESS.fullmatch(plain):
        return "", plain
    parsed = getaddresses([addr])
    if len(parsed) != 1:
        return None
    name, address = parsed[0]
    # The parser quietly repairs input ("a@exa mple.com" → "a@example.com"); a repaired address
    # is a guess, not what the sender wrote.
    return (name, address) if address and address in addr else None


def normalize_email(addr: str) -> str | None:
    """`"Name <Ali@Example.COM>"` → `"ali@example.com"`; IDNA (punycode) domain; None if invalid."""
    split = _split_address(addr)
    if split is None:
        return None
    local, at, domain = split[1].strip().rpartition("@")
    if not at or len(local) > 64 or not _LOCAL.fullmatch(local):
        return None
    try:
        # The stdlib codec is IDNA 2003: it also folds case and drops ZWNJ inside labels.
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    # A bare host ("ali@localhost") is never a customer's address; nor is a numeric TLD.
    if len(labels) < 2 or labels[-1].isdigit() or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return f"{local.lower()}@{ascii_domain}"


def normalize_phone(raw: str, region: str = "IR") -> str | None:
    """E.164 (`+989121234567`) for any common spelling of a number; None when not possible.

    "Possible" (plausible length), not "valid": a number from a range newer than the
    phonenumbers metadata must still identify its sender."""
    # Bidi marks stick to numbers copied out of right-to-left text.
    text = ascii_digits(_CHANNEL_PREFIX.sub("", remove_invisible(raw))).strip()
    if not _PHONE_CHARS.fullmatch(text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_national_id(raw: str) -> str | None:
    """The 10-digit کد ملی when `raw` is one (Persian digits, dashes and spaces allowed;
    8–9 digits are left-padded, as leading zeros are often dropped); else None."""
    digits = _DASHES_AND_SPACES.sub("", ascii_digits(remove_invisible(raw)))
    if not (digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 10):
        return None
    digits = digits.zfill(10)
    # All-same-digit ids pass the checksum but are never issued; they are what people type to
    # get past a form.
    if len(set(digits)) == 1:
        return None
    remainder = sum(int(d) * weight for d, weight in zip(digits[:9], range(10, 1, -1))) % 11
    expected = remainder if remainder < 2 else 11 - remainder
    return digits if int(digits[9]) == expected else None


def is_valid_national_id(raw: str) -> bool:
    return normalize_national_id(raw) is not None


def is_unattended_address(addr: str) -> bool:
    """True for addresses no person reads (noreply, MAILER-DAEMON, bounces...): never answer them.

    The empty address (`<>`, the SMTP null sender) is what bounces come from, so it counts."""
    split = _split_address(addr)
    address = split[1] if split else addr.strip().strip("<>")
    local = address.rpartition("@")[0] or address
    if not local:
        return True
    words = _LOCAL_SEPARATORS.split(local.lower())
    compact = "".join(words)
    if any(fragment in compact for fragment in _UNATTENDED_FRAGMENTS):
        return True
    return not _UNATTENDED_WORDS.isdisjoint(words)


def email_identity(addr: str, name: str = "") -> Identity | None:
    """An e-mail Identity; the display name comes from `name`, else from `"Name <addr>"`."""
    value = normalize_email(addr)
    if value is None:
        return None
    split = _split_address(addr)
    return Identity("email", value, name or (split[0] if split else ""))


def phone_identity(raw: str, region: str = "IR") -> Identity | None:
    value = normalize_phone(raw, region)
    return None if value is None else Identity("phone", value)


# A phone the writer states as their own: a labelled line ("شماره همراه: ۰۹۱۲…", "Mobile: +98…").
_STATED_PHONE = re.compile(
    r"(?:شماره\s*(?:همراه|موبایل|تماس|تلفن)|همراه|موبایل|تلفن(?:\s*همراه)?|mobile|cell(?:phone)?|phone|tel)"
    r"\s*[:：.\-]?\s*([+0-9۰-۹٠-٩][0-9۰-۹٠-٩ \-()]{6,20}[0-9۰-۹٠-٩])",
    re.IGNORECASE,
)


# A word every alternative of _STATED_PHONE's label begins with.
_PHONE_LABELS = ("شماره", "همراه", "موبایل", "تلفن", "mobile", "cell", "phone", "tel")


def stated_phones(text: str, region: str = "IR") -> list[Identity]:
    """Phone identities the writer gives as their own on a labelled line (signature blocks).
    Only the text before any quoted reply should be passed: a quoted mail's signature is
    someone else's."""
    found: list[Identity] = []
    # The case-insensitive alternation costs ~25 ns per character; a text with none of the
    # labels in it (C substring searches) cannot match.
    folded = text.lower()
    if not any(label in folded for label in _PHONE_LABELS):
        return found
    for match in _STATED_PHONE.finditer(text):
        ident = phone_identity(match.group(1), region)
        if ident is not None and ident not in found:
            found.append(ident)
    return found
