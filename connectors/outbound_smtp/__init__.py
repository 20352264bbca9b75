"""Outbound mail: replies and acknowledgements through an SMTP relay, threaded with
In-Reply-To/References and carrying our Message-ID and the claim reference in the subject."""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, format_datetime, localtime, parseaddr

import structlog
from pydantic import Field, field_validator

from config.loader import secret_from_env
from connectors.base import Connector, ConnectorSettings, Sink
from ingest.records import DeliveryResult, OutboundMessage
from router.templates import reply_subject

log = structlog.get_logger(__name__)


class OutboundSmtpSettings(ConnectorSettings):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    from_address: str = "claims@parvandeh.local"
    from_name: str = "Parvandeh"
    username: str = ""
    password_env: str = ""
    starttls: bool = False
    ssl: bool = False
    timeout_seconds: float = Field(30, gt=0)

    @field_validator("from_address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        # Every reply and acknowledgement carries it: a typo here bounces all of them at the relay.
        if parseaddr(value)[1] != value.strip() or not re.fullmatch(r"[^@\s]+@[^@\s]+", value.strip()):
            raise ValueError("a bare address such as 'claims@example.ir' (the name goes in from_name)")
        return value.strip()


def build_email(out: OutboundMessage, settings: OutboundSmtpSettings) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = formataddr((settings.from_name, settings.from_address))
    mail["To"] = out.recipient
    _set_subject(mail, reply_subject(out.ticket_ref, out.subject) if out.ticket_ref else out.subject)
    mail["Date"] = format_datetime(localtime())
    if out.message_id:
        mail["Message-ID"] = f"<{out.message_id}>"
    if out.in_reply_to:
        mail["In-Reply-To"] = f"<{out.in_reply_to}>"
    if out.references:
        mail["References"] = " ".join(f"<{r}>" for r in out.references)
    if out.automatic:
        # RFC 3834: tells well-behaved responders not to answer us (loop guard).
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
    mail["X-Parvandeh-Ticket"] = out.ticket_ref
    mail.set_content(out.text)
    if out.html:
        mail.add_alternative(out.html, subtype="html")
    return mail


def _set_subject(mail: EmailMessage, subject: str) -> None:
    """The Subject, folded so that a reader shows it as written. Python's own folder (3.11) breaks
    a long non-ASCII subject between encoded-words at a space and drops the space, and readers
    join the words there (RFC 2047 §6.2: "درخواست بررسی هزینه" read "درخواست بررسیهزینه");
    `email.header` keeps each space inside an encoded-word. Stored as folded (`set_raw`): lines
    within the policy's length are written as they are."""
    if subject.isascii():
        mail["Subject"] = subject
    else:
        mail.set_raw("Subject", Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n"))


def refused_for_good(refused: Mapping[str, tuple[int, bytes]]) -> bool:
    """Whether the relay's refusals at RCPT are final: only 5xx codes are. A 4xx (greylisting,
    a recipient check that timed out, a full mailbox) is the relay's "try later", and a reply
    failed for good on it was never sent."""
    return all(500 <= code < 600 for code, _ in refused.values())


class OutboundSmtpConnector(Connector):
    kind = "outbound_smtp"
    Settings = OutboundSmtpSettings
    sends = frozenset({"email"})

    async def start(self, sink: Sink) -> None:
        log.info("outbound_smtp_ready", connector=self.name, relay=f"{self.settings.host}:{self.settings.port}")

    async def stop(self) -> None:
        return None

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        settings: OutboundSmtpSettings = self.settings  # type: ignore[assignment]
        mail = build_email(outbound, settings)
        try:
            refused = await asyncio.to_thread(self._deliver, mail, settings, outbound.automatic)
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            return DeliveryResult(ok=False, permanent=permanent, detail=f"{exc.smtp_code} {exc.smtp_error!r}")
        except smtplib.SMTPRecipientsRefused as exc:
            return DeliveryResult(ok=False, permanent=refused_for_good(exc.recipients),
                                  detail=f"recipient refused: {exc.recipients}")
        except (OSError, smtplib.SMTPException) as exc:
            return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}")
        if refused:
            return DeliveryResult(ok=False, permanent=refused_for_good(refused), detail=f"refused: {refused}")
        return DeliveryResult(ok=True, channel_message_id=outbound.message_id, detail="250 accepted by relay")

    @staticmethod
    def _deliver(mail: EmailMessage, settings: OutboundSmtpSettings, automatic: bool) -> dict:
        context = ssl.create_default_context()
        cls = smtplib.SMTP_SSL if settings.ssl else smtplib.SMTP
        kwargs = {"context": context} if settings.ssl else {}
        with cls(settings.host, settings.port, timeout=settings.timeout_seconds, **kwargs) as client:
            if settings.starttls:
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, secret_from_env(settings.password_env))
            # RFC 3834 3.3: an automatic message goes with a null reverse-path (MAIL FROM:<>),
            # so that a bounce or another responder's answer to it goes nowhere, not back to us.
            return client.send_message(mail, from_addr="" if automatic else None)
