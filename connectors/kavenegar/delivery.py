"""Kavenegar's delivery reports, pure. Kavenegar numbers its message ids per account, so the id
we record for a message is qualified by the connector instance (`kv2:8792343`), as Telegram's
update ids are by the bot: two `[[kavenegar]]` accounts may hand out the same number.

A report (the delivery callback's `messageid` and `status`, or an entry of `sms/status.json`)
carries a numeric status; it is recorded in the words Twilio's MessageStatus uses, so the
timeline's stage order (a late "queued" after "delivered" says nothing) holds for both gateways.
"""

from __future__ import annotations

# Kavenegar status code -> (our status word, what Kavenegar means by it)
STATUSES: dict[int, tuple[str, str]] = {
    1: ("queued", "in Kavenegar's send queue"),
    2: ("scheduled", "scheduled"),
    4: ("sending", "sent to the telecom centre"),
    5: ("sent", "sent to the operator"),
    6: ("failed", "failed"),
    10: ("delivered", "delivered to the recipient"),
    11: ("undelivered", "not delivered to the recipient"),
    13: ("canceled", "cancelled"),
    14: ("failed", "blocked: the recipient refuses advertising SMS or the operator filtered it"),
}
# status.json's answer for a message id that is not the account's: no news about any message.
UNKNOWN_ID = 100


def message_key(instance: str, message_id: str) -> str:
    """The id a Kavenegar message is known by here (dedupe key, outbound channel message id)."""
    return f"{instance}:{message_id}"


def own_message_id(instance: str, key: str) -> str | None:
    """Kavenegar's own id in a `message_key` of this instance's, else None."""
    prefix = message_key(instance, "")
    return key.removeprefix(prefix) if key.startswith(prefix) else None


def report(code: int) -> tuple[str, str] | None:
    """(status, detail) for the timeline, or None when the code says nothing about a message."""
    if code == UNKNOWN_ID:
        return None
    status, meaning = STATUSES.get(code, (f"kavenegar-{code}", "a status Kavenegar did not document"))
    return status, f"Kavenegar {code}: {meaning}"


def is_final(code: int) -> bool:
    """Whether no later report can follow (polling stops asking about the message)."""
    return code in (6, 10, 11, 13, 14)
