"""The Kavenegar connector: received SMS in over a webhook, replies out over the REST API.

Routes (instance named "kavenegar"; another instance name N mounts under /webhooks/kavenegar/N/):
  GET|POST /webhooks/kavenegar/{secret}   a received SMS (messageid, from, to, message as form
                                          fields or query parameters); 200 once committed
Kavenegar does not sign its callbacks, so the URL set in its panel carries a secret path segment
(from the environment, never logged): a request without it is 404, as if nothing were there.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

import aiohttp
import structlog
from aiohttp import web
from pydantic import Field

from config.loader import ConfigError
from config.logs import log_context
from connectors.base import Connector, ConnectorSettings, Sink, required_secret
from connectors.forms import parse_form, required
from connectors.http_front import HttpError, webhook_prefix
from connectors.kavenegar.inbound import MESSAGE_FORMAT, normalise_kavenegar_sms
from connectors.kavenegar.outbound import send_sms
from connectors.sms_segments import plan_sms
from ingest.records import DeliveryResult, OutboundMessage, RawPayload

log = structlog.get_logger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
MIN_SECRET_CHARS = 16


class KavenegarSettings(ConnectorSettings):
    # The line replies leave from (e.g. 10004346); empty: the account's default line.
    sender: str = Field("", pattern=r"^([0-9]{3,20})?$")
    api_key_env: str = "PARVANDEH_KAVENEGAR_API_KEY"
    webhook_secret_env: str = "PARVANDEH_KAVENEGAR_WEBHOOK_SECRET"
    api_base_url: str = Field("https://api.kavenegar.com", pattern=r"^https?://[^/\s]+/?$")


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
        self._send_url = f"{settings.api_base_url.rstrip('/')}/v1/{api_key}/sms/send.json"
        self._http = aiohttp.ClientSession()
        prefix = webhook_prefix(self.kind, self.name)
        self.context.http_app.router.add_route("GET", prefix + "/{secret}", self._on_message)
        self.context.http_app.router.add_route("POST", prefix + "/{secret}", self._on_message)
        log.info("kavenegar_webhook_mounted", connector=self.name, prefix=prefix, api=settings.api_base_url)

    async def stop(self) -> None:
        http: aiohttp.ClientSession | None = getattr(self, "_http", None)
        if http is not None:
            await http.close()

    async def _on_message(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["secret"].encode("utf-8", "replace"), self._secret):
            log.warning("kavenegar_webhook_forbidden", connector=self.name, remote=request.remote)
            raise HttpError(404, "not_found", "404: Not Found")  # as for any path that is not ours
        body = await self._form_bytes(request)
        try:
            form = parse_form(body)
        except ValueError as exc:
            log.warning("kavenegar_webhook_malformed", connector=self.name, error=str(exc))
            raise HttpError(400, "malformed_form", str(exc)) from None
        message_id, _ = required(form, "messageid", "from")
        with log_context(channel="sms", message_id=message_id):
            await self._sink.accept(RawPayload(  # message_accepted goes on the request's log line
                channel="sms", connector=self.name, dedupe_key=message_id, fmt=MESSAGE_FORMAT, body=body,
                received_at=datetime.now(UTC),
            ))
        return web.Response(text="OK")

    @staticmethod
    async def _form_bytes(request: web.Request) -> bytes:
        """What Kavenegar sent, as stored: a POSTed form's body, or a GET's query string."""
        if request.method == "GET":
            return request.rel_url.raw_query_string.encode()
        if request.content_type != FORM_TYPE:
            raise HttpError(415, "unsupported_media_type", f"expected {FORM_TYPE}, got {request.content_type!r}")
        return await request.read()

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        settings: KavenegarSettings = self.settings  # type: ignore[assignment]
        return await send_sms(self._http, self._send_url, self._api_key, settings.sender, outbound.recipient,
                              plan_sms(outbound.text))
