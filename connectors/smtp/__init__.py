"""Inbound mail over SMTP (aiosmtpd). 250 only after the message is committed; 451 when the
store cannot take it (the sending MTA retries); 552 over the size limit."""

from __future__ import annotations

import re

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax
from pydantic import Field

from connectors.base import Connector, ConnectorSettings, Sink, StoreUnavailable
from connectors.smtp.data import read_data_section
from ingest.email_payload import EMAIL_CHANNEL, MIME_FORMAT, email_dedupe_key, normalise_mime
from ingest.records import RawPayload

log = structlog.get_logger(__name__)


class SmtpSettings(ConnectorSettings):
    host: str = "127.0.0.1"
    port: int = Field(2525, ge=0, le=65535)
    hostname: str = "parvandeh.local"
    max_message_bytes: int = Field(30 * 2**20, ge=1024)
    # Recipient domains mail is taken for; others get 550 at RCPT (we are nobody's relay, and a
    # claim opened for mail to someone else's domain sends an acknowledgement to whatever From it
    # carried: backscatter). Empty: the domains of [claims] own_addresses (any, when none are
    # configured); ["*"]: any domain, e.g. behind a relay that already filters.
    accept_domains: list[str] = []

    def listens_on(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port),)


# `<local@domain>` with a dot-atom local part and a plain domain: what nearly every MAIL FROM and
# RCPT TO carries.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ANGLE_ADDR = re.compile(rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")


class _ListenerSMTP(SMTP):
    # RFC 5321 caps lines at 1,000 octets, but real mailers exceed it (one-line HTML bodies);
    # refusing would bounce real claims, so be liberal in what we accept.
    line_length_limit = 2**16

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every address with the email package's RFC 5322 header parser (~0.2 ms
        # a command); a plain address is read here, anything else still goes to that parser.
        plain = _PLAIN_ANGLE_ADDR.match(arg)
        rest = arg[plain.end():].lstrip() if plain else ""
        if plain is None or rest.startswith("("):  # a comment: the parser's business
            return super()._getaddr(arg)
        if self.local_part_limit and len(plain[1].rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return plain[1], rest

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd's own, but reading the data in chunks (connectors/smtp/data.py).
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            section = await read_data_section(self._reader, size_limit=self.data_size_limit,
                                              line_limit=self.line_length_limit)
        except (asyncio.CancelledError, asyncio.IncompleteReadError):
            self._writer.close()  # the connection went away mid-DATA: nothing was acknowledged
            raise
        if section.content is None:
            self._set_post_data_state()
            await self.push(section.refusal)
            return
        self.envelope.content = self.envelope.original_content = section.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


class _Handler:
    def __init__(self, connector: SmtpConnector, sink: Sink, domains: frozenset[str] | None = None) -> None:
        self.connector = connector
        self.sink = sink
        self.domains = domains  # None: any

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if self.domains is not None and domain not in self.domains:
            log.warning("smtp_rcpt_refused", connector=self.connector.name, domain=domain,
                        peer=str(session.peer[0]) if session.peer else "")
            return "550 5.7.1 Relaying denied: this server takes mail only for its own domains"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        payload = RawPayload(
            channel=EMAIL_CHANNEL,
            connector=self.connector.name,
            dedupe_key=email_dedupe_key(raw),
            fmt=MIME_FORMAT,
            body=raw,
            received_at=datetime.now(UTC),
            meta={
                "mail_from": envelope.mail_from or "",
                "rcpt_to": ",".join(envelope.rcpt_tos),
                "peer": str(session.peer[0]) if session.peer else "",
            },
        )
        try:
            outcome = await self.sink.accept(payload)
        except StoreUnavailable as exc:
            log.error("smtp_store_unavailable", connector=self.connector.name, error=str(exc))
            return "451 4.3.0 Temporary failure storing the message, please retry"
        return f"250 2.0.0 Message accepted as {outcome.inbox_id}"


class SmtpConnector(Connector):
    kind = "smtp"
    Settings = SmtpSettings
    normalisers = {MIME_FORMAT: normalise_mime}

    async def start(self, sink: Sink) -> None:
        settings: SmtpSettings = self.settings  # type: ignore[assignment]
        handler = _Handler(self, sink, self._accepted_domains(settings))

        def factory() -> SMTP:
            return _ListenerSMTP(
                handler,
                hostname=settings.hostname,
                data_size_limit=settings.max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                ident="Parvandeh ESMTP",
            )

        self._server = await asyncio.get_running_loop().create_server(factory, settings.host, settings.port)
        self.port: int = self._server.sockets[0].getsockname()[1]
        log.info("smtp_listening", connector=self.name, host=settings.host, port=self.port)

    def _accepted_domains(self, settings: SmtpSettings) -> frozenset[str] | None:
        if "*" in settings.accept_domains:
            return None
        if settings.accept_domains:
            return frozenset(d.strip().lower().rstrip(".") for d in settings.accept_domains)
        own = self.context.settings.claims.own_addresses if self.context.settings else []
        domains = frozenset(a.rpartition("@")[2].strip().lower() for a in own if "@" in a)
        return domains or None

    async def stop(self) -> None:
        server: Any = getattr(self, "_server", None)
        if server is not None:
            server.close()
            await server.wait_closed()
