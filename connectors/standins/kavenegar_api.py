"""A local stand-in for Kavenegar's REST API (aiohttp on loopback): answers
`POST /v1/{API-KEY}/sms/send.json` as Kavenegar does (`return.status` 200 and one entry with a
numeric `messageid`, counted from the same number in every stand-in as two accounts may; a
wrong key is 403), records every message it accepted, and can be told to fail the next requests
with Kavenegar's error codes (418 credit, 411 receptor, 500...). `GET sms/status.json` answers
each message's status (1, in queue, until `set_status` moves it; 100 for an id not its own).
Also Kavenegar's other side: calling our webhook as its panel's receive or delivery URL does,
and, when told to (`report_before_answering`), reporting on a message before it answers the
request that sent it."""

from __future__ import annotations

import asyncio
from itertools import count
from typing import Any

from aiohttp import ClientSession, web

from connectors.standins.recording import wait_for_count

ERRORS = {403: "کد شناسائی API-Key معتبر نمی‌باشد", 411: "گیرنده نامعتبر است",
          418: "اعتبار حساب شما کافی نیست", 500: "خطای داخلی"}


class KavenegarApiStandIn:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.sent: list[dict[str, str]] = []  # form of every message accepted
        self.sent_ids: list[str] = []  # the messageid each of `sent` was given
        self.attempts: list[int] = []  # `return.status` answered to every request, in order
        self._failures: list[int] = []
        self._ids = count(8792343)
        self.statuses: dict[str, int] = {}  # message id -> Kavenegar status code
        self.status_requests: list[list[str]] = []  # message ids asked about by each status.json call
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.base_url = ""
        self._early_report: tuple[str, int] | None = None
        self.early_reports: list[int] = []  # the HTTP status our delivery URL answered each one

    def report_before_answering(self, delivery_url: str, code: int) -> None:
        """From now on, report each message sent as `code` to `delivery_url`, and answer the send
        only once that report was answered: the report is then in the caller's store before the
        id that identifies it (the race of a gateway calling back at once)."""
        self._early_report = (delivery_url, code)

    def fail_next(self, status: int, *, times: int = 1) -> None:
        """The next `times` requests get this Kavenegar error instead of being accepted."""
        self._failures += [status] * times

    async def start(self) -> KavenegarApiStandIn:
        app = web.Application()
        app.router.add_post("/v1/{key}/sms/send.json", self._send)
        app.router.add_get("/v1/{key}/sms/status.json", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def set_status(self, message_id: str, code: int) -> None:
        """What status.json answers for the message from now on (10 delivered, 11 undelivered...)."""
        self.statuses[message_id] = code

    async def wait_for_status_requests(self, count: int, timeout: float = 10.0) -> list[list[str]]:
        return await wait_for_count(self.status_requests, count, self._changed, timeout)

    async def wait_for_attempts(self, count: int, timeout: float = 10.0) -> list[int]:
        return await wait_for_count(self.attempts, count, self._changed, timeout)

    def _answer(self, status: int, entries: list[dict[str, Any]] | None = None) -> web.Response:
        self.attempts.append(status)
        self._changed.set()
        message = "تایید شد" if status == 200 else ERRORS.get(status, "خطا")
        return web.json_response({"return": {"status": status, "message": message}, "entries": entries},
                                 status=status)

    async def _send(self, request: web.Request) -> web.Response:
        if request.match_info["key"] != self.api_key:
            return self._answer(403)
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if self._failures:
            return self._answer(self._failures.pop(0))
        if not form.get("receptor", "").isdigit():
            return self._answer(411)
        self.sent.append(form)
        message_id = next(self._ids)
        self.sent_ids.append(str(message_id))
        self.statuses[str(message_id)] = 1
        if self._early_report is not None:
            url, code = self._early_report
            self.statuses[str(message_id)] = code
            async with ClientSession() as session:
                status, _ = await post_kavenegar_sms(session, url, {"messageid": str(message_id), "status": str(code)})
            self.early_reports.append(status)
        return self._answer(200, [{
            "messageid": message_id, "message": form.get("message", ""), "status": 1,
            "statustext": "در صف ارسال", "sender": form.get("sender", "10004346"), "receptor": form["receptor"],
            "date": 1356619709, "cost": 120,
        }])

    async def _status(self, request: web.Request) -> web.Response:
        if request.match_info["key"] != self.api_key:
            return self._answer(403)
        ids = [i for i in request.query.get("messageid", "").split(",") if i]
        self.status_requests.append(ids)
        if self._failures:
            return self._answer(self._failures.pop(0))
        return self._answer(200, [
            {"messageid": int(i) if i.isdigit() else i, "status": self.statuses.get(i, 100), "statustext": ""}
            for i in ids
        ])


async def post_kavenegar_sms(session: ClientSession, url: str, fields: dict[str, str], *,
                             method: str = "POST") -> tuple[int, str]:
    """A callback as Kavenegar makes it to the receive URL (a received SMS) or the delivery URL
    (messageid, status): a form POST, or a GET with the fields as query parameters. Returns
    (status, body)."""
    if method == "GET":
        request = session.get(url, params=fields)
    else:
        request = session.post(url, data=fields)
    async with request as response:
        return response.status, await response.text()
