"""The live chat server: one websocket per open widget, sessions that survive reconnects, each
visitor message acknowledged only once the sink has committed it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from connectors.base import HistoryProvider, Sink, StoreUnavailable
from connectors.webchat import protocol
from connectors.webchat.clientaddr import ClientAddress
from connectors.webchat.normalise import CHAT_CHANNEL, CHAT_FORMAT, chat_body, conversation_key
from connectors.webchat.origin import origin_allowed, own_hosts
from connectors.webchat.ratelimit import RateLimiter
from ingest.records import RawPayload

log = structlog.get_logger(__name__)

HELLO_TIMEOUT = 30.0
TRY_AGAIN_LATER = 1013  # websocket close code: the server refuses for now, come back later
UNAVAILABLE_RETRY_AFTER = 5.0
ISSUED_REMEMBERED = 100_000  # session keys handed out that a reload may resume before writing


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def visitor_key(token: str) -> str:
    """What the store and agents know a chat visitor by: a digest of the session token, never the
    token itself. The token is a bearer secret (whoever presents it reads the conversation and
    writes as the visitor), so it must not sit in identities, tickets, exports or agents' screens."""
    return "v" + hashlib.sha256(token.encode("ascii")).hexdigest()[:32]


class _Visitor:
    """One open socket of a session. Replies pushed before its welcome went out wait in
    `pending`, so the visitor always sees the welcome first."""

    def __init__(self, ws: ServerConnection, session: str) -> None:
        self.ws = ws
        self.session = session  # the token, only ever sent back to this visitor
        self.key = visitor_key(session)  # what is stored, and what replies are addressed to
        self.pending: list[dict[str, Any]] | None = []

    async def push(self, frame: dict[str, Any]) -> bool:
        if self.pending is not None:
            self.pending.append(frame)
            return True
        try:
            await self.ws.send(protocol.encode(frame))
        except ConnectionClosed:
            return False
        return True

    async def welcomed(self) -> None:
        while self.pending:
            await self.ws.send(protocol.encode(self.pending.pop(0)))
        self.pending = None


