"""Texts Parvandeh sends on its own. Persian for customers who wrote in Persian."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.persian import persian_digits


@dataclass(frozen=True, slots=True)
class AutoText:
    subject: str
    text: str


def acknowledgement(ref: str, *, persian: bool, subject: str = "", expected_response: str = "") -> AutoText:
    """The reply to a new claim message: its reference, and when to expect an answer."""
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
