"""Outbound rules for the Bot API, pure: how long a message may be, and what each Bot API
error means for the outbox (retry later, or give up with a reason the agent can read)."""

from __future__ import annotations

from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from connectors.sms_segments import split_text as split_fitting
from connectors.telegram.poller import retry_after_seconds
from ingest.records import DeliveryResult

# sendMessage refuses a text over 4096 UTF-16 code units ("message is too long"): an emoji
# outside the BMP counts two, so counting characters (code points) is not enough.
TEXT_LIMIT = 4096


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str) -> list[str]:
    """Consecutive pieces sendMessage accepts, cut at whitespace when there is some in the
    second half of a piece, else between grapheme clusters (never inside a flag or an emoji
    sequence, nor between a letter and its mark)."""
    return split_fitting(text, lambda piece: utf16_units(piece) <= TEXT_LIMIT)


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
