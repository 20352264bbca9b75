"""The daemon: opens the store, starts the ingest processor, every configured connector, the
outbox and the shared HTTP front, and stops them in the order that loses nothing."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from aiohttp import web

from config.loader import ConfigError, Settings
from config.policies import load_policies
from connectors.base import Connector, ConnectorContext
from connectors.http_front import install_http_front
from connectors.registry import connector_classes, normalisers
from ingest.agent_api import AgentApi
from ingest.apply import ApplyContext, delivery_status
from ingest.attachment_fetcher import AttachmentFetcher
from ingest.blobs import BlobStore
from ingest.deep_links import BotLinks, deep_link_key
from ingest.outbox import OutboxDispatcher, awaiting_final_status
from ingest.queries import conversation_history, ticket_ref_for_inbox
from ingest.routing_hooks import RoutingHooks
from ingest.service import Ingest
from ingest.sla_engine import SlaEngine
from ingest.store import Store, utcnow
from ingest.supervision import ended

log = structlog.get_logger(__name__)

# Net allocations of container objects between two collections of the youngest generation
# (CPython's default is 700); see tune_garbage_collector.
YOUNGEST_GENERATION_THRESHOLD = 10_000


def apply_context(settings: Settings, connectors: dict[str, Connector],
                  bot_links: BotLinks | None = None) -> ApplyContext:
    reply_connectors: dict[str, str] = {}
    for name, connector in connectors.items():
        for channel in connector.sends:
            reply_connectors.setdefault(channel, name)
    from_address = next(
        (c.settings.from_address for c in connectors.values() if hasattr(c.settings, "from_address")),
        "claims@parvandeh.local",
    )
    return ApplyContext(
        reference_prefix=settings.claims.reference_prefix,
        continuity_window=timedelta(hours=settings.claims.continuity_window_hours),
        default_queue=settings.claims.default_queue,
        acknowledge=settings.claims.acknowledge_new_tickets,
        ack_hourly_limit=settings.claims.acknowledgements_per_recipient_per_hour,
        own_addresses=frozenset([*settings.claims.own_addresses, from_address.lower()]),
        mail_domain=from_address.rpartition("@")[2] or "parvandeh.local",
        from_address=from_address,
        reply_connectors=reply_connectors,
        # A reply leaves through the connector the customer wrote to when it sends on the channel
        # (our Kavenegar line, not Twilio's number, for an SMS received through Kavenegar).
        sending_connectors={name: connector.sends for name, connector in connectors.items()},
        routing=RoutingHooks(load_policies(settings)),
        bot_links=bot_links or BotLinks(),
    )


def build_connectors(settings: Settings, context: ConnectorContext | None = None) -> dict[str, Connector]:
    classes = connector_classes()
    context = context or ConnectorContext(settings=settings)
    return {name: classes[kind](name, conf, context) for kind, name, conf in settings.connector_instances()}


def offline_ingest(settings: Settings, store: Store) -> Ingest:
    """An ingest processor without connectors, for the CLI (quarantine retry)."""
    return Ingest(store, BlobStore(settings.store.attachments_dir), normalisers(),
                  apply_context(settings, build_connectors(settings)),
                  max_attachment_bytes=settings.claims.max_attachment_bytes)


class Daemon:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.store = Store(settings.store.path, synchronous=settings.store.synchronous,
                           max_batch=settings.store.max_batch, background_batch=settings.store.background_batch,
                           ack_wait_ms=settings.store.ack_wait_ms,
                           clock=clock)
        self.blobs = BlobStore(settings.store.attachments_dir)
        self.http_app = web.Application(client_max_size=settings.http.max_body_bytes)
        install_http_front(self.http_app)
        self.http_app.router.add_get("/healthz", self._healthz)
        bot_links = BotLinks()
        self.context = ConnectorContext(
            http_app=self.http_app, settings=settings,
            on_delivery_status=self._delivery_status, history=self._history,
            ticket_for_inbox=self._ticket_for_inbox, on_bot_link=bot_links.add,
            awaiting_delivery=self._awaiting_delivery,
        )
        self.connectors = build_connectors(settings, self.context)
        self.ingest = Ingest(self.store, self.blobs, normalisers(), apply_context(settings, self.connectors, bot_links),
                             max_attachment_bytes=settings.claims.max_attachment_bytes,
                             normaliser_processes=settings.ingest.normaliser_processes)
        self.outbox = OutboxDispatcher(self.store, self.connectors)
        self.attachments = AttachmentFetcher(self.store, self.blobs, self.connectors,
                                             settings.claims.max_attachment_bytes)
        self.agent_api = AgentApi(self.store, self.ingest.context, settings)
        self.sla = SlaEngine(self.store, self.ingest.context, clock=clock)
        self._http_runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self._started: list[str] = []  # connectors, in the order they started
        self._lock_fd: int | None = None

    async def _delivery_status(self, channel: str, channel_message_id: str, status: str, detail: str) -> bool:
        return await self.store.write(delivery_status(channel, channel_message_id, status, detail))

    async def _awaiting_delivery(self, connector: str, max_age_seconds: float) -> dict[str, float]:
        return await awaiting_final_status(self.store, connector, timedelta(seconds=max_age_seconds))

    async def _history(self, conversation_key: str, limit: int) -> list[dict]:
        return await conversation_history(self.store, conversation_key, limit)

    async def _ticket_for_inbox(self, inbox_id: int) -> str | None:
        return await ticket_ref_for_inbox(self.store, inbox_id)

    async def _healthz(self, request: web.Request) -> web.Response:
        parts = (self.store, self.ingest, self.outbox, self.sla, self.attachments,
                 *(self.connectors[name] for name in self._started))
        stopped = ended(task for part in parts for task in part.background_tasks)
        if self.store.is_open and not stopped:
            return web.json_response({"ok": True})
        return web.json_response({"ok": False, "store_open": self.store.is_open, "stopped": stopped}, status=503)

    def _lock_store(self) -> None:
        """One daemon per store: a second one would thread every pending message again, reset
        the first one's replies in flight to be sent again, and poll the same mailboxes. The
        lock is the kernel's: it goes with the process however it ends (kill -9 included)."""
        path = Path(self.settings.store.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StartError(f"another daemon is serving the store {path} (it holds {path}.lock)") from None
        self._lock_fd = fd

    async def start(self) -> None:
        try:
            self._lock_store()
            await self.store.open()
        except OSError as exc:  # a directory that cannot be created or written
            raise StartError(f"[store] path {self.settings.store.path}: {exc}") from exc
        await self.store.write(deep_link_key)  # made now, so the agent API can read it
        await self.sla.start()
        await self.ingest.start()
        for name, connector in self.connectors.items():
            try:
                await connector.start(self.ingest)
            except Exception as exc:  # a port in use, a plugin's bug: name the connector
                raise StartError(f"connector {name} ({connector.kind}) did not start: {exc}") from exc
            self._started.append(name)
            log.info("connector_started", connector=name, kind=connector.kind)
        await self.outbox.start()
        await self.attachments.start()
        try:
            await self.agent_api.start()
        except OSError as exc:
            raise StartError(f"[agent_api] host/port: {exc}") from exc
        self._http_runner = web.AppRunner(self.http_app, access_log=None)
        await self._http_runner.setup()
        site = web.TCPSite(self._http_runner, self.settings.http.host, self.settings.http.port)
        try:
            await site.start()
        except OSError as exc:
            raise StartError(f"[http] host/port {self.settings.http.host}:{self.settings.http.port}: {exc}") from exc
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("daemon_started", http_port=self.http_port, connectors=sorted(self.connectors),
                 event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0])

    async def stop(self) -> None:
        """Stop accepting first, then finish processing, then close the store."""
        await self.agent_api.stop()
        # Before the connectors it downloads through: a download cut short is taken up at the
        # next start, whereas one failed by a closing connector would be recorded as failed.
        await self.attachments.stop()
        for name in self._started:  # a start that failed part-way stops what it started
            try:
                await self.connectors[name].stop()
            except Exception as exc:
                log.error("connector_stop_failed", connector=name, error=str(exc))
        self._started.clear()
        if self._http_runner:
            await self._http_runner.cleanup()
        await self.ingest.stop()
        await self.outbox.stop()
        await self.sla.stop()
        await self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("daemon_stopped")


