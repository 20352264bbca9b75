"""The agent API: an authenticated websocket the console (or any client) talks to.

Protocol, JSON text frames:
- the client's first frame is `{"op": "hello", "token": "...", "since": <event id or null>}`;
  the server answers `{"type": "welcome", "agent": {...}, "last_event_id": N, "now": ISO}`, or
  `{"type": "error", ...}` and closes (1008) for a missing, unknown or revoked token. With
  `since`, the events the client missed are sent first (or `{"type": "resync"}` when too many).
- requests `{"id": n, "op": "...", ...}` get `{"type": "result", "id": n, "ok": true, "data": ...}`
  or `{"type": "result", "id": n, "ok": false, "code": "forbidden|not_found|invalid|unknown_op",
  "error": "..."}`.
- pushed `{"type": "event", "id": <event id>, "kind": ..., "ticket": ref, "queue": ..., "data": {...},
  "summary": {ticket row}, "message": {thread message, when the event added one}}`.
- `list_tickets` pages by cursor: `next_cursor` (None on the last page) is handed back as
  `cursor`, and the next page is the tickets after that one in the list's order (latest change
  first), so tickets arriving, changing or closing between pages neither repeat nor skip rows;
  `total` comes with the first page only.
- `open_ticket` answers with the newest messages of the thread only (and the timeline events of
  the same span), `earlier` counting those left out, and `reply_channels`: the channels a reply
  can go on, `[{channel, recipient, default}]` (the reply's own decision, `reply_routes`; a
  `reply` on another channel is refused), with `no_reply_reason` saying why when there is none
  (`reply_channels` answers with those two alone, for a client whose thread moved on); `thread`
  with `before` (a message id) pages back through them. Only the window sent is read from the
  store. Every message a client gets has its texts cut to BODY_CAP characters
  (`more` counts what was cut) and no `display_text` when it is the text: one frame stays a few
  MB however long the claim. The store keeps every text whole (`run.py tickets show`).
  It also carries `bot_links`: each bot's signed deep link to the claim (`{channel, url}`).
  A customer message's `from_contact` says whether its sender is one of the claim contact's own
  identities (false: someone else wrote it, e.g. naming the claim's reference; see `message_sender`).

Every request is authorised by role and queue membership, and every action (and every refusal)
goes to the audit trail under the agent's name, in the same transaction as the action.

The live feed reads the `events` table, using the store's bus only as a wake-up: event ids come
from the table, so a console that reconnects with `since` gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from config.loader import ConfigError, Settings
from ingest import queries
from ingest.agents import Agent, AgentError, agent_for_token, audit, audit_trail, list_agents, write_audit
from ingest.apply import (
    ApplyContext, TicketActionError, add_note, agent_reply, assign_ticket, change_priority,
    change_queue, change_status, index_for_search, merge_tickets,
)
from ingest.contacts import (
    contact_profile,
    duplicate_suggestions,
    merge_contacts,
    split_identity,
    undo_merge,
)
from ingest.analysis import message_search_body, search_match
from ingest.deep_links import read_deep_link_key
from ingest.insurers import page_cursor, read_page_cursor
from ingest.refusal import Refusal
from ingest.reply_routes import no_route_reason, reply_routes
from ingest.reports import ReportCalendars, build_report, parse_day, period_bounds
from ingest.routing_hooks import set_agent_status, update_agent
from ingest.store import Store, Tx, WriteOp, iso
from router.claimref import find_claim_refs
from router.identity import normalize_email, normalize_phone

log = structlog.get_logger(__name__)

MESSAGE_EVENTS = frozenset({"message_received", "outbound_queued", "note_added"})
THREAD_PAGE = 100  # messages per open_ticket / thread answer, unless the client asks for fewer
THREAD_BUDGET = 1_000_000  # characters of message text per answer: with UTF-8 and JSON escapes, a few MB
BODY_CAP = 64 * 1024  # characters of each text of a message a client gets
REAUTH_SECONDS = 2.0  # how often an open connection's token is checked again (revocation, role, queues)


class ReplyTemplate(BaseModel):
    """A canned reply; the console fills {ref}, {customer}, {agent} and {subject}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    text: str = Field(min_length=1)


class AgentApiSettings(BaseModel):
    """The `[agent_api]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    # Wall-clock minutes a waiting customer may wait for an answer, per priority, until the SLA
    # engine stores due times on tickets; `warn_fraction` of it marks a ticket at risk.
    response_minutes: dict[str, float] = {"urgent": 30, "high": 120, "normal": 480, "low": 1440}
    warn_fraction: float = Field(0.75, gt=0, le=1)
    max_page: int = Field(500, ge=1, le=5000)
    max_catch_up: int = Field(10_000, ge=0)
    reply_templates: list[ReplyTemplate] = []


def agent_api_settings(settings: Settings) -> AgentApiSettings:
    try:
        return AgentApiSettings(**settings.extra.get("agent_api", {}))
    except ValidationError as exc:
        from config.loader import _format_validation_error

        raise ConfigError(f"{settings.source}:\n" + _format_validation_error("agent_api", exc, {})) from None


class ApiError(Refusal):
    def __init__(self, code: str, message: str, reason: str = "", **params: Any) -> None:
        super().__init__(message, reason, **params)
        self.code = code


def client_message(message: dict[str, Any]) -> dict[str, Any]:
    """A thread message as clients get it: no `display_text` when it is the text, each text cut
    to BODY_CAP characters, `more` mapping a cut text's field to the characters left out."""
    shaped = dict(message)
    if shaped.get("display_text") == shaped.get("text"):
        shaped.pop("display_text", None)
    more = {}
    for key in ("text", "display_text"):
        value = shaped.get(key)
        if value and len(value) > BODY_CAP:
            shaped[key] = value[:BODY_CAP]
            more[key] = len(value) - BODY_CAP
    if more:
        shaped["more"] = more
    return shaped


