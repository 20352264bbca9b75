"""Long polling `getUpdates` with the offset advanced only after commit.

Telegram keeps every update until a later `getUpdates` asks for an offset past it; that request
is the acknowledgement. We therefore run our own loop instead of PTB's `Updater` /
`Application.run_polling`: the Updater moves its offset as soon as a batch is fetched and
hands updates to handlers through a queue, so an update could be confirmed to Telegram before
our store committed it, and lost in a crash. Here each update goes through `sink.accept()`
(which returns after commit) before the offset moves past it; when the store is unavailable the
loop backs off and asks for the same offset again, so Telegram redelivers. Redeliveries (after
a crash between commit and the next `getUpdates`) are dropped by the store's dedupe key.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable
from datetime import timedelta

import structlog
from telegram import Bot
from telegram.error import RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from connectors.base import Sink, StoreUnavailable
from ingest.records import RawPayload

log = structlog.get_logger(__name__)

# (update id, the update's JSON) in the order Telegram sent them.
Batch = list[tuple[int, bytes]]
PayloadFactory = Callable[[bytes, int], RawPayload]


class Backoff:
    """Exponential delays: initial, doubled after each failure, capped; reset on success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 gives int seconds with a deprecation note; a later major gives a timedelta.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class UpdatePoller:
    def __init__(self, bot: Bot, sink: Sink, make_payload: PayloadFactory, *, timeout: int,
                 backoff: Backoff, log_context: dict[str, str] | None = None) -> None:
        self.bot = bot
        self.sink = sink
        self.make_payload = make_payload
        self.timeout = timeout
        self.backoff = backoff
        self.log = log.bind(**(log_context or {}))
        # None until the first commit: Telegram then starts from its oldest unconfirmed update.
        self.next_offset: int | None = None

    async def run(self) -> None:
        await self._prepare()
        while True:
            try:
                batch = await self._fetch()
            except RetryAfter as exc:
                delay = retry_after_seconds(exc)
                self.log.warning("telegram_poll_flood_wait", retry_after=delay)
                await asyncio.sleep(delay)
                continue
            except Exception as exc:  # network, proxy, token or server trouble: keep polling
                await self._pause("telegram_poll_failed", exc)
                continue
            self.backoff.reset()
            await self._accept(batch)

    async def _prepare(self) -> None:
        """Check the token (getMe) and remove any webhook, which would make getUpdates fail."""
        while True:
            try:
                await self.bot.initialize()
                await self.bot.delete_webhook(drop_pending_updates=False)
            except Exception as exc:
                await self._pause("telegram_start_failed", exc)
                continue
            self.backoff.reset()
            self.log.info("telegram_polling", bot=self.bot.username, offset=self.next_offset)
            return

    async def _fetch(self) -> Batch:
        try:
            updates = await self.bot.get_updates(offset=self.next_offset, timeout=self.timeout)
        except TelegramError:
            raise
        except Exception as exc:
            # PTB could not parse the batch (a Bale variant, a field of an unexpected type). Take
            # it raw instead: stored as received, it is quarantined by the normaliser rather than
            # blocking this offset, and everything after it, forever.
            self.log.error("telegram_updates_unparsed", error=f"{type(exc).__name__}: {exc}")
            raw = await self.bot.do_api_request(
                "getUpdates", api_kwargs={"offset": self.next_offset, "timeout": 0})
            return [(item["update_id"], json.dumps(item, ensure_ascii=False).encode()) for item in raw]
        return [(update.update_id, update.to_json().encode()) for update in updates]

    async def _accept(self, batch: Batch) -> None:
        for update_id, body in batch:
            try:
                outcome = await self.sink.accept(self.make_payload(body, update_id))
            except Exception as exc:  # StoreUnavailable; anything else is a bug, equally not stored
                # Not confirmed: the next getUpdates asks for the same offset and gets it again.
                event = "telegram_store_unavailable" if isinstance(exc, StoreUnavailable) else "telegram_accept_failed"
                await self._pause(event, exc, update_id=update_id)
                return
            self.log.debug("telegram_update_committed", update_id=update_id, duplicate=outcome.duplicate)
            self.next_offset = update_id + 1

    async def confirm(self) -> None:
        """Tell the Bot API that everything committed so far is done (as PTB's Updater does on
        stop), so a restart does not fetch it again. Best effort: redeliveries are harmless."""
        if self.next_offset is None:
            return
        try:
            await self.bot.get_updates(offset=self.next_offset, timeout=0, limit=1)
        except Exception as exc:
            self.log.warning("telegram_confirm_failed", offset=self.next_offset, error=str(exc))

    async def _pause(self, event: str, exc: BaseException, **fields: object) -> None:
        delay = self.backoff.next()
        self.log.warning(event, error=f"{type(exc).__name__}: {exc}", retry_in=delay,
                         offset=self.next_offset, **fields)
        await asyncio.sleep(delay)

