"""A local stand-in for Twilio's Messages API (aiohttp on loopback): checks HTTP Basic auth,
answers `POST /2010-04-01/Accounts/{sid}/Messages.json` like Twilio does (201, a JSON message
resource with sid "SM…" and status "queued"), records every request it was sent, and can be told
to fail the next requests with Twilio-style error bodies (429, 500, 400...). Also Twilio's other
side: signing and posting webhooks the way Twilio does, and, when told to
(`report_before_answering`), calling a message's StatusCallback before answering its request."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import BasicAuth, ClientSession, hdrs, web
from twilio.request_validator import RequestValidator

from connectors.standins.recording import wait_for_count


@dataclass
class _Failure:
    status: int
    code: int
    message: str
    retry_after: str | None


class TwilioApiStandIn:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sent: list[dict[str, str]] = []  # form of every message accepted (201)
        self.attempts: list[int] = []  # HTTP status answered to every POST, in order
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.base_url = ""
        self._media: dict[str, tuple[bytes, str]] = {}
        self._early_report: tuple[str, str] | None = None
        self.early_reports: list[int] = []  # the HTTP status our StatusCallback answered each one

    def report_before_answering(self, status: str, reach: str) -> None:
        """From now on, call each accepted message's StatusCallback with `status` (signed over
        the callback URL as given, sent to the same path under `reach`, e.g. the daemon's loopback
        address behind its public URL), and answer the request only once it was answered."""
        self._early_report = (status, reach.rstrip("/"))

    def fail_next(self, status: int, *, times: int = 1, code: int | None = None, message: str = "",
                  retry_after: str | None = None) -> None:
        """The next `times` requests get this error instead of being accepted."""
        default = {429: (20429, "Too Many Requests"), 500: (20500, "Internal Server Error"),
                   400: (21211, "The 'To' number is not a valid phone number.")}.get(status, (status, "Error"))
        failure = _Failure(status, code or default[0], message or default[1], retry_after)
        self._failures += [failure] * times

    def add_media(self, message_sid: str, media_sid: str, data: bytes, content_type: str) -> str:
        """Media a customer sent; returns its MediaUrl as Twilio gives it in the webhook."""
        self._media[media_sid] = (data, content_type)
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"

    async def _media_file(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        if request.match_info["media"] not in self._media:
            return self._error(404, 20404, "The requested resource was not found")
        # As Twilio does: a redirect to a short-lived content URL.
        raise web.HTTPTemporaryRedirect(f"/cdn/{request.match_info['media']}")

    async def _cdn_file(self, request: web.Request) -> web.Response:
        data, content_type = self._media[request.match_info["media"]]
        return web.Response(body=data, content_type=content_type)

    def _authorised(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get(hdrs.AUTHORIZATION, ""))
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.account_sid, self.auth_token) \
            and request.match_info["sid"] == self.account_sid

    async def start(self) -> TwilioApiStandIn:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create_message)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{message}/Media/{media}", self._media_file)
        app.router.add_get("/cdn/{media}", self._cdn_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, str]]:
        """Wait until `count` messages were accepted (polling with a deadline)."""
        return await wait_for_count(self.sent, count, self._changed, timeout)

    async def wait_for_attempts(self, count: int, timeout: float = 10.0) -> list[int]:
        return await wait_for_count(self.attempts, count, self._changed, timeout)

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
        self.attempts.append(status)
        self._changed.set()
        return web.json_response(body, status=status, headers=headers)

    def _error(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        return self._answer(status, {"code": code, "message": message, "status": status,
                                     "more_info": f"https://www.twilio.com/docs/errors/{code}"}, headers)

    async def _create_message(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if self._failures:
            failure = self._failures.pop(0)
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
            return self._error(failure.status, failure.code, failure.message, headers)
        if not form.get("To"):
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body") and not form.get("MediaUrl"):
            return self._error(400, 21602, "Message body is required.")
        message_sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC), usegmt=True)
        self.sent.append(form)
        if self._early_report is not None and form.get("StatusCallback"):
            await self._report(form, message_sid, *self._early_report)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}"
        return self._answer(201, {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": form["Body"],
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "num_media": "0", "num_segments": "1",
            "price": None, "price_unit": "USD", "sid": message_sid, "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": form["To"], "uri": f"{uri}.json",
        })

    async def _report(self, form: dict[str, str], message_sid: str, status: str, reach: str) -> None:
        callback = form["StatusCallback"]
        path = urlsplit(callback).path
        params = {"MessageSid": message_sid, "SmsSid": message_sid, "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": self.account_sid, "From": form.get("From", ""), "To": form["To"],
                  "ApiVersion": "2010-04-01"}
        async with ClientSession() as session:
            answered, _ = await post_twilio_webhook(session, reach + path, params, self.auth_token, signed_url=callback)
        self.early_reports.append(answered)


# -- Twilio's other side: webhooks it would send us -------------------------------------------


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it for `url` and these form fields."""
    return RequestValidator(token).compute_signature(url, params)


async def post_twilio_webhook(
    session: ClientSession, url: str, params: dict[str, str], token: str, *,
    signed_url: str | None = None, signature: str | None = None, body: bytes | None = None,
) -> tuple[int, str]:
    """POST a form the way Twilio does, signed over `signed_url` (default: `url`); `signature`
    overrides the header ("" sends none). Returns (status, response text)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    sig = twilio_signature(token, signed_url or url, params) if signature is None else signature
    if sig:
        headers["X-Twilio-Signature"] = sig
    data = body if body is not None else urlencode(params).encode()
    async with session.post(url, data=data, headers=headers) as response:
        return response.status, await response.text()
