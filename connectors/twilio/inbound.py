"""Twilio Messaging webhooks (SMS and WhatsApp) as records. Pure: the stored form bytes in,
an InboundMessage out."""

from __future__ import annotations

import mimetypes
import re

from multidict import MultiDict

from connectors.forms import parse_form
from ingest.records import AttachmentData, Identity, InboundMessage, RawPayload
from router.identity import normalize_phone

MESSAGE_FORMAT = "twilio-message"
WHATSAPP_PREFIX = "whatsapp:"
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_MEDIA = 10  # Twilio forwards at most ten media items a message


def message_channel(address: str) -> str:
    """ "whatsapp" for `whatsapp:+98…` addresses, "sms" otherwise."""
    return "whatsapp" if address.strip().lower().startswith(WHATSAPP_PREFIX) else "sms"


def phone_value(address: str) -> str:
    """E.164 for a phone address (`whatsapp:` prefix dropped); a short code or alphanumeric
    sender id is kept as sent, so the message is still stored and answerable by hand."""
    bare = address.strip().removeprefix(WHATSAPP_PREFIX)
    # Twilio already sends E.164: skip phonenumbers' parse (~0.1 ms, the normaliser's main cost).
    if _E164.fullmatch(bare):
        return bare
    return normalize_phone(address) or bare


def _media(form: MultiDict[str], count: int) -> tuple[AttachmentData, ...]:
    found = []
    for index in range(count):
        url = form.get(f"MediaUrl{index}", "")
        if not url:
            continue
        content_type = form.get(f"MediaContentType{index}", "") or "application/octet-stream"
        extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        found.append(AttachmentData(filename=f"media{index}{extension}", content_type=content_type, remote_ref=url))
    return tuple(found)


def normalise_twilio_message(payload: RawPayload) -> InboundMessage:
    form = parse_form(payload.body)
    sender = form["From"]
    phone = phone_value(sender)
    recipient = phone_value(form.get("To", ""))
    try:
        media_count = int(form.get("NumMedia", "0") or 0)
    except ValueError:
        media_count = 0
    return InboundMessage(
        channel=message_channel(sender),
        channel_message_id=form["MessageSid"],
        sender=Identity("phone", phone, form.get("ProfileName", "")),
        recipients=(Identity("phone", recipient),) if recipient else (),
        conversation_key=f"tel:{phone}",
        text=form.get("Body", ""),
        attachments=_media(form, min(media_count, MAX_MEDIA)),
    )
