"""A local stand-in for the Telegram Bot API (and Bale's copy of it), over real HTTP on loopback.

Serves what the connector uses — getMe, getUpdates (long polling with Telegram's offset
semantics), sendMessage, getFile, deleteWebhook, setWebhook and file downloads — for any number
of bot tokens, and records what it was asked: every getUpdates offset, every message sent.
Like the real API, sendMessage refuses a text over 4096 UTF-16 code units.

    api = await BotApiStandIn(["111:AAA"]).start()
    bot = api.bot("111:AAA")
    update_id = bot.push(update_dict)           # queued for getUpdates, with a fresh update_id
    bot.fail_next_send("blocked")               # the next sendMessage answers 403
    Bot(token, base_url=api.base_url, base_file_url=api.base_file_url)
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from aiohttp import web

# How the real Bot API words each failure the connector must handle.
SEND_FAILURES: dict[str, tuple[int, dict[str, Any]]] = {
    "blocked": (403, {"description": "Forbidden: bot was blocked by the user"}),
    "retry_after": (429, {"description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
    "bad_request": (400, {"description": "Bad Request: chat not found"}),
}
MAX_TEXT_UTF16_UNITS = 4096
TOO_LONG = (400, {"description": "Bad Request: message is too long"})


@dataclass
class StandInBot:
    """The server-side state of one bot token."""

    token: str
    first_name: str = "Parvandeh Test Bot"
    username: str = "parvandeh_test_bot"
    queue: list[dict[str, Any]] = field(default_factory=list)
    offsets: list[int | None] = field(default_factory=list)  # every getUpdates offset asked for
    sent: list[dict[str, Any]] = field(default_factory=list)
    send_failures: deque[str] = field(default_factory=deque)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (file_path, bytes)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    updates_broken: bool = False  # getUpdates answers 502 (a proxy in front of the API failing)
    break_after_batch: bool = False
    next_update_id: int = 500_000
    confirmed_below: int = 0  # Telegram's view: updates below this were confirmed and are gone
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    next_message_id: int = 1
    downloads_asked: int = 0
    # Cleared: file downloads are held (a slow or stuck file server) until it is set again.
    downloads_flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.downloads_flowing.set()

    @property
    def id(self) -> int:
        return int(self.token.partition(":")[0])

    def push(self, update: dict[str, Any], update_id: int | None = None) -> int:
        """Queue an update (a copy, renumbered unless `update_id` is given) for getUpdates."""
        if update_id is None:
            update_id = self.next_update_id
            self.next_update_id += 1
        queued = copy.deepcopy(update)
        queued["update_id"] = update_id
        self.queue.append(queued)
        self._poke()
        return update_id

    def confirmed(self, update_id: int) -> bool:
        """True once the client asked for an offset past this update (it is then dropped)."""
        return self.confirmed_below > update_id

    def fail_next_send(self, *kinds: str) -> None:
        for kind in kinds:
            if kind not in SEND_FAILURES:
                raise ValueError(f"unknown failure {kind!r}; expected one of {sorted(SEND_FAILURES)}")
            self.send_failures.append(kind)

    def add_file(self, file_id: str, data: bytes, file_path: str = "") -> None:
        self.files[file_id] = (file_path or f"documents/{file_id}.bin", data)

    async def wait_sent(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait(lambda: len(self.sent) >= count, timeout, f"{count} sendMessage calls, got {self.sent}")
        return self.sent

    async def wait_confirmed(self, update_id: int, timeout: float = 10.0) -> None:
        await self.wait(lambda: self.confirmed(update_id), timeout, f"offset past {update_id}; asked {self.offsets}")

    async def wait_offset_asked(self, offset: int, times: int, timeout: float = 10.0) -> None:
        await self.wait(lambda: self.offsets.count(offset) >= times, timeout,
                         f"getUpdates(offset={offset}) {times} times; asked {self.offsets}")

    async def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stand-in never saw {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass

    def _poke(self) -> None:
        self.changed.set()


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response({"ok": False, "error_code": status, **body}, status=status)


async def _params(request: web.Request) -> dict[str, Any]:
    """Bot API parameters from the query, a JSON body or a form (PTB sends a form whose
    non-string values are JSON-encoded)."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.can_read_body:
        params.update(await request.post())
    return params


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


