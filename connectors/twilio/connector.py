"""The Twilio connector: SMS and WhatsApp in over signed webhooks, out over the Messages API.

Routes (instance named "twilio"; another instance name N mounts under /webhooks/twilio/N/):
  POST /webhooks/twilio/messages  inbound SMS/WhatsApp; empty TwiML 200 once committed
  POST /webhooks/twilio/status    delivery status callbacks (MessageStatus) onto the timeline
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
import aiohttp
from aiohttp import web
from pydantic import Field
from twilio.rest import Client

from config.logs import log_context
from connectors.base import Connector, ConnectorSettings, Sink
from connectors.forms import required
from connectors.http_front import HttpError, webhook_prefix
from connectors.twilio.inbound import MESSAGE_FORMAT, message_channel, normalise_twilio_message
from connectors.twilio.media import fetch_media
from connectors.twilio.outbound import addresses, make_client, plan_text, send_text
from connectors.twilio.webhook import TwilioWebhook, auth_token
from ingest.records import DeliveryResult, OutboundMessage, RawPayload

log = structlog.get_logger(__name__)

E164 = r"^\+[1-9][0-9]{6,14}$"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


class TwilioSettings(ConnectorSettings):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    from_number: str = Field(pattern=E164)
    whatsapp_from: str = Field("", pattern=r"^(whatsapp:\+[1-9][0-9]{6,14})?$")
    api_base_url: str = Field("https://api.twilio.com", pattern=r"^https?://[^/\s]+/?$")
    status_callback: bool = True
    download_media: bool = True  # false: media stay links (MediaUrl) on the thread


class TwilioConnector(Connector):
    kind = "twilio"
    Settings = TwilioSettings
    sends = frozenset({"sms", "whatsapp"})
    normalisers = {MESSAGE_FORMAT: normalise_twilio_message}

    async def start(self, sink: Sink) -> None:
        settings: TwilioSettings = self.settings  # type: ignore[assignment]
        token = auth_token(self.name)
        public_base_url = self.context.settings.http.public_base_url
        self._sink = sink
        self._webhook = TwilioWebhook(token, public_base_url)
        self._client: Client = make_client(settings.account_sid, token, settings.api_base_url)
        self._token = token
        self._media = aiohttp.ClientSession()
        prefix = webhook_prefix(self.kind, self.name)
        # Twilio must be told where to report: only possible when we know our public URL.
        self._status_callback = f"{public_base_url.rstrip('/')}{prefix}/status" \
            if settings.status_callback and public_base_url else ""
        if settings.status_callback and not public_base_url:
            log.warning("twilio_status_callback_off", connector=self.name, reason="[http] public_base_url is not set")
        self.context.http_app.router.add_post(f"{prefix}/messages", self._on_message)
        self.context.http_app.router.add_post(f"{prefix}/status", self._on_status)
        log.info("twilio_webhooks_mounted", connector=self.name, prefix=prefix, api=settings.api_base_url)

    async def stop(self) -> None:
        client: Client | None = getattr(self, "_client", None)
        if client is not None:
            await client.http_client.close()  # type: ignore[attr-defined]
        media: aiohttp.ClientSession | None = getattr(self, "_media", None)
        if media is not None:
            await media.close()

    async def _on_message(self, request: web.Request) -> web.Response:
        body, form = await self._webhook.read(request)
        sid, sender = required(form, "MessageSid", "From")
        channel = message_channel(sender)
        with log_context(channel=channel, message_id=sid):
            await self._sink.accept(RawPayload(  # message_accepted goes on the request's log line
                channel=channel, connector=self.name, dedupe_key=sid, fmt=MESSAGE_FORMAT, body=body,
                received_at=datetime.now(UTC),
            ))
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def _on_status(self, request: web.Request) -> web.Response:
        _, form = await self._webhook.read(request)
        sid, status = required(form, "MessageSid", "MessageStatus")
        channel = message_channel(form.get("To", "") or form.get("From", ""))
        code, error = form.get("ErrorCode", ""), form.get("ErrorMessage", "")
        detail = "; ".join(part for part in (f"error {code}" if code else "", error) if part)
        if self.context.on_delivery_status is None:
            raise HttpError(503, "not_ready", "delivery status recording is not available")
        known = await self.context.on_delivery_status(channel, sid, status, detail)
        log.info("twilio_delivery_status", channel=channel, message_id=sid, status=status, detail=detail or None,
                 known=known)
        return web.Response(status=204)

    async def fetch_attachment(self, remote_ref: str) -> bytes | None:
        settings: TwilioSettings = self.settings  # type: ignore[assignment]
        if not settings.download_media:
            return None
        return await fetch_media(self._media, remote_ref, settings.api_base_url, settings.account_sid, self._token,
                                 self.context.settings.claims.max_attachment_bytes)

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        settings: TwilioSettings = self.settings  # type: ignore[assignment]
        where = addresses(outbound, settings.from_number, settings.whatsapp_from)
        if isinstance(where, DeliveryResult):
            return where
        return await send_text(self._client, where, plan_text(outbound.channel, outbound.text), self._status_callback)