def _text_size(message: dict[str, Any]) -> int:
    return len(message.get("text") or "") + len(message.get("display_text") or "")


def within_budget(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest of `messages` (oldest first) whose texts, shaped for clients, fit
    THREAD_BUDGET; the newest one always."""
    picked: list[dict[str, Any]] = []
    used = 0
    for message in reversed(messages):
        shaped = client_message(message)
        used += _text_size(shaped)
        if picked and used > THREAD_BUDGET:
            break
        picked.append(shaped)
    picked.reverse()
    return picked


@dataclass(eq=False)
class _Connection:
    ws: ServerConnection
    agent: Agent
    token: str = ""
    outgoing: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(10_000))
    cursor: int = 0  # the newest event id this client has been sent
    lagging: bool = False


Handler = Callable[[Agent, dict[str, Any]], Awaitable[Any]]


class AgentApi:
    def __init__(self, store: Store, apply_context: ApplyContext, settings: Settings) -> None:
        self.store = store
        self.ctx = apply_context
        self.settings = settings
        self.conf = agent_api_settings(settings)
        self.port: int | None = None
        self._server: Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._feed_cursor = 0
        self._index_catch_up: asyncio.Task[None] | None = None
        self._handlers: dict[str, Handler] = {
            "queues": self._queues, "list_tickets": self._list_tickets, "open_ticket": self._open_ticket,
            "thread": self._thread, "reply_channels": self._reply_channels,
            "reply": self._reply, "note": self._note, "assign": self._assign, "unassign": self._unassign,
            "take": self._take, "set_status": self._set_status, "set_priority": self._set_priority,
            "set_queue": self._set_queue, "queue_names": self._queue_names,
            "merge": self._merge, "search": self._search, "supervisor": self._supervisor, "audit": self._audit,
            "availability": self._availability, "update_agent": self._update_agent,
            "templates": self._templates, "report": self._report, "contact": self._contact, "duplicates": self._duplicates,
            "message_sender": self._message_sender, "merge_contacts": self._merge_contacts,
            "undo_contact_merge": self._undo_contact_merge, "split_identity": self._split_identity,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._feed_cursor = await queries.last_event_id(self.store)
        bus_queue = self.store.bus.subscribe()
        self._tasks.append(asyncio.create_task(self._feed(bus_queue), name="agent-api-feed"))
        self._index_catch_up = asyncio.create_task(self._catch_up_index(), name="agent-api-index-catch-up")
        self._tasks.append(self._index_catch_up)
        self._server = await serve(self._handle, self.conf.host, self.conf.port, max_size=2**20)
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else None
        log.info("agent_api_listening", host=self.conf.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- connection --------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        except (TimeoutError, ValueError, RecursionError, ConnectionClosed):  # RecursionError: nested too deep
            await ws.close(1008, "expected a hello frame")
            return
        token = hello.get("token") if isinstance(hello, dict) and hello.get("op") == "hello" else None
        agent = await agent_for_token(self.store, token) if isinstance(token, str) else None
        if agent is None:
            await self.store.write(audit("?", "login", allowed=False, detail={"peer": str(ws.remote_address)}))
            await self._send(ws, {"type": "error", "code": "unauthorised", "error": "unknown or revoked token"})
            await ws.close(1008, "unauthorised")
            return
        log.info("agent_connected", agent=agent.name)
        await self.store.write(audit(agent.name, "login", detail={"peer": str(ws.remote_address)}))
        conn = _Connection(ws, agent, token)
        since = hello.get("since")
        # Only the id of a stored event resumes: a larger one (another store, a restored backup)
        # would hold back every event up to it, one past SQLite's INTEGER would fail the
        # catch-up's query, and a negative one would replay the whole feed.
        resume = isinstance(since, int) and not isinstance(since, bool) and since >= 0
        if resume and since > self._feed_cursor:  # a catch-up sends events the feed has yet to read
            resume = since <= await queries.last_event_id(self.store)
        conn.cursor = since if resume else self._feed_cursor
        self._connections.add(conn)  # before catching up, so nothing committed meanwhile is missed
        sender: asyncio.Task[None] | None = None
        watchdog: asyncio.Task[None] | None = None
        try:
            await self._send(ws, {"type": "welcome", "agent": agent.public(), "last_event_id": self._feed_cursor,
                                  "now": iso(self.store.clock())})
            if resume:
                await self._catch_up(conn, since)
            elif since is not None:  # nothing to resume from: the client reloads
                await self._send(ws, {"type": "resync", "last_event_id": self._feed_cursor})
            # Live events queued during the catch-up wait for it, so the client sees ids in order.
            sender = asyncio.create_task(self._sender(conn), name=f"agent-api-send-{agent.name}")
            watchdog = asyncio.create_task(self._watch_token(conn), name=f"agent-api-auth-{agent.name}")
            async for frame in ws:
                if not await self._reauthorise(conn):
                    break
                await self._request(conn, frame)
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(conn)
            for task in (sender, watchdog):
                if task is not None:
                    task.cancel()
            log.info("agent_disconnected", agent=agent.name)

    async def _reauthorise(self, conn: _Connection) -> bool:
        """Whether the connection's token still logs in: a revoked token (or a deactivated
        agent) ends the connection it opened; a changed role or queue list applies at once."""
        agent = await agent_for_token(self.store, conn.token)
        if agent is None:
            self._connections.discard(conn)  # no more events from this instant
            log.info("agent_token_revoked", agent=conn.agent.name)
            await self.store.write(audit(conn.agent.name, "session_ended", allowed=False,
                                         detail={"reason": "token revoked"}))
            try:
                await self._send(conn.ws, {"type": "error", "code": "unauthorised", "error": "token revoked"})
                await conn.ws.close(1008, "token revoked")
            except ConnectionClosed:
                pass
            return False
        conn.agent = agent
        return True

    async def _watch_token(self, conn: _Connection) -> None:
        """An idle console still gets the live feed: check its token now and then too."""
        while True:
            await asyncio.sleep(REAUTH_SECONDS)
            if not await self._reauthorise(conn):
                return

    async def _send(self, ws: ServerConnection, payload: dict[str, Any]) -> None:
        await ws.send(json.dumps(payload, ensure_ascii=False, default=str))

    async def _request(self, conn: _Connection, frame: str | bytes) -> None:
        request_id: Any = None
        try:
            try:
                request = json.loads(frame)
            except RecursionError:  # nested past the parser's depth: malformed, not a server fault
                raise ApiError("invalid", "expected a JSON object; the request is nested too deeply") from None
            if not isinstance(request, dict):
                raise ApiError("invalid", "expected a JSON object")
            request_id = request.get("id")
            handler = self._handlers.get(request.get("op", ""))
            if handler is None:
                raise ApiError("unknown_op", f"unknown op {request.get('op')!r}; expected one of {sorted(self._handlers)}")
            data = await handler(conn.agent, request)
            reply: dict[str, Any] = {"type": "result", "id": request_id, "ok": True, "data": data}
        except Refusal as exc:  # ApiError, TicketActionError, ReplyError...
            reply = {"type": "result", "id": request_id, "ok": False, **exc.answer()}
        except (AgentError, ValueError, TypeError) as exc:
            reply = {"type": "result", "id": request_id, "ok": False, "code": "invalid", "error": str(exc)}
        except (sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError) as exc:
            # A field of the wrong shape (a list for a status, a 40-digit id) reached a query.
            reply = {"type": "result", "id": request_id, "ok": False, "code": "invalid",
                     "error": f"a request field has the wrong type: {exc}"}
        except Exception:  # one bad request answers with an error; it does not end the session
            log.exception("agent_request_failed", agent=conn.agent.name)
            reply = {"type": "result", "id": request_id, "ok": False, "code": "internal",
                     "error": "the request failed; see the daemon's log"}
        await self._send(conn.ws, reply)

    # -- live feed ---------------------------------------------------------------------------

    async def _feed(self, bus_queue: asyncio.Queue[Any]) -> None:
        try:
            while True:
                await bus_queue.get()
                while not bus_queue.empty():  # one read for everything committed so far
                    bus_queue.get_nowait()
                try:
                    await self._deliver_new()
                except Exception as exc:  # the next commit retries from the same cursor
                    log.error("agent_feed_failed", error=str(exc))
        finally:
            self.store.bus.unsubscribe(bus_queue)

    async def _deliver_new(self) -> None:
        if not self._connections:  # nobody to tell: only the cursor moves (one row, not the events)
            last = await queries.last_event_id(self.store)
            if not self._connections:  # checked again: one may have joined meanwhile
                self._feed_cursor = max(self._feed_cursor, last)
                return
        while True:
            events = await queries.events_after(self.store, self._feed_cursor, limit=1000)
            if not events:
                return
            self._feed_cursor = events[-1]["id"]
            for payload in await self._event_payloads(events):
                for conn in list(self._connections):
                    if _shown_to(conn.agent, payload) and not conn.lagging:
                        try:
                            conn.outgoing.put_nowait(payload)
                        except asyncio.QueueFull:  # that console reloads instead
                            conn.lagging = True
                            log.warning("agent_feed_lagging", agent=conn.agent.name)

    async def _event_payloads(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        summaries = {t["reference"]: t for t in await self._with_sla_all(
            await queries.ticket_summaries(self.store, sorted({e["ref"] for e in events})))}
        message_rows = [e["data"]["message_row"] for e in events
                        if e["kind"] in MESSAGE_EVENTS and isinstance(e["data"].get("message_row"), int)]
        messages = {m["id"]: m for m in await queries.thread_messages(self.store, message_rows)}
        payloads = []
        for e in events:
            payload = {"type": "event", "id": e["id"], "kind": e["kind"], "ticket": e["ref"], "queue": e["queue"],
                       "at": e["at"], "actor": e["actor"], "data": e["data"], "summary": summaries.get(e["ref"])}
            message = messages.get(e["data"].get("message_row"))
            if message is not None and e["kind"] in MESSAGE_EVENTS:
                payload["message"] = client_message(message)
            payloads.append(payload)
        return payloads

    async def _catch_up(self, conn: _Connection, since: int) -> None:
        if self._feed_cursor - since > self.conf.max_catch_up:
            conn.cursor = self._feed_cursor
            await self._send(conn.ws, {"type": "resync", "last_event_id": self._feed_cursor})
            return
        while True:
            events = await queries.events_after(self.store, conn.cursor, limit=1000)
            if not events:
                return
            for payload in await self._event_payloads(events):
                if _shown_to(conn.agent, payload):
                    await self._send(conn.ws, payload)
            conn.cursor = events[-1]["id"]

    async def _sender(self, conn: _Connection) -> None:
        try:
            while True:
                payload = await conn.outgoing.get()
                if conn.lagging:
                    while not conn.outgoing.empty():
                        conn.outgoing.get_nowait()
                    conn.lagging = False
                    conn.cursor = self._feed_cursor
                    await self._send(conn.ws, {"type": "resync", "last_event_id": self._feed_cursor})
                    continue
                if payload["id"] <= conn.cursor:  # already sent by the catch-up
                    continue
                conn.cursor = payload["id"]
                await self._send(conn.ws, payload)
        except ConnectionClosed:
            pass

    # -- search index ------------------------------------------------------------------------

    async def _catch_up_index(self) -> None:
        """Every message is indexed in the write that stores it (ingest.apply.index_message);
        this indexes, once at start, what a store holds from before that or from a bulk load,
        then moves the mark past it so the next start does not look again."""
        while rows := await queries.unindexed_messages(self.store):
            entries = [(r["id"], message_search_body(r["subject"], r["sender_name"], r["sender"], r["text"]))
                       for r in rows]
            await self.store.write(index_for_search(entries, rows[-1]["id"]))
        await self.store.write(index_for_search([], await queries.last_message_id(self.store)))

    async def index_caught_up(self) -> None:
        """Wait until every stored message is searchable (tests, demo)."""
        if self._index_catch_up is not None:
            await asyncio.shield(self._index_catch_up)

    # -- helpers -----------------------------------------------------------------------------

    async def _with_sla_all(self, tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """SLA countdowns from the stored SLA clocks (business calendar, pauses); tickets with no
        running clock fall back to the per-priority response minutes."""
        clocks = await queries.running_sla_clocks(self.store, [t["reference"] for t in tickets])
        for ticket in tickets:
            clock = clocks.get(ticket["reference"])
            if clock is not None:
                ticket["sla_due_at"], ticket["sla_warn_at"] = clock
            else:
                self._with_sla(ticket)
        return tickets

    def _with_sla(self, ticket: dict[str, Any]) -> dict[str, Any]:
        minutes = self.conf.response_minutes.get(ticket["priority"])
        waiting = ticket.get("waiting_since")
        since = datetime.fromisoformat(waiting) if waiting and minutes else None
        ticket["sla_due_at"] = iso(since + timedelta(minutes=minutes)) if since and minutes else None
        ticket["sla_warn_at"] = (iso(since + timedelta(minutes=minutes * self.conf.warn_fraction))
                                 if since and minutes else None)
        return ticket

    def _cutoffs(self, fraction: float) -> dict[str, str]:
        now = self.store.clock()
        return {p: iso(now - timedelta(minutes=m * fraction)) or "" for p, m in self.conf.response_minutes.items()}

    async def _authorised_ticket(self, agent: Agent, action: str, ref: Any) -> str:
        """The ref, if it names a ticket the agent may act on; otherwise refuse (and audit)."""
        if not isinstance(ref, str) or not ref:
            raise ApiError("invalid", f"{action}: expected a ticket reference in 'ref'")
        queue = await queries.ticket_queue(self.store, ref)
        if queue is None:
            raise ApiError("not_found", f"no ticket {ref}", "no_ticket", ref=ref)
        if not agent.may_see(queue):
            await self.store.write(audit(agent.name, action, ref, allowed=False, detail={"queue": queue}))
            log.warning("agent_forbidden", agent=agent.name, action=action, ticket=ref)
            raise ApiError("forbidden", f"{ref} is in queue {queue!r}, which {agent.name} is not a member of",
                           "not_your_queue", ref=ref, queue=queue)
        return ref

    async def _audited(self, agent: Agent, action: str, ref: str, op: WriteOp[Any], **detail: Any) -> Any:
        def run(tx: Tx) -> Any:
            value = op(tx)
            write_audit(tx, agent.name, action, ref, detail=detail)
            return value

        try:
            return await self.store.write(run)
        except TicketActionError as exc:
            if exc.reason == "assigned_to_colleague":  # a supervisor's call, refused in the writer: rolled
                # back with the action, so the refusal is audited on its own
                await self.store.write(audit(agent.name, action, ref, allowed=False, detail=exc.params))
            raise

    async def _require_role(self, agent: Agent, op: str, action: str, ref: str = "") -> None:
        """Refuse `op` to an agent, auditing the refusal as a refusal by queue is."""
        if not agent.sees_all_queues:
            await self.store.write(audit(agent.name, op, ref, allowed=False, detail={"needs": "supervisor"}))
            log.warning("agent_forbidden", agent=agent.name, action=op, ticket=ref or None)
            raise ApiError("forbidden", f"{action} needs the supervisor or admin role", "needs_supervisor")

    @staticmethod
    def _limit(request: dict[str, Any], default: int, cap: int) -> int:
        """The page size asked for, at most `cap`. Below 1 is refused: SQLite reads a negative
        LIMIT as no limit at all."""
        value = request.get("limit", default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ApiError("invalid", f"expected 'limit' as a whole number from 1, got {value!r}")
        return min(value, cap)

    @staticmethod
    def _text(request: dict[str, Any], key: str = "text") -> str:
        value = request.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ApiError("invalid", f"expected a non-empty string in {key!r}", "empty_text", field=key)
        return value

    # -- handlers ----------------------------------------------------------------------------

    async def _queues(self, agent: Agent, request: dict[str, Any]) -> Any:
        return await queries.queue_overview(
            self.store, agent.visible_queues(), warn_before=self._cutoffs(self.conf.warn_fraction),
            breach_before=self._cutoffs(1.0), now=iso(self.store.clock()),
        )

    async def _list_tickets(self, agent: Agent, request: dict[str, Any]) -> Any:
        queue = request.get("queue")
        if queue and not agent.may_see(queue):
            await self.store.write(audit(agent.name, "list_tickets", allowed=False, detail={"queue": queue}))
            raise ApiError("forbidden", f"{agent.name} is not a member of queue {queue!r}")
        if "offset" in request:  # silently ignored, it would serve the first page for ever
            raise ApiError("invalid", "list_tickets pages by 'cursor' (a page's 'next_cursor'), not 'offset'")
        cursor = request.get("cursor")
        try:
            after = read_page_cursor(cursor) if cursor is not None else None
        except (ValueError, TypeError):  # not a string, or not one of ours
            raise ApiError("invalid", "list_tickets: expected a page's 'next_cursor' in 'cursor'") from None
        page = await queries.ticket_page(
            self.store, agent.visible_queues(), queue=queue or None, status=request.get("status"),
            assignee=request.get("assignee"), after=after, limit=self._limit(request, 100, self.conf.max_page),
        )
        last = page.pop("next")
        page["next_cursor"] = page_cursor(*last) if last else None
        await self._with_sla_all(page["tickets"])
        return page

    async def _open_ticket(self, agent: Agent, request: dict[str, Any]) -> Any:
        """The ticket with the newest page of its thread (see the module's docstring)."""
        ref = await self._authorised_ticket(agent, "open_ticket", request.get("ref"))
        limit = self._limit(request, THREAD_PAGE, self.conf.max_page)
        (detail,) = await self._with_sla_all(await queries.ticket_summaries(self.store, [ref]))
        detail.update(await self._thread_window(ref, None, limit))
        detail.update(await self._reply_routes(ref))
        panel = await queries.contact_panel(self.store, detail["contact"]["id"], queues=agent.visible_queues())
        detail["contact_panel"] = panel
        # For the agent to hand to the customer (a call, a note): following one joins the claim.
        key = await read_deep_link_key(self.store) if self.ctx.bot_links.bots else b""
        detail["bot_links"] = [{"channel": link.channel, "url": link.url}
                               for link in self.ctx.bot_links.for_claim(key, ref)]
        await self.store.write(audit(agent.name, "open_ticket", ref))
        return detail

    async def _reply_channels(self, agent: Agent, request: dict[str, Any]) -> Any:
        """Where a reply to the ticket can go now: {reply_channels, no_reply_reason, no_reply_code,
        no_reply_params}."""
        return await self._reply_routes(await self._authorised_ticket(agent, "reply_channels", request.get("ref")))

    async def _reply_routes(self, ref: str) -> dict[str, Any]:
        facts = await queries.reply_facts(self.store, ref)
        routes = reply_routes(facts, self.ctx)
        why = None if routes else no_route_reason(facts)
        # The reason as words, and as a refusal's reason and params for a client to word it.
        return {"reply_channels": [{"channel": r.channel, "recipient": r.recipient, "default": r.default}
                                   for r in routes],
                "no_reply_reason": why.text if why else None, "no_reply_code": why.reason if why else None,
                "no_reply_params": why.params if why else None}

    async def _thread(self, agent: Agent, request: dict[str, Any]) -> Any:
        """The page of the thread before message `before`: {messages, timeline, earlier}."""
        ref = await self._authorised_ticket(agent, "thread", request.get("ref"))
        limit = self._limit(request, THREAD_PAGE, self.conf.max_page)
        before = request.get("before")
        found = await queries.thread_messages(self.store, [before]) if isinstance(before, int) else []
        if not found or found[0]["ref"] != ref:
            raise ApiError("invalid", f"thread: expected the id of a message of {ref} in 'before'")
        return await self._thread_window(ref, found[0], limit)

    async def _thread_window(self, ref: str, before: dict[str, Any] | None, limit: int) -> dict[str, Any]:
        """The newest `limit` messages before message `before` (or of all), fewer when their
        texts pass THREAD_BUDGET, with the timeline events of the same span and `earlier`, the
        count of messages older still. Only that window is read: a claim of thousands of
        messages opens as fast as a short one. Spans meet at a message's time: an event at that
        instant belongs to the newer span."""
        picked = within_budget(await queries.thread_window(
            self.store, ref, before=before["id"] if before else None, limit=limit))
        earlier = await queries.messages_before(self.store, ref, picked[0]["id"]) if picked else 0
        timeline = await queries.timeline_span(self.store, ref, start=picked[0]["created_at"] if earlier else None,
                                               end=before["created_at"] if before else None)
        return {"messages": picked, "timeline": timeline, "earlier": earlier}

    async def _reply(self, agent: Agent, request: dict[str, Any]) -> Any:
        ref = await self._authorised_ticket(agent, "reply", request.get("ref"))
        channel = request.get("channel") or None
        outbox_id = await self._audited(agent, "reply", ref, agent_reply(ref, self._text(request), agent.name, self.ctx,
                                                                         channel), channel=channel)
        return {"outbox_id": outbox_id}

    async def _note(self, agent: Agent, request: dict[str, Any]) -> Any:
        ref = await self._authorised_ticket(agent, "note", request.get("ref"))
        return {"message_row": await self._audited(agent, "note", ref, add_note(ref, self._text(request), agent.name))}

    async def _assign(self, agent: Agent, request: dict[str, Any]) -> Any:
        ref = await self._authorised_ticket(agent, "assign", request.get("ref"))
        assignee = request.get("agent")
        if not isinstance(assignee, str) or not assignee:
            raise ApiError("invalid", "assign: expected an agent name in 'agent'")
        if assignee != agent.name:
            await self._require_role(agent, "assign", "assigning to someone else", ref)
            target = next((a for a in await list_agents(self.store) if a["name"] == assignee and a["active"]), None)
            if target is None:
                raise ApiError("not_found", f"no active agent {assignee!r}", "unknown_agent", agent=assignee)
            queue = await queries.ticket_queue(self.store, ref)
            if target["role"] == "agent" and queue not in target["queues"]:
                raise ApiError("invalid", f"{assignee} is not a member of queue {queue!r}", "agent_not_in_queue",
                               agent=assignee, queue=queue)
        old = await self._audited(agent, "assign", ref, self._unless_colleagues(agent, ref, assign_ticket(
            ref, assignee, agent.name)), assignee=assignee)
        return {"previous": old}

    async def _take(self, agent: Agent, request: dict[str, Any]) -> Any:
        return await self._assign(agent, {**request, "agent": agent.name})

    async def _unassign(self, agent: Agent, request: dict[str, Any]) -> Any:
        ref = await self._authorised_ticket(agent, "unassign", request.get("ref"))
        old = await self._audited(agent, "unassign", ref,
                                  self._unless_colleagues(agent, ref, assign_ticket(ref, None, agent.name)))
        return {"previous": old}

    @staticmethod
    def _unless_colleagues(agent: Agent, ref: str, op: WriteOp[Any]) -> WriteOp[Any]:
        """`op`, unless the ticket is a colleague's and `agent` is no supervisor: checked in the
        writer, so of two agents taking a ticket at once the second is told who has it (taking
        work off someone else is reassigning it, which is a supervisor's call)."""
        def run(tx: Tx) -> Any:
            row = tx.one("SELECT assignee FROM tickets WHERE ref = ?", (ref,))
            if row is not None and row["assignee"] not in (None, agent.name) and not agent.sees_all_queues:
                raise TicketActionError(f"{ref} is assigned to {row['assignee']}; ask a supervisor to reassign it",
                                        "assigned_to_colleague", ref=ref, agent=row["assignee"])
            return op(tx)

        return run

    async def _set_status(self, agent: Agent, request: dict[str, Any]) -> Any:
        ref = await self._authorised_ticket(agent, "set_status", request.get("ref"))
        status = self._text(request, "status")
        old = await self._audited(agent, "set_status", ref, change_status(ref, status, agent.name), status=status)
        return {"previous": old}

    async def _set_priority(self, agent: Agent, request: dict[str, Any]) -> Any:
        ref = await self._authorised_ticket(agent, "set_priority", request.get("ref"))
        priority = self._text(request, "priority")
        old = await self._audited(agent, "set_priority", ref, change_priority(ref, priority, agent.name),
                                  priority=priority)
        return {"previous": old}

    def _configured_queues(self) -> list[str]:
        return sorted(self.ctx.routing.policies.queues if self.ctx.routing else [self.ctx.default_queue])

    async def _queue_names(self, agent: Agent, request: dict[str, Any]) -> Any:
        """Every configured queue: where a ticket can be moved to."""
        return {"queues": self._configured_queues()}

    async def _set_queue(self, agent: Agent, request: dict[str, Any]) -> Any:
        """Move a ticket to another queue. An agent may move one out of their own queues to any
        queue (a transfer: it then leaves their view); the ticket leaves whoever held it."""
        ref = await self._authorised_ticket(agent, "set_queue", request.get("ref"))
        queue = self._text(request, "queue")
        known = self._configured_queues()
        if queue not in known:
            raise ApiError("invalid", f"queue {queue!r}: expected one of {', '.join(known)}")
        # Moving a colleague's ticket takes it off them: a supervisor's call, as reassigning is.
        old = await self._audited(agent, "set_queue", ref,
                                  self._unless_colleagues(agent, ref, change_queue(ref, queue, agent.name)), queue=queue)
        return {"previous": old}

    async def _merge(self, agent: Agent, request: dict[str, Any]) -> Any:
        source = await self._authorised_ticket(agent, "merge", request.get("source"))
        target = await self._authorised_ticket(agent, "merge", request.get("target"))
        moved = await self._audited(agent, "merge", source, merge_tickets(source, target, agent.name), target=target)
        return {"moved_messages": moved}

    async def _search(self, agent: Agent, request: dict[str, Any]) -> Any:
        text = self._text(request, "query")
        identities: list[tuple[str, str]] = []
        if "@" in text and (email := normalize_email(text.strip())):
            identities.append(("email", email))
        if sum(c.isdigit() for c in text) >= 7 and (phone := normalize_phone(text.strip())):
            identities.append(("phone", phone))
        match = search_match(text)
        refs = await queries.search_ticket_refs(
            self.store, refs=find_claim_refs(text, self.ctx.reference_prefix), identities=identities,
            match=match, queues=agent.visible_queues(), limit=self._limit(request, 50, self.conf.max_page),
        )
        by_ref = {t["reference"]: t for t in await self._with_sla_all(await queries.ticket_summaries(self.store, refs))}
        return {"tickets": [by_ref[r] for r in refs if r in by_ref]}

    async def _availability(self, agent: Agent, request: dict[str, Any]) -> Any:
        """An agent's shift status (available, away, offline): their own, or anyone's for a
        supervisor. Going offline hands open work on; becoming available takes waiting tickets."""
        name = request.get("agent") or agent.name
        if name != agent.name:
            await self._require_role(agent, "availability", "changing another agent's availability")
        status = self._text(request, "status")
        try:
            moved = await self.store.write(set_agent_status(name, status, agent.name))
        except ValueError as exc:
            raise ApiError("invalid", str(exc)) from None
        return {"reassigned": [{"ref": ref, "assignee": to} for ref, to in moved]}

    async def _update_agent(self, agent: Agent, request: dict[str, Any]) -> Any:
        await self._require_role(agent, "update_agent", "changing an agent's skills or load cap")
        skills = request.get("skills")
        load_cap = request.get("load_cap")
        if skills is not None and not (isinstance(skills, list) and all(isinstance(k, str) for k in skills)):
            raise ApiError("invalid", "update_agent: expected 'skills' as a list of names")
        if load_cap is not None and (not isinstance(load_cap, int) or isinstance(load_cap, bool)):
            raise ApiError("invalid", "update_agent: expected 'load_cap' as a whole number")
        try:
            await self.store.write(update_agent(self._text(request, "agent"), actor=agent.name, load_cap=load_cap,
                                                skills=frozenset(skills) if skills is not None else None))
        except ValueError as exc:
            raise ApiError("invalid", str(exc)) from None
        return {"ok": True}

    # -- contacts (CRM): profiles for whoever sees one of the contact's claims; linking and
    # -- splitting identities change who a claim belongs to, so supervisors only.

    def _contact_id(self, request: dict[str, Any], key: str) -> int:
        value = request.get(key)
        if not isinstance(value, int) or isinstance(value, bool):  # true would name contact 1
            raise ApiError("invalid", f"expected a contact id (a whole number) in {key!r}")
        return value

    async def _contact(self, agent: Agent, request: dict[str, Any]) -> Any:
        contact_id = self._contact_id(request, "contact")
        profile = await contact_profile(self.store, contact_id, queues=agent.visible_queues())
        if profile is None:
            raise ApiError("not_found", f"no contact {contact_id}", "no_contact", contact=contact_id)
        queues = {c.get("queue") for c in profile.get("claims", [])}
        if not agent.sees_all_queues and not any(agent.may_see(q) for q in queues if q):
            await self.store.write(audit(agent.name, "contact", allowed=False, detail={"contact": contact_id}))
            raise ApiError("forbidden", f"contact {contact_id} has no claim in {agent.name}'s queues")
        if not agent.sees_all_queues:
            # The customer's claims in other queues (and what was written on them) stay there.
            profile["claims"] = [c for c in profile["claims"] if agent.may_see(c["queue"])]
            visible = {c["ref"] for c in profile["claims"]}
            profile["interactions"] = [m for m in profile["interactions"] if m["ref"] in visible]
            channels: dict[str, int] = {}
            for m in profile["interactions"]:
                channels[m["channel"]] = channels.get(m["channel"], 0) + 1
            profile["channels"] = channels
        return profile

    async def _message_sender(self, agent: Agent, request: dict[str, Any]) -> Any:
        """Who wrote a customer message of the claim, and the claim's contact, as profiles: what a
        supervisor checks before linking the two (`merge_contacts`, keeping the claim's). Refused
        to agents, as the link is: the sender may be a customer of queues they do not see."""
        await self._require_role(agent, "message_sender", "linking a message's sender to the claim's contact")
        ref = await self._authorised_ticket(agent, "message_sender", request.get("ref"))
        message_id = request.get("message")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise ApiError("invalid", "expected a message id (a whole number) in 'message'")
        found = await queries.message_sender(self.store, ref, message_id)
        if found is None:
            raise ApiError("not_found", f"no customer message {message_id} on {ref}")
        if found["sender_contact"] is None:
            raise ApiError("invalid", f"the sender of message {message_id} is no contact's identity: nothing to link",
                           "sender_not_a_contact")
        return {"identity": {"kind": found["sender_kind"], "value": found["sender"]}, "channel": found["channel"],
                "sender": await contact_profile(self.store, found["sender_contact"], interactions=0),
                "claim": await contact_profile(self.store, found["claim_contact"], interactions=0)}

    async def _report(self, agent: Agent, request: dict[str, Any]) -> Any:
        """The report figures for a period (days as YYYY-MM-DD, Jalali or Gregorian), as the
        `report` command computes them; supervisors only (they span every queue)."""
        await self._require_role(agent, "report", "reports")
        by = request.get("by") or None
        try:
            start, end = period_bounds(parse_day(self._text(request, "from")), parse_day(self._text(request, "to")))
            # Business hours on the calendars the daemon's SLA clocks use.
            calendars = ReportCalendars.from_policies(self.ctx.routing.policies) if self.ctx.routing else None
            report = await build_report(self.store, start, end, by, calendars=calendars)
        except ValueError as exc:
            raise ApiError("invalid", str(exc)) from None
        return asdict(report)

    async def _templates(self, agent: Agent, request: dict[str, Any]) -> Any:
        return {"templates": [t.model_dump() for t in self.conf.reply_templates]}

    async def _duplicates(self, agent: Agent, request: dict[str, Any]) -> Any:
        await self._require_role(agent, "duplicates", "duplicate contact suggestions")
        return {"suggestions": await duplicate_suggestions(self.store)}

    async def _contact_op(self, agent: Agent, op: str, action: str, make_op: Callable[[], WriteOp[Any]]) -> Any:
        await self._require_role(agent, op, action)
        return await self.store.write(make_op())  # a ContactError is answered as a refusal

    async def _merge_contacts(self, agent: Agent, request: dict[str, Any]) -> Any:
        keep, merge = self._contact_id(request, "keep"), self._contact_id(request, "merge")
        return {"merge": await self._contact_op(agent, "merge_contacts", "merging contacts",
                                                lambda: merge_contacts(keep, merge, agent.name))}

    async def _undo_contact_merge(self, agent: Agent, request: dict[str, Any]) -> Any:
        merge = self._contact_id(request, "merge")
        return {"restored": await self._contact_op(agent, "undo_contact_merge", "undoing a contact merge",
                                                   lambda: undo_merge(merge, agent.name))}

    async def _split_identity(self, agent: Agent, request: dict[str, Any]) -> Any:
        identity = self._contact_id(request, "identity")
        with_claims = request.get("with_claims", True)
        if not isinstance(with_claims, bool):  # bool("false") is True: a typo would move the claims
            raise ApiError("invalid", "split_identity: expected 'with_claims' as true or false")
        return {"contact": await self._contact_op(agent, "split_identity", "splitting an identity off",
                                                  lambda: split_identity(identity, agent.name, with_claims=with_claims))}

    async def _supervisor(self, agent: Agent, request: dict[str, Any]) -> Any:
        await self._require_role(agent, "supervisor", "the supervisor view")
        load = {row["assignee"]: row for row in await queries.agent_load(self.store)}
        agents = [{**a, "load": load.pop(a["name"], {"open": 0, "waiting": 0, "oldest_waiting": None})}
                  for a in await list_agents(self.store)]
        # The tickets behind the queues' risk figures, to open from the view.
        risky = await queries.tickets_at_risk(
            self.store, agent.visible_queues(), warn_before=self._cutoffs(self.conf.warn_fraction),
            breach_before=self._cutoffs(1.0), now=iso(self.store.clock()),
            limit=self._limit(request, 50, self.conf.max_page))
        # Each with the countdown the ticket list shows: its running clock's, else the wall-clock
        # one (a ticket with no running clock is at risk by that one, and has no clock due time).
        summaries = {t["reference"]: t for t in await self._with_sla_all(
            await queries.ticket_summaries(self.store, [r["ref"] for r in risky]))}
        at_risk = [{**summaries[r["ref"]], "breached": r["breached"]} for r in risky if r["ref"] in summaries]
        return {"agents": agents, "other_assignees": list(load.values()), "queues": await self._queues(agent, request),
                "at_risk": at_risk}

    async def _audit(self, agent: Agent, request: dict[str, Any]) -> Any:
        await self._require_role(agent, "audit", "reading the audit trail")
        return await audit_trail(self.store, agent=request.get("agent"), limit=self._limit(request, 100, 1000))


def _shown_to(agent: Agent, payload: dict[str, Any]) -> bool:
    """Events of tickets in the agent's queues; a ticket moved away is news to those who had it
    in its old queue too (their list shows where it went)."""
    if agent.may_see(payload["queue"]):
        return True
    old = payload["data"].get("old") if payload["kind"] == "queue_changed" else None
    return isinstance(old, str) and agent.may_see(old)