class BotApiStandIn:
    def __init__(self, tokens: list[str] | tuple[str, ...] = ("123456:TEST-token",)) -> None:
        self.bots = {token: StandInBot(token) for token in tokens}
        self.port = 0
        self._closing = False
        self._runner: web.AppRunner | None = None

    def bot(self, token: str) -> StandInBot:
        return self.bots[token]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> BotApiStandIn:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        # End pending long polls now rather than at their timeout, so the server can close.
        self._closing = True
        for bot in self.bots.values():
            bot._poke()
        if self._runner:
            await self._runner.cleanup()

    async def _method(self, request: web.Request) -> web.Response:
        bot = self.bots.get(request.match_info["token"])
        if bot is None:
            return _error(401, {"description": "Unauthorized"})
        handler = getattr(self, f"_api_{request.match_info['method'].lower()}", None)
        if handler is None:
            return _error(404, {"description": "Not Found: method not found"})
        return await handler(bot, await _params(request))

    async def _api_getme(self, bot: StandInBot, params: dict[str, Any]) -> web.Response:
        return _ok({"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username,
                    "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False})

    async def _api_getupdates(self, bot: StandInBot, params: dict[str, Any]) -> web.Response:
        offset = _int(params.get("offset"))
        bot.offsets.append(offset)
        bot._poke()
        if bot.updates_broken:
            return web.Response(status=502, text="Bad Gateway")
        if offset is not None and offset > 0:
            bot.confirmed_below = max(bot.confirmed_below, offset)
            bot.queue = [u for u in bot.queue if u["update_id"] >= offset]
        limit = _int(params.get("limit")) or 100
        deadline = time.monotonic() + (_int(params.get("timeout")) or 0)
        while True:
            ready = sorted((u for u in bot.queue if u["update_id"] >= bot.confirmed_below),
                           key=lambda u: u["update_id"])[:limit]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0 or self._closing:
                break
            bot.changed.clear()
            try:
                await asyncio.wait_for(bot.changed.wait(), remaining)
            except TimeoutError:
                pass
        if ready and bot.break_after_batch:
            bot.updates_broken = True
        return _ok(ready)

    async def _api_sendmessage(self, bot: StandInBot, params: dict[str, Any]) -> web.Response:
        if bot.send_failures:
            status, body = SEND_FAILURES[bot.send_failures.popleft()]
            bot._poke()
            return _error(status, body)
        text = params.get("text", "")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_UTF16_UNITS:
            return _error(*TOO_LONG)
        chat_id = params.get("chat_id")
        message = {
            "message_id": bot.next_message_id,
            "date": int(time.time()),
            "chat": {"id": int(chat_id), "type": "private"},
            "from": {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username},
            "text": text,
        }
        bot.next_message_id += 1
        bot.sent.append({"chat_id": chat_id, "text": text, "message_id": message["message_id"]})
        bot._poke()
        return _ok(message)

    async def _api_getfile(self, bot: StandInBot, params: dict[str, Any]) -> web.Response:
        file_id = params.get("file_id", "")
        if file_id not in bot.files:
            return _error(400, {"description": "Bad Request: wrong file_id or the file is temporarily unavailable"})
        path, data = bot.files[file_id]
        return _ok({"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": len(data), "file_path": path})

    async def _api_deletewebhook(self, bot: StandInBot, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _api_setwebhook(self, bot: StandInBot, params: dict[str, Any]) -> web.Response:
        bot.webhooks.append(dict(params))
        bot._poke()
        return _ok(True)

    async def _download(self, request: web.Request) -> web.Response:
        bot = self.bots.get(request.match_info["token"])
        wanted = request.match_info["path"]
        if bot:
            bot.downloads_asked += 1
            bot._poke()
            await bot.downloads_flowing.wait()
        for path, data in (bot.files.values() if bot else ()):
            if path == wanted:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

