"""Replies through Twilio's Messages API with twilio's own REST client on its aiohttp client.

Where requests go: `[twilio] api_base_url` replaces the API domain's base URL
(`client.api.base_url`, a plain attribute of twilio's `Domain`), and edge/region host rewriting
is switched off so that URL is the only word on it; tests point it at a local stand-in.

Length: an SMS reply goes as one message that Twilio sends concatenated, counted in segments
(GSM-7 or UCS-2, shown on the timeline as e.g. "3 segments UCS-2"); over ten segments, where
handsets and carriers stop reassembling reliably, it is split into several messages. Several
messages are sent in order and the outbox retries the whole reply on a failure, so a part may
arrive twice (the outbox is at-least-once anyway). WhatsApp bodies are cut at 1,600 characters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from connectors.sms_segments import TextPlan, plan_sms, split_text
from connectors.twilio.inbound import WHATSAPP_PREFIX
from ingest.records import DeliveryResult, OutboundMessage

WHATSAPP_MAX_CHARS = 1600
REQUEST_TIMEOUT = 20.0

# Headers of the last API response in the calling task: twilio's exceptions drop them, and a
# 429's Retry-After is what the outbox should wait.
_last_headers: ContextVar[Mapping[str, str]] = ContextVar("twilio_last_headers", default={})


class _HeaderKeepingHttpClient(AsyncTwilioHttpClient):
    async def request(self, *args: Any, **kwargs: Any) -> Response:
        response = await super().request(*args, **kwargs)
        _last_headers.set(response.headers or {})
        return response


def make_client(account_sid: str, token: str, api_base_url: str) -> Client:
    """A REST client for one account; must be made inside the running loop (aiohttp session)."""
    client = Client(account_sid, token, http_client=_HeaderKeepingHttpClient(timeout=REQUEST_TIMEOUT))
    client.edge = client.region = None
    client.api.base_url = api_base_url.rstrip("/")
    return client


def plan_text(channel: str, text: str) -> TextPlan:
    """How a reply leaves: the message bodies, and what the agent is shown about its length."""
    if channel == "whatsapp":
        parts = split_text(text, lambda chunk: len(chunk) <= WHATSAPP_MAX_CHARS)
        return TextPlan(tuple(parts), f"{len(parts)} messages" if len(parts) > 1 else "")
    return plan_sms(text)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def result_from_error(exc: TwilioException, headers: Mapping[str, str]) -> DeliveryResult:
    """429 and 5xx are Twilio being busy or broken: retry (when it says). Other 4xx are about
    this message (bad number, unverified sender...): permanent, with Twilio's message."""
    if isinstance(exc, TwilioServiceException):
        status, code, message = exc.status, exc.code, exc.detail or exc.title
    elif isinstance(exc, TwilioRestException):
        status, code, message = exc.status, exc.code, exc.msg
    else:
        return DeliveryResult(ok=False, detail=f"Twilio client error: {exc}")
    detail = f"Twilio HTTP {status}, error {code}: {message}"
    if status == 429 or status >= 500:
        return DeliveryResult(ok=False, detail=detail, retry_after=retry_after_seconds(headers.get("Retry-After")))
    return DeliveryResult(ok=False, permanent=True, detail=detail)


@dataclass(frozen=True, slots=True)
class Addresses:
    to: str
    from_: str


def addresses(outbound: OutboundMessage, from_number: str, whatsapp_from: str) -> Addresses | DeliveryResult:
    """Twilio's To/From for the reply, or a permanent failure saying what is not configured."""
    if outbound.channel == "whatsapp":
        if not whatsapp_from:
            return DeliveryResult(ok=False, permanent=True,
                                  detail="cannot answer on WhatsApp: [twilio] whatsapp_from is not configured")
        to = outbound.recipient if outbound.recipient.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + outbound.recipient
        return Addresses(to, whatsapp_from)
    return Addresses(outbound.recipient, from_number)


async def send_text(client: Client, where: Addresses, plan: TextPlan, status_callback: str) -> DeliveryResult:
    extra = {"status_callback": status_callback} if status_callback else {}
    sids: list[str] = []
    for part in plan.parts:
        _last_headers.set({})
        try:
            message = await client.messages.create_async(to=where.to, from_=where.from_, body=part, **extra)
        except TwilioException as exc:
            return result_from_error(exc, _last_headers.get())
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return DeliveryResult(ok=False, detail=f"Twilio unreachable: {type(exc).__name__}: {exc}")
        sids.append(message.sid)
    # Twilio reports on each part's sid: all are kept, so a callback on any finds the reply.
    return DeliveryResult(ok=True, channel_message_id=sids[0], detail=plan.detail,
                          part_ids=tuple(sids) if len(sids) > 1 else ())
