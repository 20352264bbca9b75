"""Telegram and Bale bots through the Bot API (python-telegram-bot's `Bot` as the client).

One instance is one bot: `[telegram]`, or several `[[telegram]]` tables with a `name`. Bale (بله)
is the same connector with `channel = "bale"` and Bale's Bot API URLs; its messages are shown,
and answered, as channel "bale".

Inbound, by long polling (the default: works behind NAT, no public HTTPS needed; see
`poller.py` for why we poll ourselves instead of PTB's `Application.run_polling`) or by webhook
(`POST /webhooks/telegram/<instance name>`, secret checked). Either way an update is
acknowledged to the Bot API only after it was committed.

Outbound, replies go to the recipient the core picked: the sender's user id of the customer's
latest message. In a private chat (every customer conversation with a bot) the chat id is the
user id, so `sendMessage(chat_id=<user id>)` lands in that chat.

Files: updates record Bot API file ids as attachments; `fetch_file(file_id)` downloads one
(`getFile` then the file URL) when `download_files` is on.

Deep links: once getMe has given the bot's username, the connector tells the daemon where its
links lead (`t.me/<bot>?start=`, Bale's `ble.ir/<bot>?start=`); the core signs what follows.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from config.loader import ConfigError, secret_from_env
from connectors.base import Connector, ConnectorContext, Sink
from connectors.telegram.delivery import failure_result, split_text
from connectors.telegram.normalise import UPDATE_FORMAT, normalise_update, update_payload
from connectors.telegram.poller import Backoff, UpdatePoller
from connectors.telegram.settings import DEEP_LINK_BASES, TelegramSettings
from connectors.telegram.webhook import webhook_handler, webhook_path
from ingest.records import BotLink, DeliveryResult, OutboundMessage, RawPayload
from router.deeplink import bot_scope

log = structlog.get_logger(__name__)

# What the Bot API accepts as a webhook secret_token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
T = TypeVar("T")


class TelegramConnector(Connector):
    kind = "telegram"
    Settings = TelegramSettings
    # Each instance answers on its own channel only (narrowed in __init__).
    sends = frozenset({"telegram", "bale"})
    normalisers = {UPDATE_FORMAT: normalise_update}

    def __init__(self, name: str, settings: TelegramSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        self.sends = frozenset({settings.channel})
        self.bot: Bot | None = None
        self.bot_id = ""
        self.log = log.bind(connector=name, channel=settings.channel)
        self._requests: tuple[HTTPXRequest, ...] = ()
        self._poller: UpdatePoller | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._polling: asyncio.Task[None] | None = None

    @property
    def conf(self) -> TelegramSettings:
        return self.settings  # type: ignore[return-value]

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, sink: Sink) -> None:
        conf = self.conf
        token = secret_from_env(conf.token_env)
        bot_id, colon, _ = token.partition(":")
        if not (colon and bot_id.isdigit()):
            raise ConfigError(
                f"telegram[{self.name}].token_env: the environment variable {conf.token_env} must hold the bot "
                f"token, <bot id>:<secret> as @BotFather (or Bale's BotFather) gives it; "
                f"{'it is not set' if not token else 'its value is not in that form'}"
            )
        self.bot_id = bot_id
        timeout = conf.request_timeout_seconds
        # Two connections: a long poll cancelled at stop keeps its slot for a while, and the
        # confirming getUpdates that follows needs one of its own.
        updates_request = HTTPXRequest(connection_pool_size=2, read_timeout=timeout, connect_timeout=timeout)
        request = HTTPXRequest(read_timeout=timeout, connect_timeout=timeout, write_timeout=timeout)
        self._requests = (updates_request, request)
        await asyncio.gather(*(r.initialize() for r in self._requests))
        self.bot = Bot(token, base_url=conf.base_url, base_file_url=conf.base_file_url,
                       request=request, get_updates_request=updates_request)
        backoff = Backoff(conf.retry_initial_seconds, conf.retry_max_seconds)
        context = {"connector": self.name, "channel": conf.channel}
        if conf.mode == "polling":
            self._poller = UpdatePoller(self.bot, sink, self._payload, timeout=conf.poll_timeout_seconds,
                                        backoff=backoff, log_context=context)
            self._spawn(self._poller.run(), "poll")
            self._polling = self._tasks[-1]
        else:
            secret = self._webhook_secret()
            self.context.http_app.router.add_post(
                webhook_path(self.name), webhook_handler(sink, secret, self._payload, context))
            self._spawn(self._register_webhook(secret, backoff), "set-webhook")
        if self.context.on_bot_link is not None:
            self._spawn(self._announce_link(Backoff(conf.retry_initial_seconds, conf.retry_max_seconds)), "get-me")
        self.log.info("telegram_started", mode=conf.mode, base_url=conf.base_url, bot_id=bot_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._polling = None
        if self._poller is not None:
            await self._poller.confirm()
        await asyncio.gather(*(r.shutdown() for r in self._requests))
        # Stopped once and for all: a second stop() (the daemon's, after a test's) has nothing to
        # confirm, and the closed HTTP clients could not.
        self._poller, self._requests = None, ()

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._polling]  # the webhook's registration is one-off: its end is no news

    def _spawn(self, coro: object, what: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"telegram-{self.name}-{what}"))  # type: ignore[arg-type]

    def _payload(self, body: bytes, update_id: int) -> RawPayload:
        return update_payload(body, update_id, channel=self.conf.channel, connector=self.name,
                              bot_id=self.bot_id, received_at=datetime.now(UTC))

    # -- webhook mode -----------------------------------------------------------------------------

    def _webhook_secret(self) -> str:
        env = self.conf.webhook_secret_env
        secret = secret_from_env(env)
        if not _WEBHOOK_SECRET.fullmatch(secret):
            raise ConfigError(
                f"telegram[{self.name}].webhook_secret_env: the environment variable {env} must hold 1-256 "
                f"characters A-Z, a-z, 0-9, _ or - (what the Bot API accepts as secret_token); "
                f"{'it is not set' if not secret else 'its value has other characters'}"
            )
        return secret

    async def _register_webhook(self, secret: str, backoff: Backoff) -> None:
        """Point the bot at our webhook when we know our public URL; otherwise the operator
        registers it (README). Retried until the Bot API answers."""
        public = (self.context.settings.http.public_base_url if self.context.settings else "").rstrip("/")
        if not public:
            self.log.info("telegram_webhook_not_registered", reason="http.public_base_url is empty",
                          path=webhook_path(self.name))
            return
        url = f"{public}{webhook_path(self.name)}"
        assert self.bot is not None
        bot = self.bot
        await self._until_answered(lambda: bot.set_webhook(url=url, secret_token=secret), backoff,
                                   "telegram_set_webhook_failed")
        self.log.info("telegram_webhook_registered", url=url)

    # -- deep links -------------------------------------------------------------------------------

    async def _announce_link(self, backoff: Backoff) -> None:
        """Tell the daemon where this bot's deep links lead once getMe gave its username (retried
        until the Bot API answers: a bot unreachable at start still gets its links later)."""
        assert self.bot is not None and self.context.on_bot_link is not None
        me = await self._until_answered(self.bot.get_me, backoff, "telegram_get_me_failed")
        if not me.username:
            self.log.warning("telegram_no_deep_links", reason="the bot has no username")
            return
        channel = self.conf.channel
        url = f"{DEEP_LINK_BASES[channel]}{me.username}?start="
        self.context.on_bot_link(BotLink(self.name, channel, bot_scope(channel, self.bot_id), url))
        self.log.info("telegram_deep_links", url=url)

    async def _until_answered(self, call: Callable[[], Awaitable[T]], backoff: Backoff, failed: str) -> T:
        while True:
            try:
                return await call()
            except TelegramError as exc:
                delay = backoff.next()
                self.log.warning(failed, error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    # -- outbound ---------------------------------------------------------------------------------

    async def send(self, outbound: OutboundMessage) -> DeliveryResult:
        if self.bot is None:
            return DeliveryResult(ok=False, detail=f"telegram connector {self.name} is not running")
        first = None
        try:
            # A reply longer than one Bot API message goes as several. If a later piece fails,
            # the retry resends the earlier ones too: at-least-once, like the rest of the outbox.
            for piece in split_text(outbound.text):
                sent = await self.bot.send_message(chat_id=outbound.recipient, text=piece)
                first = first or sent
        except TelegramError as exc:
            result = failure_result(exc)
            self.log.warning("telegram_send_failed", outbox_id=outbound.outbox_id, ticket=outbound.ticket_ref,
                             detail=result.detail, permanent=result.permanent, retry_after=result.retry_after)
            return result
        assert first is not None
        return DeliveryResult(ok=True, channel_message_id=f"{first.chat_id}:{first.message_id}")

    # -- files ------------------------------------------------------------------------------------

    async def fetch_attachment(self, remote_ref: str) -> bytes | None:
        return await self.fetch_file(remote_ref) if self.conf.download_files else None

    async def fetch_file(self, file_id: str) -> bytes:
        """The bytes of a file a customer sent (a Bot API file id from an attachment's
        remote_ref). Raises TelegramError when the Bot API refuses (bots may download files up
        to 20 MB), PermissionError when this instance has download_files = false."""
        if not self.conf.download_files:
            raise PermissionError(f"telegram instance {self.name} has download_files = false")
        if self.bot is None:
            raise RuntimeError(f"telegram connector {self.name} is not running")
        remote = await self.bot.get_file(file_id)
        return bytes(await remote.download_as_bytearray())
