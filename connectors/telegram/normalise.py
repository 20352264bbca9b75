"""Bot API updates, as stored raw, into `InboundMessage`s: pure functions, no I/O.

One normaliser serves Telegram and Bale: the payload's channel says which it was. What a person
says (text, caption, a shared contact or location, a button pressed) becomes the text; photos,
documents, voice notes, audio and video are recorded as attachments by Bot API file id (fetched
later through the Bot API, see `TelegramConnector.fetch_file`). Updates with nothing a person
said (a bot added to a group, a user blocking the bot) are kept but never open a ticket.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from telegram import CallbackQuery, Chat, Message, Update, User

from ingest.mime import sanitize_filename
from ingest.records import AttachmentData, Identity, InboundMessage, RawPayload, SignedRef
from router.claimref import parse_claim_ref
from router.deeplink import bot_scope, split_start_parameter
from router.identity import normalize_phone

UPDATE_FORMAT = "telegram-update"

# `t.me/<bot>?start=PV-1405-000123` arrives as "/start PV-1405-000123" (also "/start@bot ..."),
# our signed links as "/start PV-1405-000123_<signature>" (router/deeplink.py).
_START = re.compile(r"/start(?:@\w+)?\s+(\S+)", re.IGNORECASE)
_REF_PREFIX = re.compile(r"[A-Za-z]{1,6}")

# (attribute, content type when Telegram gives none, file name extension)
_MEDIA = (
    ("document", "application/octet-stream", ""),
    ("voice", "audio/ogg", ".ogg"),
    ("audio", "audio/mpeg", ".mp3"),
    ("video", "video/mp4", ".mp4"),
    ("video_note", "video/mp4", ".mp4"),
)


def update_payload(body: bytes, update_id: int, *, channel: str, connector: str, bot_id: str,
                   received_at: datetime) -> RawPayload:
    """The raw payload for one update. Update ids are per bot, so the bot id is in the key."""
    return RawPayload(
        channel=channel,
        connector=connector,
        dedupe_key=f"{bot_id}:{update_id}",
        fmt=UPDATE_FORMAT,
        body=body,
        received_at=received_at,
        meta={"bot_id": bot_id, "update_id": str(update_id)},
    )


def deep_link(text: str, scope: str) -> tuple[str, SignedRef | None]:
    """The canonical claim reference a `/start` deep link carries ("" when the text is no such
    link), and its signature for the bot `scope` when it carries one.

    The normaliser has no settings, so the prefix is read from the link itself (letters before
    the year); a reference with another firm's prefix then simply finds no ticket."""
    start = _START.match(text.strip())
    if start is None:
        return "", None
    written, signed = split_start_parameter(start[1])
    prefix = _REF_PREFIX.match(written)
    ref = (parse_claim_ref(written, prefix[0]) or "") if prefix else ""
    return ref, SignedRef(ref, scope, signed) if ref and signed else None


def normalise_update(payload: RawPayload) -> InboundMessage:
    update = Update.de_json(json.loads(payload.body), bot=None)
    scope = bot_scope(payload.channel, payload.meta.get("bot_id", ""))
    if update.callback_query is not None:
        return _from_callback(update.callback_query, payload.channel, update.update_id, scope)
    message = update.effective_message
    if message is not None:
        return _from_message(message, payload.channel, scope)
    return _from_status(update, payload.channel)


# -- identities -----------------------------------------------------------------------------------


def _user_identity(channel: str, user: User) -> Identity:
    return Identity(channel, str(user.id), user.full_name or (f"@{user.username}" if user.username else ""))


def _chat_identity(channel: str, chat: Chat) -> Identity:
    return Identity(channel, str(chat.id), chat.effective_name or "")


def _contact_phone(message: Message) -> Identity | None:
    """The shared contact's phone, but only when it is the sender's own (shared with Telegram's
    "share my number" button): a forwarded contact card is someone else and must not merge them.
    Telegram often omits the "+" of the international number it sends."""
    contact = message.contact
    if contact is None or message.from_user is None or contact.user_id != message.from_user.id:
        return None
    raw = contact.phone_number.strip()
    phone = normalize_phone(raw if raw.startswith(("+", "0")) else f"+{raw}")
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    return Identity("phone", phone, name) if phone else None


# -- content --------------------------------------------------------------------------------------


