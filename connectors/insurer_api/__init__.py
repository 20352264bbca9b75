"""The insurer B2B API: insurers open claim files over REST (`/api/v1`, OpenAPI at
`/api/v1/openapi.json`) and follow them; every status and SLA change of their claims is POSTed
to their webhook, signed, through the durable outbox (retries with backoff, a delivery log).

Unlike a channel connector this one needs the claim store itself, not only `accept`: a filing
is answered with our claim reference, so it is written in one transaction rather than queued
in the inbox. It therefore takes the ingest service (which holds the store, the apply context
and the blob store) as its sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol, runtime_checkable

import aiohttp
import structlog
from pydantic import Field

from connectors.base import Connector, ConnectorSettings, Sink
from connectors.insurer_api.routes import Blobs, InsurerApi
from connectors.insurer_api.webhooks import delivery_result, signed_headers
from ingest.apply import ApplyContext
from ingest.claims_ops import WEBHOOK_CHANNEL, enqueue_webhooks, log_webhook_attempt
from ingest.insurers import insurer_by_name
from ingest.records import DeliveryResult, OutboundMessage
from ingest.store import Store

log = structlog.get_logger(__name__)


def _sends_webhooks(kind: str) -> bool:
    """The committed events that can give an insurer's webhook something to send."""
    return kind == "status_changed" or kind.startswith("sla_")


class InsurerApiSettings(ConnectorSettings):
    base_path: str = Field("/api/v1", pattern=r"^/[A-Za-z0-9_\-/]*$")
    max_page: int = Field(500, ge=1, le=5000)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    # Backoff of webhook retries: base, doubling per attempt, capped.
    retry_base_seconds: float = Field(5.0, gt=0)
    retry_cap_seconds: float = Field(3600.0, gt=0)
    # How often status changes made by other processes (the CLI) are looked for.
    poll_seconds: float = Field(2.0, gt=0)


@runtime_checkable
class ClaimsBackend(Protocol):
    """What the insurer API needs from its sink: the daemon's ingest service provides it."""

    store: Store
    context: ApplyContext
    blobs: Blobs


class InsurerApiConnector(Connector):
    kind = "insurer_api"
    Settings = InsurerApiSettings
    sends = frozenset({WEBHOOK_CHANNEL})

    def __init__(self, name: str, settings: InsurerApiSettings, context: Any) -> None:
        super().__init__(name, settings, context)
        self.settings: InsurerApiSettings = settings
        self._store: Store | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self, sink: Sink) -> None:
        if not isinstance(sink, ClaimsBackend):
            raise TypeError("the insurer API needs the ingest service (store, apply context, blobs) as its sink")
        self._store = sink.store
        api = InsurerApi(sink.store, sink.context, sink.blobs, self.name, self.settings.base_path,
                         self.settings.max_page)
        if self.context.http_app is not None:
            api.install(self.context.http_app)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds))
        await self._store.write(enqueue_webhooks(self.name))  # creates the cursor on first start
        self._pump = asyncio.create_task(self._pump_webhooks(), name=f"{self.name}-webhooks")
        log.info("insurer_api_started", connector=self.name, base_path=self.settings.base_path)

    async def stop(self) -> None:
        if self._pump:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if self._session:
            await self._session.close()
            self._session = None

    async def _pump_webhooks(self) -> None:
        """Turn status and SLA events into outbox rows: woken by the store's bus, and polling
        for changes other processes committed."""
        assert self._store is not None
        events = self._store.bus.subscribe(wants=_sends_webhooks)
        try:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns an item that
                # arrived as the task was cancelled and drops the cancellation, and this loop then
                # ran on with `stop()` waiting for it for ever (a burst of status events at
                # shutdown: seen as a stalled test teardown).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await events.get()
                try:
                    caught_up = False
                    while not caught_up:
                        queued, caught_up = await self._store.write(enqueue_webhooks(self.name))
                        if queued:
                            log.info("insurer_webhooks_queued", count=queued)
                except Exception as exc:
                    if not self._store.is_open:
                        return  # the daemon is stopping
                    # A failed write (disk full, a read-only remount) moved no cursor: the next
                    # round, an event or `poll_seconds` away, queues what this one did not.
                    log.error("insurer_webhooks_not_queued", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._store.bus.unsubscribe(events)

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        assert self._store is not None and self._session is not None
        bound = log.bind(insurer=outbound.recipient, outbox_id=outbound.outbox_id, ticket=outbound.ticket_ref)
        client = await insurer_by_name(self._store, outbound.recipient)
        if client is None or not client.webhook_url:
            result = DeliveryResult(ok=False, permanent=True, detail=f"insurer {outbound.recipient!r} has no webhook URL")
            await self._log(outbound, None, result)
            return result
        body = outbound.text.encode("utf-8")
        headers = signed_headers(client.webhook_secret, body, timestamp=int(time.time()),
                                 delivery_id=outbound.outbox_id, attempt=outbound.attempt)
        status: int | None = None
        try:
            # Redirects are not followed: the endpoint could otherwise steer our signed POST to
            # any host the daemon can reach (loopback services, a cloud metadata address). A 3xx
            # is a final failure naming where it pointed; the operator updates the URL
            # (`run.py insurer set-webhook`).
            async with self._session.post(client.webhook_url, data=body, headers=headers,
                                          allow_redirects=False) as response:
                status = response.status
                if 300 <= status < 400:
                    detail = f"HTTP {status}: redirect to {response.headers.get('Location', '')[:200]!r} not followed"
                else:
                    detail = f"HTTP {status}: {(await response.text())[:200]}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
        result = delivery_result(status, detail, attempt=outbound.attempt, base=self.settings.retry_base_seconds,
                                 cap=self.settings.retry_cap_seconds)
        await self._log(outbound, status, result)
        bound.info("insurer_webhook_attempt", status=status, ok=result.ok, permanent=result.permanent,
                   attempt=outbound.attempt)
        return result

    async def _log(self, outbound: OutboundMessage, status: int | None, result: DeliveryResult) -> None:
        outcome = "delivered" if result.ok else ("failed" if result.permanent else "retrying")
        assert self._store is not None
        await self._store.write(log_webhook_attempt(outbound.outbox_id, outbound.recipient, outbound.attempt,
                                                    status, outcome, result.detail))