class ChatServer:
    def __init__(
        self, *, connector: str, host: str, port: int, sink: Sink, history: HistoryProvider | None,
        allowed_origins: list[str], public_base_url: str, max_chars: int, rate_limit_per_minute: int,
        session_ttl: timedelta, history_limit: int, new_sessions_per_minute: int = 0,
        client_address: ClientAddress | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connector = connector
        self.host = host
        self.requested_port = port
        self.sink = sink
        self.history = history
        self.allowed_origins = allowed_origins
        self.public_base_url = public_base_url
        self.max_chars = max_chars
        self.session_ttl = session_ttl
        self.history_limit = history_limit
        self.clock = clock
        self.limiter = RateLimiter(rate_limit_per_minute)
        # New sessions per client address: a new session costs a visitor nothing, so without
        # this the per-session message limit is no limit at all.
        self.session_limiter = RateLimiter(new_sessions_per_minute)
        self.client_address = client_address or ClientAddress("", ())
        self._sessions: dict[str, set[_Visitor]] = {}
        # Keys of the sessions this server handed out (most recent last, bounded): the widget
        # connects on every page load and after every lost connection with the token it was
        # given, also before the visitor has written anything; that is the same visitor
        # resuming, not a new session to count. A token the server never issued still counts.
        self._issued: OrderedDict[str, None] = OrderedDict()
        self._server: Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await serve(
            self._handle, self.host, self.requested_port,
            process_request=self._check_origin,
            # Room for the longest allowed text even when every character is \u-escaped, so an
            # over-long message gets a `too_long` error rather than a closed socket. An emoji is one
            # character but a surrogate pair, twelve bytes escaped ("\ud83d\ude97").
            max_size=self.max_chars * 12 + 4096,
            compression=None,
            server_header=None,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def push(self, key: str, frame: dict[str, Any]) -> int:
        """Send a frame to every open socket of a session (by its `visitor_key`); returns how
        many it reached."""
        visitors = list(self._sessions.get(key, ()))
        reached = await asyncio.gather(*(v.push(frame) for v in visitors))
        return sum(reached)

    # -- handshake -----------------------------------------------------------------------------

    def _check_origin(self, connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        own = own_hosts(request.headers.get("Host"), self.public_base_url)
        if origin_allowed(origin, own, self.allowed_origins):
            return None
        log.warning("webchat_origin_refused", connector=self.connector, origin=origin)
        return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed\n")

    # -- a connection --------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                hello = await self._hello(ws)
        except (TimeoutError, ConnectionClosed):
            return
        visitor = _Visitor(ws, hello.session or new_session_token())
        open_elsewhere = visitor.key in self._sessions or visitor.key in self._issued
        # Registered before the history read, so a reply sent meanwhile is held, not lost.
        self._register(visitor)
        try:
            history, new = await self._resume(visitor, hello, open_elsewhere)
            if new and not await self._may_start_session(ws, hello):
                return
            await ws.send(protocol.encode(protocol.welcome(visitor.session, history)))
            await visitor.welcomed()
            self._remember_issued(visitor.key)
            log.info("webchat_session_open", connector=self.connector, visitor=visitor.key[:9],
                     resumed=visitor.session == hello.session)
            async for raw in ws:
                await self._on_frame(visitor, hello, raw)
        except ConnectionClosed:
            pass
        finally:
            self._unregister(visitor)

    async def _hello(self, ws: ServerConnection) -> protocol.Hello:
        while True:
            raw = await ws.recv()
            try:
                frame = protocol.parse_client_frame(raw, self.max_chars)
            except protocol.FrameError as exc:
                await ws.send(protocol.encode(protocol.error(exc.code, exc.detail, exc.client_id)))
                continue
            if isinstance(frame, protocol.Hello):
                return frame
            await ws.send(protocol.encode(protocol.error(
                "hello_required", "send a hello frame first", frame.client_id)))

    async def _may_start_session(self, ws: ServerConnection, hello: protocol.Hello) -> bool:
        """Counts a new session against its client address; past the limit the visitor gets
        `rate_limited` and the socket is closed, before anything could be stored."""
        header = self.client_address.header
        forwarded = ws.request.headers.get_all(header) if header and ws.request is not None else []
        client = self.client_address.key(_peer(ws), forwarded)
        retry_after = self.session_limiter.check(client, self.clock())
        if retry_after is None:
            return True
        log.warning("webchat_new_session_refused", connector=self.connector, client=client,
                    token_sent=hello.session is not None, retry_after=round(retry_after, 1))
        await ws.send(protocol.encode(protocol.error(
            "rate_limited", "too many new chat sessions from this address; try again later",
            retry_after=retry_after)))
        await ws.close(TRY_AGAIN_LATER, "too many new sessions")
        return False

    async def _resume(self, visitor: _Visitor, hello: protocol.Hello,
                      open_elsewhere: bool) -> tuple[list[dict[str, Any]] | None, bool]:
        """The session's history, and whether the session is new. A session idle longer than the
        TTL is replaced by a new one. A well-formed token nobody has written with is new too (a
        visitor may send any token), unless a window of it is open right now; a token whose
        history cannot be read right now is taken as a returning visitor."""
        if hello.session is None:
            return [], True
        if self.history is None:
            return [], not open_elsewhere
        try:
            rows = await self.history(conversation_key(visitor.key), self.history_limit)
            if not rows:  # a session from before tokens were stored as digests: it keeps its key
                legacy = await self.history(conversation_key(hello.session), self.history_limit)
                if legacy:
                    self._unregister(visitor)
                    visitor.key, rows = hello.session, legacy
                    self._register(visitor)
        except StoreUnavailable:
            return None, False
        if rows and _older_than(rows[-1].get("created_at"), self.session_ttl):
            self._unregister(visitor)
            visitor.session = new_session_token()
            visitor.key = visitor_key(visitor.session)
            self._register(visitor)
            return [], True
        return protocol.history_items(rows), not rows and not open_elsewhere

    async def _on_frame(self, visitor: _Visitor, hello: protocol.Hello, raw: str | bytes) -> None:
        ws = visitor.ws
        try:
            frame = protocol.parse_client_frame(raw, self.max_chars)
        except protocol.FrameError as exc:
            await ws.send(protocol.encode(protocol.error(exc.code, exc.detail, exc.client_id)))
            return
        if isinstance(frame, protocol.Hello):
            await ws.send(protocol.encode(protocol.error("bad_frame", "hello was already received")))
            return
        retry_after = self.limiter.check(visitor.key, self.clock())
        if retry_after is not None:
            await ws.send(protocol.encode(protocol.error(
                "rate_limited", "too many messages; wait a moment", frame.client_id, retry_after)))
            return
        payload = RawPayload(
            channel=CHAT_CHANNEL,
            connector=self.connector,
            dedupe_key=f"{visitor.key}:{frame.client_id}",
            fmt=CHAT_FORMAT,
            body=chat_body(visitor.key, frame.client_id, frame.text.strip(), hello.name, hello.lang),
            received_at=datetime.now(UTC),
            meta={"session": visitor.key, "peer": _peer(ws)},
        )
        try:
            await self.sink.accept(payload)
        except StoreUnavailable as exc:
            log.error("webchat_store_unavailable", connector=self.connector, error=str(exc))
            await ws.send(protocol.encode(protocol.error(
                "unavailable", "the message could not be stored; it will be sent again", frame.client_id,
                UNAVAILABLE_RETRY_AFTER)))
            return
        await ws.send(protocol.encode(protocol.ack(frame.client_id)))

    def _remember_issued(self, key: str) -> None:
        self._issued[key] = None
        self._issued.move_to_end(key)
        while len(self._issued) > ISSUED_REMEMBERED:
            self._issued.popitem(last=False)

    def _register(self, visitor: _Visitor) -> None:
        self._sessions.setdefault(visitor.key, set()).add(visitor)

    def _unregister(self, visitor: _Visitor) -> None:
        visitors = self._sessions.get(visitor.key)
        if visitors is not None:
            visitors.discard(visitor)
            if not visitors:
                del self._sessions[visitor.key]


def _older_than(created_at: str | None, ttl: timedelta) -> bool:
    if not created_at:
        return False
    return datetime.now(UTC) - datetime.fromisoformat(created_at) > ttl


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return str(address[0]) if address else ""
