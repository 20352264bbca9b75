"""The connector contract: what every channel implements, and nothing more.

A connector speaks one protocol. Inbound, it hands each message's raw payload to the sink
(`ingest.accept`) and acknowledges the channel only once that call returned. Outbound, it
sends what the outbox gives it. It knows nothing about tickets.
"""

from __future__ import annotations

import asyncio

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from config.loader import ConfigError, secret_from_env
from ingest.records import AcceptOutcome, BotLink, DeliveryResult, InboundMessage, OutboundMessage, RawPayload


class StoreUnavailable(Exception):
    """The durable store cannot take the message now; the channel must not be acknowledged."""


class Sink(Protocol):
    async def accept(self, payload: RawPayload) -> AcceptOutcome:
        """Store the payload durably; returns only after commit. Raises StoreUnavailable."""
        ...


Normaliser = Callable[[RawPayload], InboundMessage]


class ConnectorSettings(BaseModel):
    """Base for each connector's own settings schema (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def listens_on(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of each socket this instance listens on itself (not a server it calls,
        nor routes on the shared [http] front): check-config refuses two listeners on one address,
        which otherwise stopped the daemon at start."""
        return ()

    def channels(self, sends: frozenset[str]) -> frozenset[str]:
        """Which of its class's `sends` channels this instance answers on: all, unless the table
        picks one with a `channel` key (a [telegram] table with channel = "bale")."""
        channel = getattr(self, "channel", None)
        return frozenset({channel}) if isinstance(channel, str) and channel in sends else sends


def required_secret(section: str, env: str, expected: str) -> str:
    """The secret in the environment variable a `*_env` key names, for `start()`: missing, a
    ConfigError naming the section, the variable and what it should hold (`serve` prints that one
    line and exits 1)."""
    value = secret_from_env(env)
    if not value:
        raise ConfigError(f"[{section}]: environment variable {env} is not set; expected {expected}")
    return value


DeliveryStatusCallback = Callable[[str, str, str, str], Awaitable[bool]]
HistoryProvider = Callable[[str, int], Awaitable[list[dict[str, Any]]]]
# (connector name, max age in seconds) -> {channel message id: seconds since sent}
AwaitingDelivery = Callable[[str, float], Awaitable[dict[str, float]]]


@dataclass
class ConnectorContext:
    """What the daemon lends a connector, and nothing more: the shared HTTP front (an aiohttp
    application to mount routes on), the core settings, a callback to record a channel's
    delivery status (channel, channel message id, status, detail) on the thread, and a read of
    a conversation's recent messages (conversation key, limit) for channels that show history."""

    http_app: Any = None
    settings: Any = None
    on_delivery_status: DeliveryStatusCallback | None = None
    history: HistoryProvider | None = None
    # inbox id -> the claim reference of the ticket it was threaded on (None until processed)
    ticket_for_inbox: Callable[[int], Awaitable[str | None]] | None = None
    # A bot that customers can now be sent to with a deep link (its username became known).
    on_bot_link: Callable[[BotLink], None] | None = None
    # What this connector sent that no delivery report has called final yet (a gateway polled
    # for delivery status takes up its polling after a restart).
    awaiting_delivery: AwaitingDelivery | None = None


class Connector(ABC):
    """One configured instance of a channel connector."""

    kind: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]]
    # Channels this connector can answer on (e.g. {"email"}); empty when it only receives.
    sends: ClassVar[frozenset[str]] = frozenset()
    # Payload formats this connector produces, with the pure function that normalises each.
    normalisers: ClassVar[dict[str, Normaliser]] = {}

    def __init__(self, name: str, settings: ConnectorSettings, context: ConnectorContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        # This instance's channels: a `channel` key picks one of the class's (what check-config
        # judges by, ConnectorSettings.channels), so replies on the others never choose it.
        channels = getattr(settings, "channels", None)
        if callable(channels):
            self.sends = channels(type(self).sends)

    @abstractmethod
    async def start(self, sink: Sink) -> None:
        """Begin receiving; returns once the connector is listening/polling."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving; in-flight messages are either committed or not acknowledged."""

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        """Tasks meant to run as long as the connector does (a poller): /healthz names one that
        has ended — an IMAP account that gave up on its configuration receives nothing more."""
        return []

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        return DeliveryResult(ok=False, permanent=True, detail=f"connector {self.kind} cannot send")

    async def fetch_attachment(self, remote_ref: str) -> bytes | None:
        """The bytes of an attachment the channel keeps (Telegram file id...), or None when this
        connector does not download: the attachment then stays a link."""
        return None
