"""The Kavenegar connector: received SMS in over a webhook, replies out over the REST API.

Routes (instance named "kavenegar"; another instance name N mounts under /webhooks/kavenegar/N/):
  GET|POST /webhooks/kavenegar/{secret}            a received SMS (messageid, from, to, message as
                                                   form fields or query parameters); 200 once committed
  GET|POST /webhooks/kavenegar/{secret}/delivery   a delivery report (messageid, status) onto the
                                                   timeline, as Twilio's MessageStatus
Kavenegar does not sign its callbacks, so the URLs set in its panel carry a secret path segment
(from the environment, never logged): a request without it is 404, as if nothing were there.
With `status_poll_seconds`, the replies sent in the last day are also asked about through
`sms/status.json` until they reach a final status (for an account whose delivery URL cannot be
set); those still in flight at a restart are read back from the store at the next start.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import structlog
from aiohttp import web
from multidict import MultiDict
from pydantic import Field

from config.loader import ConfigError
from config.logs import log_context
from connectors.base import Connector, ConnectorSettings, Sink, required_secret
from connectors.forms import parse_form, required
from connectors.http_front import HttpError, webhook_prefix
from connectors.kavenegar.delivery import (
    UNKNOWN_ID,
    is_final,
    message_key,
    own_message_id,
    report,
)
from connectors.kavenegar.inbound import MESSAGE_FORMAT, normalise_kavenegar_sms
from connectors.kavenegar.outbound import fetch_statuses, send_sms
from connectors.sms_segments import plan_sms
from ingest.records import DeliveryResult, OutboundMessage, RawPayload

log = structlog.get_logger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
MIN_SECRET_CHARS = 16
POLL_FOR = 24 * 3600.0  # a reply still not final after a day is not asked about again


class KavenegarSettings(ConnectorSettings):
    # The line replies leave from (e.g. 10004346); empty: the account's default line.
    sender: str = Field("", pattern=r"^([0-9]{3,20})?$")
    api_key_env: str = "PARVANDEH_KAVENEGAR_API_KEY"
    webhook_secret_env: str = "PARVANDEH_KAVENEGAR_WEBHOOK_SECRET"
    api_base_url: str = Field("https://api.kavenegar.com", pattern=r"^https?://[^/\s]+/?$")
    # 0: delivery reports come only by the delivery URL set in Kavenegar's panel.
    status_poll_seconds: float = Field(0.0, ge=0.0)


class KavenegarConnector(Connector):
    kind = "kavenegar"
    Settings = KavenegarSettings
    sends = frozenset({"sms"})
    normalisers = {MESSAGE_FORMAT: normalise_kavenegar_sms}

    async def start(self, sink: Sink) -> None:
        settings: KavenegarSettings = self.settings  # type: ignore[assignment]
        api_key = required_secret(self.name, settings.api_key_env, "the Kavenegar account's API key")
        secret = required_secret(self.name, settings.webhook_secret_env,
                         "a long random secret (the last path segment of the receive URL set in Kavenegar's panel)")
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(f"[{self.name}]: environment variable {settings.webhook_secret_env} holds "
                              f"{len(secret)} characters; expected at least {MIN_SECRET_CHARS} (it is all that "
                              "proves a request comes from Kavenegar)")
        self._sink = sink
        self._secret = secret.encode()
        self._api_key = api_key
        api = f"{settings.api_base_url.rstrip('/')}/v1/{api_key}/sms"
        self._send_url, self._status_url = f"{api}/send.json", f"{api}/status.json"
        self._http = aiohttp.ClientSession()
        self._pending: dict[str, float] = {}  # Kavenegar message id -> when sent (monotonic), for polling
        if settings.status_poll_seconds:
            await self._resume_polling()
        prefix = webhook_prefix(self.kind, self.name)
        for method in ("GET", "POST"):
            self.context.http_app.router.add_route(method, prefix + "/{secret}", self._on_message)
            self.context.http_app.router.add_route(method, prefix + "/{secret}/delivery", self._on_delivery)
        self._poller = asyncio.create_task(self._poll_statuses(settings.status_poll_seconds)) \
            if settings.status_poll_seconds else None
        log.info("kavenegar_webhook_mounted", connector=self.name, prefix=prefix, api=settings.api_base_url)

    async def stop(self) -> None:
        poller: asyncio.Task[None] | None = getattr(self, "_poller", None)
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        http: aiohttp.ClientSession | None = getattr(self, "_http", None)
        if http is not None:
            await http.close()

    async def _on_message(self, request: web.Request) -> web.Response:
        body = await self._form_bytes(request)
        message_id, _ = required(self._form(body), "messageid", "from")
        with log_context(channel="sms", message_id=message_id):
            await self._sink.accept(RawPayload(  # message_accepted goes on the request's log line
                channel="sms", connector=self.name, dedupe_key=message_key(self.name, message_id),
                fmt=MESSAGE_FORMAT, body=body, received_at=datetime.now(UTC),
            ))
        return web.Response(text="OK")

    async def _on_delivery(self, request: web.Request) -> web.Response:
        message_id, code = required(self._form(await self._form_bytes(request)), "messageid", "status")
        if not code.isdigit():
            raise HttpError(400, "malformed_webhook", f"status {code!r} is not a Kavenegar status code")
        known = await self._record(message_id, int(code))
        if known and is_final(int(code)):
            self._pending.pop(message_id, None)
        log.info("kavenegar_delivery_status", connector=self.name, message_id=message_id, status=code, known=known)
        return web.Response(text="OK")

    async def _record(self, message_id: str, code: int) -> bool:
        """A report onto the timeline through the daemon's delivery-status path (Twilio's too)."""
        if self.context.on_delivery_status is None:
            raise HttpError(503, "not_ready", "delivery status recording is not available")
        outcome = report(code)
        if outcome is None:
            return False
        return await self.context.on_delivery_status("sms", message_key(self.name, message_id), *outcome)

    async def _resume_polling(self) -> None:
        """What was sent before this start and is not final yet: asked about again, each until it is
        final or a day old, as if the daemon had never stopped."""
        if self.context.awaiting_delivery is None:
            return
        now = time.monotonic()
        for key, age in (await self.context.awaiting_delivery(self.name, POLL_FOR)).items():
            if (message_id := own_message_id(self.name, key)) is not None:
                self._pending[message_id] = now - age
        if self._pending:
            log.info("kavenegar_status_polling_resumed", connector=self.name, messages=len(self._pending))

    async def _poll_statuses(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._pending = {mid: at for mid, at in self._pending.items() if time.monotonic() - at < POLL_FOR}
            if not self._pending:
                continue
            try:
                statuses = await fetch_statuses(self._http, self._status_url, self._api_key, list(self._pending))
                for message_id, code in statuses:
                    # Not yet known: the outbox may not have recorded the id yet; ask again.
                    if await self._record(message_id, code) and is_final(code) or code == UNKNOWN_ID:
                        self._pending.pop(message_id, None)
            except Exception as exc:  # the next round asks again; a store or API hiccup must not end polling
                log.warning("kavenegar_status_poll_failed", connector=self.name, error=str(exc))

    def _form(self, body: bytes) -> MultiDict[str]:
        try:
            return parse_form(body)
        except ValueError as exc:
            log.warning("kavenegar_webhook_malformed", connector=self.name, error=str(exc))
            raise HttpError(400, "malformed_form", str(exc)) from None

    async def _form_bytes(self, request: web.Request) -> bytes:
        """What Kavenegar sent, as stored: a POSTed form's body, or a GET's query string; 404
        without the secret path segment."""
        if not hmac.compare_digest(request.match_info["secret"].encode("utf-8", "replace"), self._secret):
            log.warning("kavenegar_webhook_forbidden", connector=self.name, remote=request.remote)
            raise HttpError(404, "not_found", "404: Not Found")  # as for any path that is not ours
        if request.method == "GET":
            return request.rel_url.raw_query_string.encode()
        if request.content_type != FORM_TYPE:
            raise HttpError(415, "unsupported_media_type", f"expected {FORM_TYPE}, got {request.content_type!r}")
        return await request.read()

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        settings: KavenegarSettings = self.settings  # type: ignore[assignment]
        result = await send_sms(self._http, self._send_url, self._api_key, settings.sender, outbound.recipient,
                                plan_sms(outbound.text))
        if not result.ok:
            return result
        if self._poller is not None:
            self._pending.update(dict.fromkeys(result.message_ids, time.monotonic()))
        return replace(result, channel_message_id=message_key(self.name, result.channel_message_id),
                       part_ids=tuple(message_key(self.name, part) for part in result.part_ids))
