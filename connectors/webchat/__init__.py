"""Web chat and web form: a websocket server for the chat widget, and the claim form page.

Chat protocol (JSON text frames over a websocket to `[webchat] host:port`)
--------------------------------------------------------------------------
client → {"type": "hello", "session": <token> | null, "name"?: str, "lang"?: "fa" | "en"}
server → {"type": "welcome", "session": <token>, "history": [item...] | null}
    A known token resumes its session (history: the conversation's latest messages, oldest
    first, each {"id", "direction": "in" | "out", "text", "at"}); null, a malformed token, or a
    session idle longer than `session_ttl_hours` gets a new token and empty history. history is
    null when the store cannot be read right now (the widget keeps what it shows). The visitor's
    identity is Identity("webchat", token) and the conversation key "webchat:<token>".
client → {"type": "message", "client_id": <uuid>, "text": str}
server → {"type": "ack", "client_id"}  only once the message is committed. The dedupe key is
    "<session>:<client_id>": a message sent again after a lost ack is acknowledged again and
    stored once. In history a visitor's message carries its client id as "id".
server → {"type": "reply", "id", "text", "at"}  an agent's reply, pushed to every open socket
    of the session (ids "out-<outbox id>", the same id the message has in history).
server → {"type": "error", "code", "detail", "client_id"?, "retry_after"?}  codes:
    bad_json, bad_frame, hello_required, too_long (the message is dropped: don't resend),
    rate_limited and unavailable (not stored: resend the same client_id after retry_after s).
    A hello that would start a new session when its client address has started
    `new_sessions_per_ip_per_minute` already gets rate_limited (no client_id, retry_after) and the
    socket is closed (1013, try again later); a resumed session is never refused.
A page whose Origin is not allowed gets HTTP 403 at the handshake (see `origin.py`).

Delivery of agent replies: a reply is "delivered" (DeliveryResult ok) whether or not the visitor
has the page open, because the conversation history is the durable copy: a visitor who is away
sees it on the next visit. The detail says which ("pushed to N" / "visitor offline").

HTTP pages on the shared front: GET /webchat/widget.js, /webchat/widget.css, /webchat/ (a page
embedding the widget; ?lang=en), GET and POST /webform (the claim form; see `routes.py`; more
than `forms_per_ip_per_hour` POSTs from one client address get HTTP 429 with Retry-After).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from pydantic import Field, field_validator

from connectors.base import Connector, ConnectorSettings, Sink
from connectors.webchat import protocol
from connectors.webchat.clientaddr import HEADERS, ClientAddress, parse_networks
from connectors.webchat.normalise import (
    CHAT_CHANNEL, CHAT_FORMAT, FORM_FORMAT, normalise_chat_message, normalise_form_submission,
)
from connectors.webchat.origin import is_origin
from connectors.webchat.routes import WebchatRoutes
from connectors.webchat.server import ChatServer
from ingest.records import DeliveryResult, OutboundMessage

log = structlog.get_logger(__name__)


class WebchatSettings(ConnectorSettings):
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    # What the widget connects to when a TLS proxy fronts the chat port (e.g. "wss://chat.example/").
    public_ws_url: str = ""
    # Other sites' pages allowed to open the chat and post the form, e.g.
    # ["https://www.example-insurer.ir"], besides the daemon's own host names (see origin.py).
    # "*" allows any.
    allowed_origins: list[str] = []
    # Longest chat message, and longest form description, in characters.
    max_message_chars: int = Field(4000, ge=1, le=100_000)
    rate_limit_per_minute: int = Field(30, ge=0)  # chat messages per session; 0 = unlimited
    # Per client address (see clientaddr.py); 0 = unlimited. A resumed session is not new.
    new_sessions_per_ip_per_minute: int = Field(10, ge=0)
    forms_per_ip_per_hour: int = Field(20, ge=0)  # every POST /webform, answered or refused
    # Behind a reverse proxy: the header carrying the visitor's address ("X-Forwarded-For" or
    # "X-Real-IP"), read only on requests whose peer is in `trusted_proxies` (addresses or
    # networks). "" = the socket peer is the client.
    trusted_proxy_header: str = ""
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    # A session idle longer than this is not resumed: the visitor starts a new one.
    session_ttl_hours: float = Field(720, gt=0)
    history_limit: int = Field(50, ge=0, le=1000)  # messages shown after a reload
    form_max_upload_bytes: int = Field(10 * 2**20, ge=0)  # all attachments of one form together
    form_max_files: int = Field(5, ge=0, le=100)
    # How long the form's answer waits for the ticket, to show its reference.
    form_reference_wait_seconds: float = Field(5.0, ge=0, le=60)


    @field_validator("trusted_proxy_header")
    @classmethod
    def _known_header(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        for header in HEADERS:
            if value.lower() == header.lower():
                return header
        raise ValueError(f"must be \"\" or one of {', '.join(HEADERS)}, not {value!r}")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"each entry must be an IP address or network (e.g. \"10.0.0.0/8\"): {exc}") from None
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not is_origin(origin):
                # A browser's Origin always has the scheme: "www.example.ir" never matched one.
                raise ValueError("origins as browsers send them, https://host[:port] (such as "
                                 f"\"https://www.example-insurer.ir\", no path), or \"*\"; {origin!r} is not one")
        return value

    def client_address(self) -> ClientAddress:
        return ClientAddress(self.trusted_proxy_header, self.trusted_proxies)

    def listens_on(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port),)


class WebchatConnector(Connector):
    kind = "webchat"
    Settings = WebchatSettings
    sends = frozenset({CHAT_CHANNEL})
    normalisers = {CHAT_FORMAT: normalise_chat_message, FORM_FORMAT: normalise_form_submission}

    port: int = 0
    _chat: ChatServer | None = None
    _mounted = False

    async def start(self, sink: Sink) -> None:
        settings: WebchatSettings = self.settings  # type: ignore[assignment]
        # Behind a proxy, our own pages' host is the public one, whatever Host the proxy sends.
        public_base_url = self.context.settings.http.public_base_url if self.context.settings else ""
        # A restarted connector keeps its port: pages already handed out carry the URL.
        self._chat = ChatServer(
            connector=self.name, host=settings.host, port=self.port or settings.port, sink=sink,
            history=self.context.history, allowed_origins=settings.allowed_origins, public_base_url=public_base_url,
            max_chars=settings.max_message_chars, rate_limit_per_minute=settings.rate_limit_per_minute,
            session_ttl=timedelta(hours=settings.session_ttl_hours), history_limit=settings.history_limit,
            new_sessions_per_minute=settings.new_sessions_per_ip_per_minute, client_address=settings.client_address(),
        )
        await self._chat.start()
        self.port = self._chat.port
        if self.context.http_app is not None and not self._mounted:
            self._mounted = True
            WebchatRoutes(self.name, settings, public_base_url, sink, lambda: self.port,
                          self.context.ticket_for_inbox).mount(self.context.http_app)
        log.info("webchat_listening", connector=self.name, host=settings.host, port=self.port)

    async def stop(self) -> None:
        if self._chat is not None:
            await self._chat.stop()

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        if outbound.channel != CHAT_CHANNEL or self._chat is None:
            return DeliveryResult(ok=False, permanent=True, detail=f"webchat cannot send on {outbound.channel!r}")
        message_id = f"out-{outbound.outbox_id}"
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        reached = await self._chat.push(outbound.recipient, protocol.reply(message_id, outbound.text, at))
        detail = f"pushed to {reached} open chat window(s)" if reached else "visitor offline: shown on the next visit"
        return DeliveryResult(ok=True, channel_message_id=message_id, detail=detail)