class StartError(Exception):
    """A part of the daemon could not start; the message names it."""


async def serve(settings: Settings) -> int:
    """Runs the daemon until SIGINT/SIGTERM; the process's exit code (1: it could not start)."""
    # Handlers first: a SIGTERM while the daemon is still starting (its SMTP port may already
    # be taking mail) must stop it gracefully too, not kill it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(settings)
    try:
        await daemon.start()
    except Exception as exc:
        # Stop what did start (threads, listeners): left running, they kept the process alive,
        # deaf to SIGTERM, and a service manager never saw it fail.
        # What the operator can fix (a secret not exported, a port in use) is one clear line; a
        # traceback is for our own bugs.
        operator_fault = isinstance(exc.__cause__ if isinstance(exc, StartError) else exc, (ConfigError, OSError))
        if operator_fault or (isinstance(exc, StartError) and exc.__cause__ is None):
            log.error("daemon_start_failed", error=str(exc))
        else:
            log.exception("daemon_start_failed", error=str(exc))
        await daemon.stop()
        return 1
    tune_garbage_collector()
    await stop.wait()
    log.info("daemon_stopping")
    await daemon.stop()
    return 0


def tune_garbage_collector() -> None:
    """For long-lived daemon processes only, once started. Two things:

    Exempt what start-up built (modules, connectors, config: ~120,000 objects) from the
    collector's full passes, which otherwise scan it all and stall the event loop and every
    acknowledgement with it: 110-190 ms a pass under bench/webchat.py, ~20 ms frozen. Collected
    first, so no garbage is frozen with it.

    Collect the youngest generation every 10,000 net allocations instead of 700: at 700 the
    collector ran ~1,700 times during bench/webhooks.py's 20,000 webhooks for ~1.1 s in all, on
    the event loop's GIL; at 10,000, ~150 times for ~0.05 s (docs/decisions.md). Nearly every
    object here is freed by its reference count; cycles only wait a little longer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNGEST_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    log.info("startup_heap_frozen", objects=gc.get_freeze_count(), gc_thresholds=list(gc.get_threshold()))
