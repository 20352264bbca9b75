"""The console's side of the agent API: requests with replies matched by id, a live event
feed, and reconnection that resumes the feed from the last event seen (`since`)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

log = structlog.get_logger(__name__)

EventCallback = Callable[[dict[str, Any]], None]


class ApiRequestError(Exception):
    """A refusal: the server's words, and its `reason` and `params` for the console to word it
    in the agent's language (no reason: only the words)."""

    def __init__(self, code: str, message: str, reason: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.params = params or {}


class AuthenticationError(Exception):
    """The API refused the token."""


class AgentClient:
    def __init__(self, url: str, token: str, *, on_event: EventCallback | None = None,
                 on_state: Callable[[str], None] | None = None, reconnect: bool = True) -> None:
        self.url = url
        self.token = token
        self.on_event = on_event or (lambda event: None)
        self.on_state = on_state or (lambda state: None)
        self.reconnect = reconnect
        self.agent: dict[str, Any] = {}
        self.server_now = ""
        self.last_event_id: int | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._reconnecting: asyncio.Task[None] | None = None

    async def connect(self) -> dict[str, Any]:
        """Log in (resuming from the last event seen, if any); returns the welcome."""
        ws = await connect(self.url, max_size=2**24)
        await ws.send(json.dumps({"op": "hello", "token": self.token, "since": self.last_event_id}))
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            await ws.close()
            raise AuthenticationError(welcome.get("error", "refused"))
        self._ws = ws
        self.agent = welcome["agent"]
        self.server_now = welcome["now"]
        if self.last_event_id is None:
            self.last_event_id = welcome["last_event_id"]
        self._reader = asyncio.create_task(self._read(ws), name="agent-client-reader")
        self.on_state("connected")
        return welcome

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def request(self, op: str, **args: Any) -> Any:
        if self._ws is None:
            raise ConnectionError("not connected to the agent API")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(json.dumps({"id": request_id, "op": op, **args}, ensure_ascii=False))
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "result":
                    future = self._pending.get(message.get("id"))
                    if future is not None and not future.done():
                        if message["ok"]:
                            future.set_result(message["data"])
                        else:
                            future.set_exception(ApiRequestError(message["code"], message["error"],
                                                                 message.get("reason"), message.get("params")))
                elif kind == "event":
                    self.last_event_id = max(self.last_event_id or 0, message["id"])
                    self.on_event(message)
                elif kind == "resync":
                    self.last_event_id = message["last_event_id"]
                    self.on_event(message)
        except ConnectionClosed:
            pass
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection to the agent API lost"))
        self._ws = None
        if not self._closing and self.reconnect:
            self._reconnecting = asyncio.create_task(self._reconnect(), name="agent-client-reconnect")

    async def _reconnect(self) -> None:
        self.on_state("reconnecting")
        delay = 0.2
        while not self._closing:
            try:
                await self.connect()
                return
            except AuthenticationError:
                self.on_state("refused")
                return
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                log.info("agent_api_reconnect_failed", error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
