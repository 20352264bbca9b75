"""Inbound mail over SMTP (aiosmtpd). 250 only after the message is committed; 451 when the
store cannot take it (the sending MTA retries); 552 over the size limit. On stop, sessions get
421 (RFC 5321 §3.8): at once between commands, after their reply when a message is being
received or committed (within a grace period)."""

from __future__ import annotations

import re

import asyncio
from datetime import UTC, datetime
from typing import Any, ClassVar

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


SHUTTING_DOWN = b"421 4.3.2 Service shutting down\r\n"


class _Sessions:
    """The listener's open sessions. asyncio's Server.wait_closed() does not wait for (nor close)
    connections on Python 3.11, so stop() finds them here to tell each one it is shutting down."""

    def __init__(self) -> None:
        self.open: set[_ListenerSMTP] = set()
        self.stopping = False


class _ListenerSMTP(SMTP):
    # RFC 5321 caps lines at 1,000 octets, but real mailers exceed it (one-line HTML bodies);
    # refusing would bounce real claims, so be liberal in what we accept.
    line_length_limit = 2**16

    def __init__(self, handler: Any, *, sessions: _Sessions | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions if sessions is not None else _Sessions()  # none: standalone (tests)
        # From the 354 to the reply after the data: a stop lets this finish (its 250 or 451).
        self._in_transaction = False
        self._stopping = False
        self.gone = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sessions.open.add(self)
        if self._sessions.stopping:  # accepted just before the listener closed
            self.shut_down()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._sessions.open.discard(self)
        self.gone.set()

    def shut_down(self) -> bool:
        """Say 421 and close now, unless a transaction is under way: it finishes first and the
        session closes itself after its reply (smtp_DATA). True when closed now."""
        self._stopping = True
        if self._in_transaction:
            return False
        self.goodbye()
        return True

    def goodbye(self) -> None:
        """421 and close, whatever the session is doing (a transaction cut off gets no 250: the
        sender retries, and the dedupe key stores a message committed meanwhile only once)."""
        transport = self.transport
        if transport is None or transport.is_closing():  # QUIT, or the peer went away
            return
        self._writer.write(SHUTTING_DOWN)
        transport.close()  # after the 421 is flushed
        # No command read after the 421 is answered: the task stops at its next await.
        assert self._handler_coroutine is not None
        self._handler_coroutine.cancel()

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
        self._in_transaction = True
        try:
            await self._receive_and_commit()
        finally:
            self._in_transaction = False
        if self._stopping:  # stop() waited for this transaction: now the session is between commands
            self.goodbye()
            await asyncio.sleep(0)  # the cancellation lands here, before a pipelined command is read

    async def _receive_and_commit(self) -> None:
        assert self.envelope is not None
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
    # How long stop() lets a message being received or committed finish (its 250) before its
    # session is told 421 too; the store closes only after the connectors have stopped.
    STOP_GRACE_SECONDS: ClassVar[float] = 5.0
    # After the 421s, how long a closing connection may take to flush before it is aborted (a
    # peer that does not read would otherwise hold stop() forever).
    CLOSE_SECONDS: ClassVar[float] = 1.0

    async def start(self, sink: Sink) -> None:
        settings: SmtpSettings = self.settings  # type: ignore[assignment]
        handler = _Handler(self, sink, self._accepted_domains(settings))
        self._sessions = sessions = _Sessions()

        def factory() -> SMTP:
            return _ListenerSMTP(
                handler,
                sessions=sessions,
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
        if server is None:
            return
        server.close()  # stop listening
        sessions: _Sessions = self._sessions
        sessions.stopping = True
        live = list(sessions.open)
        draining = [s for s in live if not s.shut_down()]
        if draining:
            await _wait_gone(draining, self.STOP_GRACE_SECONDS)
        cut_off = [s for s in draining if not s.gone.is_set()]
        for session in cut_off:
            session.goodbye()
        if not await _wait_gone(live, self.CLOSE_SECONDS):
            for session in live:
                if not session.gone.is_set() and session.transport is not None:
                    session.transport.abort()  # type: ignore[attr-defined]
        await server.wait_closed()
        log.info("smtp_stopped", connector=self.name, told_421=len(live) - len(draining),
                 drained=len(draining) - len(cut_off), cut_off=len(cut_off))


async def _wait_gone(sessions: list[_ListenerSMTP], timeout: float) -> bool:
    """Whether all of `sessions` closed within `timeout`."""
    try:
        await asyncio.wait_for(asyncio.gather(*(s.gone.wait() for s in sessions)), timeout)
    except TimeoutError:
        return False
    return True
