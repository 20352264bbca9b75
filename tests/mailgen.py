"""Builders for test mail."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid


def mail(
    *,
    sender: str = "Ali Rezaei <ali@example.com>",
    to: str = "claims@parvandeh.test",
    subject: str = "Claim",
    body: str = "Hello",
    message_id: str | None = None,
    in_reply_to: str = "",
    references: str = "",
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body, charset=charset)
    return msg
