"""Kavenegar's received-SMS callback as a record. Pure: the stored form bytes in, an
InboundMessage out."""

from __future__ import annotations

from connectors.forms import parse_form
from ingest.records import Identity, InboundMessage, RawPayload
from router.identity import normalize_phone

MESSAGE_FORMAT = "kavenegar-sms"


def normalise_kavenegar_sms(payload: RawPayload) -> InboundMessage:
    form = parse_form(payload.body)
    sender = form["from"].strip()
    # 09121234567 as Kavenegar sends it; E.164 so the customer is the one who wrote by Twilio,
    # mail or Telegram with that number. A short code stays as sent.
    phone = normalize_phone(sender) or sender
    line = form.get("to", "").strip()
    return InboundMessage(
        channel="sms",
        channel_message_id=form["messageid"].strip(),
        sender=Identity("phone", phone),
        recipients=(Identity("phone", line),) if line else (),
        conversation_key=f"tel:{phone}",  # Twilio's too: one SMS conversation, whichever gateway
        text=form.get("message", ""),
    )
