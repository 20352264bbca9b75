"""Email as a channel payload: the dedupe key both email connectors use (so one mail arriving
by SMTP and IMAP, or to two of our mailboxes, is stored once) and the normaliser entry point."""

from __future__ import annotations

import hashlib
from email.parser import BytesHeaderParser
from email.policy import compat32

from ingest.mime import parse_email
from ingest.mime_split import parse_headers_fast
from ingest.records import InboundMessage, RawPayload

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
    return parse_email(payload.body)
