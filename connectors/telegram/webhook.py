"""Webhook mode: the Bot API POSTs each update to `/webhooks/telegram/<instance name>` with the
secret we registered in `X-Telegram-Bot-Api-Secret-Token`. 200 only after commit; 503 when the
store cannot take it, so the Bot API delivers the update again later."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from connectors.base import Sink, StoreUnavailable
from connectors.http_front import json_error
from connectors.telegram.poller import PayloadFactory

log = structlog.get_logger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_path(instance: str) -> str:
    return f"/webhooks/telegram/{instance}"


def webhook_handler(sink: Sink, secret: str, make_payload: PayloadFactory,
                    log_context: dict[str, str]) -> Callable[[web.Request], Awaitable[web.Response]]:
    expected = secret.encode()
    bound = log.bind(**log_context)

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            bound.warning("telegram_webhook_forbidden", peer=request.remote, secret_present=bool(given))
            return json_error(403, "forbidden", f"missing or wrong {SECRET_HEADER}")
        body = await request.read()
        try:
            update_id = json.loads(body)["update_id"]
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                raise TypeError(f"update_id {update_id!r} is not an integer")
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            bound.warning("telegram_webhook_malformed", error=str(exc), size=len(body))
            return json_error(400, "malformed_update",
                              "expected a Bot API Update: a JSON object with an integer update_id")
        try:
            await sink.accept(make_payload(body, update_id))
        except StoreUnavailable as exc:
            bound.error("telegram_store_unavailable", update_id=update_id, error=str(exc))
            return json_error(503, "store_unavailable", "the update was not stored; deliver it again later",
                              headers={"Retry-After": "5"})
        return web.json_response({"ok": True})

    return handle
