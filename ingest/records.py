"""Records that cross package boundaries: what a connector hands in, what the core stores,
and what leaves through the outbox. Frozen dataclasses; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Direction = Literal["in", "out"]
MessageKind = Literal["message", "call", "note", "form"]


@dataclass(frozen=True, slots=True)
class RawPayload:
    """Exactly what a channel delivered, before any parsing.

    `dedupe_key` is the channel's own id for the message (email Message-ID, Twilio MessageSid,
    Telegram update id...): a second payload with the same key is a redelivery and is not stored
    again. `fmt` names the normaliser that will turn `body` into an `InboundMessage` later.
    """

    channel: str
    connector: str
    dedupe_key: str
    fmt: str
    body: bytes
    received_at: datetime
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AcceptOutcome:
    inbox_id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Identity:
    """One way to reach a contact. `kind` is email | phone | telegram | bale | webchat | national_id.
    `value` is already normalised (lower-cased email, E.164 phone...)."""

    kind: str
    value: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class AttachmentData:
    """An attachment as found in the message. Either `data` holds the bytes, or `remote_ref`
    says where the channel keeps them (Twilio media URL, Telegram file id) to fetch later."""

    filename: str
    content_type: str
    data: bytes | None = None
    remote_ref: str = ""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class SignedRef:
    """A claim reference that came with a signature (a bot deep link, router/deeplink.py): the
    core checks `signature` against its key for `scope`, the bot it was handed in to."""

    ref: str
    scope: str
    signature: str


@dataclass(frozen=True, slots=True)
class BotLink:
    """A bot customers can be sent to with a deep link: `url` + start parameter. `scope` names
    the bot (router.deeplink.bot_scope) as its updates' `SignedRef`s do."""

    connector: str
    channel: str
    scope: str
    url: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A normalised inbound message, whatever channel it came from."""

    channel: str
    channel_message_id: str
    sender: Identity
    text: str
    conversation_key: str = ""
    kind: MessageKind = "message"
    recipients: tuple[Identity, ...] = ()
    subject: str = ""
    html: str = ""
    display_text: str = ""
    attachments: tuple[AttachmentData, ...] = ()
    sent_at: datetime | None = None
    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    auto_reason: str = ""
    extra_identities: tuple[Identity, ...] = ()
    # What the channel vouches the sender holds (Telegram: their own number, shared with its
    # button): a contact already holding one is the same person, and is merged with the sender's.
    proven_identities: tuple[Identity, ...] = ()
    claim_ref_hint: str = ""
    # The hint came signed by us: its sender is vouched for as one of the claim contact's own.
    signed_ref: SignedRef | None = None
    opens_ticket: bool = True
    meta: tuple[tuple[str, str], ...] = ()

    @property
    def is_automatic(self) -> bool:
        """Auto-replies, bounces and loops: threaded, but never answered and never a new ticket."""
        return bool(self.auto_reason)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A reply or notification leaving through a connector, as read back from the outbox."""

    outbox_id: int
    ticket_ref: str
    channel: str
    connector: str
    recipient: str
    text: str
    subject: str = ""
    html: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    message_id: str = ""
    automatic: bool = False
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a connector reports after trying to send. `retry_after` (seconds) asks the outbox to
    try again later; `permanent` failures are not retried. `part_ids`: when the message left in
    several parts, every id the channel gave them, in order (the first is `channel_message_id`):
    a delivery report on any part finds the message."""

    ok: bool
    channel_message_id: str = ""
    detail: str = ""
    permanent: bool = False
    retry_after: float | None = None
    part_ids: tuple[str, ...] = ()

    @property
    def message_ids(self) -> tuple[str, ...]:
        """Every id the message is known by at the channel, first part first."""
        return self.part_ids or ((self.channel_message_id,) if self.channel_message_id else ())