def _attachments(message: Message) -> tuple[AttachmentData, ...]:
    found: list[AttachmentData] = []
    if message.photo:
        best = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        found.append(AttachmentData(f"photo_{best.file_unique_id}.jpg", "image/jpeg",
                                    remote_ref=best.file_id, size=best.file_size))
    for attribute, default_type, extension in _MEDIA:
        media = getattr(message, attribute)
        if media is None:
            continue
        # The sender names the file: cleaned as mail attachment names are (no path, no bidi tricks).
        filename = sanitize_filename(getattr(media, "file_name", None),
                                     f"{attribute}_{media.file_unique_id}{extension}")
        found.append(AttachmentData(filename, getattr(media, "mime_type", None) or default_type,
                                    remote_ref=media.file_id, size=media.file_size))
    return tuple(found)


def _message_text(message: Message) -> str:
    parts = [message.text or message.caption or ""]
    if message.contact is not None:
        name = " ".join(p for p in (message.contact.first_name, message.contact.last_name) if p)
        parts.append(f"📇 {name} {message.contact.phone_number}".strip())
    if message.location is not None:
        parts.append(f"📍 {message.location.latitude},{message.location.longitude}")
    return "\n".join(p for p in parts if p)


def _display(text: str, attachments: tuple[AttachmentData, ...], edited: bool) -> str:
    """What the agent sees: a voice note or a photo alone still says what it is."""
    shown = text or " ".join(f"📎 {a.filename}" for a in attachments)
    return f"(edited) {shown}" if edited else shown


def _from_message(message: Message, channel: str, scope: str) -> InboundMessage:
    chat = message.chat
    sender = (_user_identity(channel, message.from_user) if message.from_user
              else _chat_identity(channel, message.sender_chat or chat))
    text = _message_text(message)
    attachments = _attachments(message)
    edited = message.edit_date is not None
    message_id = f"{chat.id}:{message.message_id}"
    phone = _contact_phone(message)
    ref, signed = deep_link(text, scope)
    return InboundMessage(
        channel=channel,
        # An edit is a new record on the thread, next to the original it corrects.
        channel_message_id=f"{message_id}:edited:{int(message.edit_date.timestamp())}" if edited else message_id,
        sender=sender,
        text=text,
        display_text=_display(text, attachments, edited),
        conversation_key=f"{channel}:{chat.id}",
        attachments=attachments,
        sent_at=message.edit_date if edited else message.date,
        proven_identities=(phone,) if phone else (),
        claim_ref_hint=ref,
        signed_ref=signed,
        opens_ticket=bool(text.strip() or attachments),
        meta=(("chat_type", chat.type), *((("edited", "true"),) if edited else ())),
    )


def _from_callback(query: CallbackQuery, channel: str, update_id: int, scope: str) -> InboundMessage:
    # A button under one of our messages; inline-mode buttons have no chat, the user is the chat.
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    text = query.data or query.game_short_name or ""
    ref, signed = deep_link(text, scope)
    return InboundMessage(
        channel=channel,
        channel_message_id=f"callback:{query.id}",
        sender=_user_identity(channel, query.from_user),
        text=text,
        conversation_key=f"{channel}:{chat_id}",
        claim_ref_hint=ref,
        signed_ref=signed,
        opens_ticket=bool(text.strip()),
        meta=(("update_id", str(update_id)), ("callback", "true")),
    )


def _from_status(update: Update, channel: str) -> InboundMessage:
    """Updates nobody typed (membership changes, polls...). A user blocking the bot is worth
    seeing on their open thread, so a membership change is described; nothing opens a ticket."""
    user, chat = update.effective_user, update.effective_chat
    if user is not None:
        sender = _user_identity(channel, user)
    elif chat is not None:
        sender = _chat_identity(channel, chat)
    else:
        sender = Identity(channel, "unknown")
    change = update.my_chat_member
    text = f"bot membership: {change.old_chat_member.status} → {change.new_chat_member.status}" if change else ""
    return InboundMessage(
        channel=channel,
        channel_message_id=f"update:{update.update_id}",
        sender=sender,
        text=text,
        conversation_key=f"{channel}:{chat.id}" if chat is not None else "",
        opens_ticket=False,
        meta=(("update_id", str(update.update_id)),),
    )
