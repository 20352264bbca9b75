"""Outbound rules for the Bot API, pure: how long a message may be, and what each Bot API
error means for the outbox (retry later, or give up with a reason the agent can read)."""

from __future__ import annotations

from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from connectors.telegram.poller import retry_after_seconds
from ingest.records import DeliveryResult

# sendMessage takes 4096 characters (UTF-16 code units); a little margin for surrogate pairs.
TEXT_LIMIT = 4000


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Consecutive pieces of at most `limit` characters, cut at a line break or space when one
    is near the end of the piece."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = max(rest.rfind("\n", 0, limit), rest.rfind(" ", 0, limit))
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [*pieces, rest] if rest or not pieces else pieces


def failure_result(exc: TelegramError) -> DeliveryResult:
    # BadRequest is a NetworkError subclass in PTB: the order of these checks matters.
    if isinstance(exc, RetryAfter):
        seconds = retry_after_seconds(exc)
        return DeliveryResult(ok=False, retry_after=seconds, detail=f"flood control: retry after {seconds:g} s")
    if isinstance(exc, Forbidden):
        return DeliveryResult(ok=False, permanent=True,
                              detail=f"the user blocked the bot or never started it ({exc.message})")
    if isinstance(exc, ChatMigrated):
        return DeliveryResult(ok=False, permanent=True,
                              detail=f"the group became a supergroup with chat id {exc.new_chat_id}")
    if isinstance(exc, BadRequest):
        return DeliveryResult(ok=False, permanent=True, detail=f"rejected by the Bot API: {exc.message}")
    if isinstance(exc, InvalidToken):
        # The operator's mistake, not the message's: keep it until the token is fixed.
        return DeliveryResult(ok=False, detail=f"the bot token was rejected: {exc.message}")
    if isinstance(exc, NetworkError):
        return DeliveryResult(ok=False, detail=f"network error: {exc.message}")
    return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc.message}")
