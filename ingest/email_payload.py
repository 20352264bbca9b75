"""Email as a channel payload: the dedupe key both email connectors use (so one mail arriving
by SMTP and IMAP, or to two of our mailboxes, is stored once) and the normaliser entry point."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from email.parser import BytesHeaderParser
from email.policy import compat32

from ingest.mime import parse_email
from ingest.mime_split import parse_headers_fast
from ingest.records import Identity, InboundMessage, RawPayload
from router.identity import normalize_email

EMAIL_CHANNEL = "email"
MIME_FORMAT = "mime"


def email_dedupe_key(raw: bytes) -> str:
    """The Message-ID when the mail has one, else a digest of its bytes."""
    # Only the header block: the parser would otherwise read the whole body line by line.
    crlf = raw.find(b"\r\n\r\n")
    end = min((i for i in (crlf, raw.find(b"\n\n", 0, crlf if crlf >= 0 else len(raw))) if i >= 0), default=len(raw))
    try:
        block = raw[: end + 2]
        headers = parse_headers_fast(block) or BytesHeaderParser(policy=compat32).parsebytes(block)
        mid = str(headers.get("Message-ID", "") or "").strip()
    except Exception:  # malformed headers: fall back to the content digest
        mid = ""
    mid = mid.strip("<> \t\r\n")
    if mid and len(mid) <= 900 and "\n" not in mid:
        return f"mid:{mid}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def normalise_mime(payload: RawPayload) -> InboundMessage:
    # Every attachment's bytes: whether one is kept is `[claims] max_attachment_bytes`'s to say,
    # when the files are stored (ingest.service.store_files), as for every channel. The parser's
    # own default cut mail at 25 MiB whatever that setting was.
    return with_envelope(parse_email(payload.body, max_attachment_bytes=sys.maxsize), payload.meta)


def with_envelope(msg: InboundMessage, meta: dict[str, str]) -> InboundMessage:
    """What the SMTP envelope (`mail_from` in the listener's meta; IMAP mail carries it as the
    Return-Path header its server wrote) adds to the mail's own headers. Our listener is the
    final delivery, where an MTA would write Return-Path: a null reverse-path `<>` is a machine's
    notification (RFC 5321 §4.5.5), never a person to answer or a claim to open; and when the
    headers give no readable sender, the envelope's is who sent it."""
    if "mail_from" not in meta:
        return msg
    envelope_sender = meta["mail_from"].strip().strip("<>")
    if not envelope_sender:
        return msg if msg.is_automatic else replace(msg, auto_reason="null-return-path")
    if not msg.sender.value and (address := normalize_email(envelope_sender)):
        return replace(msg, sender=Identity("email", address, msg.sender.display_name))
    return msg
