"""Normalisers for the two payload formats this connector stores (pure functions)."""

from __future__ import annotations

import base64
import json

from ingest.records import AttachmentData, Identity, InboundMessage, RawPayload

CHAT_CHANNEL = "webchat"
FORM_CHANNEL = "webform"
CHAT_FORMAT = "webchat-message"
FORM_FORMAT = "webform-submission"
FORM_SUBJECTS = {"auto": "Web form: auto claim", "health": "Web form: health claim"}


def conversation_key(session: str) -> str:
    return f"{CHAT_CHANNEL}:{session}"


def chat_body(session: str, client_id: str, text: str, name: str, lang: str) -> bytes:
    doc = {"session": session, "client_id": client_id, "text": text, "name": name, "lang": lang}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def normalise_chat_message(payload: RawPayload) -> InboundMessage:
    doc = json.loads(payload.body)
    session = doc["session"]
    return InboundMessage(
        channel=CHAT_CHANNEL,
        channel_message_id=doc["client_id"],
        sender=Identity("webchat", session, doc.get("name", "")),
        text=doc["text"],
        conversation_key=conversation_key(session),
        sent_at=payload.received_at,
        meta=(("lang", doc.get("lang", "")),),
    )


def normalise_form_submission(payload: RawPayload) -> InboundMessage:
    doc = json.loads(payload.body)
    name = doc["name"]
    identities = [Identity(kind, doc[kind], name) for kind in ("phone", "email") if doc.get(kind)]
    claim_type = doc["claim_type"]
    lines = [
        f"Name: {name}",
        f"Phone: {doc['phone'] or '-'}",
        f"Email: {doc['email'] or '-'}",
        f"Policy number: {doc['policy_number'] or '-'}",
        f"Claim type: {claim_type}",
        "",
        doc["description"],
    ]
    attachments = tuple(
        AttachmentData(a["filename"], a["content_type"], data=(data := base64.b64decode(a["data"])), size=len(data))
        for a in doc["attachments"]
    )
    return InboundMessage(
        channel=FORM_CHANNEL,
        channel_message_id=doc["token"],
        kind="form",
        sender=identities[0],
        extra_identities=tuple(identities[1:]),
        subject=FORM_SUBJECTS.get(claim_type, "Web form"),
        text="\n".join(lines),
        attachments=attachments,
        sent_at=payload.received_at,
        meta=(("policy_number", doc["policy_number"]), ("claim_type", claim_type)),
    )
