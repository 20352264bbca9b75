"""Texts Parvandeh sends on its own. Persian for customers who wrote in Persian."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.persian import persian_digits


@dataclass(frozen=True, slots=True)
class AutoText:
    subject: str
    text: str


# How each bot channel is named to customers: (English, Persian).
_MESSENGERS = {"telegram": ("Telegram", "تلگرام"), "bale": ("Bale", "بله")}


def acknowledgement(ref: str, *, persian: bool, subject: str = "", expected_response: str = "",
                    links: Sequence[tuple[str, str]] = ()) -> AutoText:
    """The reply to a new claim message: its reference, when to expect an answer, and `links`
    ((channel, url): signed deep links to our bots) to follow the claim there."""
    tagged_subject = f"[{ref}] {subject}".strip() if subject else f"[{ref}]"
    if persian:
        lines = [
            "با سلام،",
            "",
            f"پیام شما دریافت شد و با شماره پرونده {ref} ثبت شد.",
            "لطفاً در مکاتبات بعدی این شماره را ذکر کنید.",
        ]
        if expected_response:
            lines.append(f"زمان تقریبی پاسخ: {persian_digits(expected_response)}")
        lines += [f"پیگیری پرونده در {_MESSENGERS.get(channel, (channel, channel))[1]}: {url}"
                  for channel, url in links]
        lines += ["", "ارزیابی خسارت — پرونده"]
        return AutoText(tagged_subject, "\n".join(lines))
    lines = [
        "Hello,",
        "",
        f"We have received your message and opened claim file {ref}.",
        "Please quote this reference in any further correspondence.",
    ]
    if expected_response:
        lines.append(f"Expected response: {expected_response}")
    lines += [f"Follow this claim on {_MESSENGERS.get(channel, (channel, channel))[0]}: {url}"
              for channel, url in links]
    lines += ["", "Parvandeh claims desk"]
    return AutoText(tagged_subject, "\n".join(lines))


def reply_subject(ref: str, subject: str) -> str:
    """Subjects of our mail carry the claim reference tag once, after any Re:."""
    tag = f"[{ref}]"
    base = subject.strip()
    if tag in base:
        return base if base.lower().startswith("re:") else f"Re: {base}"
    if base.lower().startswith("re:"):
        base = base[3:].strip()
    return f"Re: {tag} {base}".strip()
