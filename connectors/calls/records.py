"""Call logs as records. Pure: a Twilio Voice status callback form or a PBX JSON record in, a
`CallRecord` out, then the "call" message an agent sees on the caller's thread.

The generic PBX form (Asterisk/Issabel CDR style), one JSON object per finished call:

    {"call_id": "1715672712.42", "caller": "09121234567", "callee": "02188776655",
     "start": "2024-05-14T14:05:12+03:30", "answer": "2024-05-14T14:05:20+03:30",
     "end": "2024-05-14T14:08:32+03:30", "disposition": "ANSWERED",
     "recording_url": "https://pbx.example/rec/1715672712.42.wav", "agent_extension": "104",
     "direction": "inbound"}

Required: call_id, caller, disposition (ANSWERED | NO ANSWER | BUSY | FAILED | CONGESTION).
Times are ISO 8601; without an offset they are read in the connector's timezone (CDRs are local).
`direction` (inbound | outbound) is optional: without it a call is outgoing when the caller is our
side (an extension, i.e. at most 6 digits, or one of `[calls] own_numbers`) and the callee is an
outside number. The customer is the caller of an incoming call and the callee of an outgoing one;
a call with no outside party (extension to extension) has no customer and is not stored.
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from multidict import MultiDict

from connectors.forms import parse_form
from router.calendar import zone_label
from ingest.records import AttachmentData, Identity, InboundMessage, RawPayload
from router.identity import normalize_phone

Outcome = Literal["answered", "missed"]

# Twilio CallStatus values that end a call, and what each means for the caller.
TWILIO_FINAL = {"completed": "answered", "no-answer": "missed", "busy": "missed", "failed": "missed",
                "canceled": "missed"}
TWILIO_INTERMEDIATE = frozenset({"queued", "initiated", "ringing", "in-progress"})
# PBX dispositions, mapped onto the same vocabulary.
PBX_DISPOSITIONS = {"ANSWERED": "completed", "NO ANSWER": "no-answer", "BUSY": "busy", "FAILED": "failed",
                    "CONGESTION": "failed"}
PBX_DIRECTIONS = ("inbound", "outbound")
# PBX extensions are short (Issabel's are 3-4 digits); outside numbers, even local ones without the
# area code, have 8 digits or more.
_EXTENSION = re.compile(r"[0-9]{1,6}")


class NoCallerNumber(ValueError):
    """No customer number: withheld or unusable, or an internal call. Nobody to call back,
    nothing to match on."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    customer: str  # E.164: the caller, or the callee of an outgoing call
    other_party: str  # our side: number or extension as reported
    status: str  # completed | no-answer | busy | failed | canceled
    inbound: bool = True
    started_at: datetime | None = None
    duration_s: int = 0
    recording_url: str = ""
    agent_extension: str = ""

    @property
    def outcome(self) -> Outcome:
        return "answered" if self.status == "completed" else "missed"

    @property
    def dedupe_key(self) -> str:
        # One record per call and final status: a PBX re-sending its CDR is a duplicate.
        return f"{self.call_id}:{self.status}"


def _customer_number(raw: str) -> str:
    number = normalize_phone(raw)
    if number is None:
        raise NoCallerNumber(f"number {raw!r} cannot be called back")
    return number


def twilio_call(form: MultiDict[str]) -> CallRecord | None:
    """A final Twilio Voice status callback as a record; None for ringing/in-progress."""
    status = form.get("CallStatus", "").strip().lower()
    if status in TWILIO_INTERMEDIATE:
        return None
    if status not in TWILIO_FINAL:
        raise ValueError(f"CallStatus = {status!r}: expected one of {', '.join([*TWILIO_INTERMEDIATE, *TWILIO_FINAL])}")
    call_id = form.get("CallSid", "").strip()
    if not call_id:
        raise ValueError("CallSid is required")
    inbound = not form.get("Direction", "inbound").startswith("outbound")
    customer_raw, ours = form.get("From", ""), form.get("To", "")
    if not inbound:
        customer_raw, ours = ours, customer_raw
    try:
        duration = int(form.get("CallDuration", "") or 0)
    except ValueError:
        raise ValueError(f"CallDuration = {form.get('CallDuration')!r}: expected whole seconds") from None
    stamp = form.get("Timestamp", "")
    try:
        started = parsedate_to_datetime(stamp) if stamp else None
    except (TypeError, ValueError):
        started = None
    return CallRecord(
        call_id=call_id, customer=_customer_number(customer_raw), other_party=ours, status=status, inbound=inbound,
        started_at=started - timedelta(seconds=duration) if started else None, duration_s=duration,
        recording_url=form.get("RecordingUrl", ""),
    )


def _pbx_time(obj: dict[str, Any], key: str, tz: ZoneInfo) -> datetime | None:
    raw = obj.get(key)
    if raw in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        raise ValueError(f"{key} = {raw!r}: expected an ISO 8601 time such as 2024-05-14T14:05:12+03:30") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _is_our_side(raw: str, own_numbers: frozenset[str]) -> bool:
    """An internal extension, or one of the firm's own numbers (E.164)."""
    return bool(_EXTENSION.fullmatch(raw.strip())) or normalize_phone(raw) in own_numbers


def _pbx_inbound(obj: dict[str, Any], caller: str, callee: str, own_numbers: frozenset[str]) -> bool:
    direction = str(obj.get("direction") or "").strip().lower()
    if direction and direction not in PBX_DIRECTIONS:
        raise ValueError(f"direction = {obj['direction']!r}: expected one of {', '.join(PBX_DIRECTIONS)}")
    if direction:
        return direction == "inbound"
    # Most CDRs carry no direction: our side dialling an outside number is a call out.
    outside_callee = normalize_phone(callee) is not None and not _is_our_side(callee, own_numbers)
    return not (_is_our_side(caller, own_numbers) and outside_callee)


def pbx_call(obj: Any, tz: ZoneInfo, own_numbers: frozenset[str] = frozenset()) -> CallRecord:
    """A PBX call record (see the module docstring); ValueError names what is wrong.
    `own_numbers` are the firm's numbers in E.164."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    missing = [key for key in ("call_id", "caller", "disposition") if obj.get(key) in (None, "")]
    if missing:
        raise ValueError(f"missing required field(s): {', '.join(missing)}")
    disposition = str(obj["disposition"]).strip().upper()
    if disposition not in PBX_DISPOSITIONS:
        raise ValueError(f"disposition = {obj['disposition']!r}: expected one of {', '.join(PBX_DISPOSITIONS)}")
    start, answer, end = (_pbx_time(obj, key, tz) for key in ("start", "answer", "end"))
    status = PBX_DISPOSITIONS[disposition]
    duration = int((end - answer).total_seconds()) if status == "completed" and answer and end else 0
    caller, callee = str(obj["caller"]), str(obj.get("callee") or "")
    inbound = _pbx_inbound(obj, caller, callee, own_numbers)
    customer, ours = (caller, callee) if inbound else (callee, caller)
    if _is_our_side(customer, own_numbers):
        # Never a contact, let alone a ticket, for our own number or extension.
        raise NoCallerNumber(f"{customer!r} is our own side: an internal call has no customer")
    return CallRecord(
        call_id=str(obj["call_id"]), customer=_customer_number(customer), other_party=ours, status=status,
        inbound=inbound, started_at=start, duration_s=max(duration, 0),
        recording_url=str(obj.get("recording_url") or ""), agent_extension=str(obj.get("agent_extension") or ""),
    )


# -- the message an agent sees ------------------------------------------------------------------


def format_duration(seconds: int) -> str:
    """3 min 12 s; 45 s; 1 h 2 min 3 s."""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
             f"{secs} s" if secs or not (hours or minutes) else ""]
    return " ".join(p for p in parts if p)


def call_text(record: CallRecord, when: datetime, tz: ZoneInfo) -> str:
    at = f"at {when.astimezone(tz):%H:%M} ({zone_label(tz)})"
    why = "" if record.status in ("completed", "no-answer") else f" ({record.status})"
    if record.inbound and record.outcome == "missed":
        return f"Missed call from {record.customer} {at}{why}"
    if record.inbound:
        text = f"Answered call from {record.customer} {at}, {format_duration(record.duration_s)}"
    elif record.outcome == "missed":
        return f"Unanswered outgoing call to {record.customer} {at}{why}"
    else:
        text = f"Outgoing call to {record.customer} {at}, {format_duration(record.duration_s)}"
    return f"{text}, agent ext {record.agent_extension}" if record.agent_extension else text


def _recording(url: str) -> tuple[AttachmentData, ...]:
    if not url:
        return ()
    name = PurePosixPath(urlparse(url).path).name or "recording"
    content_type = mimetypes.guess_type(name)[0] or "audio/wav"  # Twilio serves WAV by default
    return (AttachmentData(filename=name, content_type=content_type, remote_ref=url),)


def call_message(record: CallRecord, received_at: datetime, tz: ZoneInfo, *, missed_opens: bool,
                 answered_opens: bool) -> InboundMessage:
    """A missed inbound call opens a ticket when `missed_opens` (someone must call back); an
    answered call was handled live, so it joins the caller's thread and opens one only when
    `answered_opens`. Outgoing calls never open tickets."""
    when = record.started_at or received_at
    opens = (missed_opens if record.outcome == "missed" else answered_opens) if record.inbound else False
    ours = normalize_phone(record.other_party) if record.other_party else None
    return InboundMessage(
        channel="call",
        channel_message_id=record.call_id,
        kind="call",
        sender=Identity("phone", record.customer),
        recipients=(Identity("phone", ours),) if ours else (),
        conversation_key=f"tel:{record.customer}",
        text=call_text(record, when, tz),
        sent_at=when,
        attachments=_recording(record.recording_url),
        opens_ticket=opens,
        meta=(("call_status", record.status), ("duration_s", str(record.duration_s)),
              ("agent_extension", record.agent_extension)),
    )


# -- payload normalisers ------------------------------------------------------------------------

TWILIO_CALL_FORMAT = "twilio-call"
PBX_CALL_FORMAT = "pbx-call"
DEFAULT_TIMEZONE = "Asia/Tehran"


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """The receiving connector's settings, stored with each payload (RawPayload.meta) so the
    normaliser stays a pure function of what was stored."""

    timezone: str = DEFAULT_TIMEZONE
    missed_opens_ticket: bool = True
    answered_opens_ticket: bool = False
    own_numbers: frozenset[str] = frozenset()  # E.164

    def as_meta(self) -> dict[str, str]:
        return {"timezone": self.timezone, "missed_opens_ticket": str(int(self.missed_opens_ticket)),
                "answered_opens_ticket": str(int(self.answered_opens_ticket)),
                "own_numbers": " ".join(sorted(self.own_numbers))}

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> CallPolicy:
        return cls(meta.get("timezone", DEFAULT_TIMEZONE), meta.get("missed_opens_ticket", "1") == "1",
                   meta.get("answered_opens_ticket", "0") == "1", frozenset(meta.get("own_numbers", "").split()))


def _message(record: CallRecord | None, payload: RawPayload, policy: CallPolicy) -> InboundMessage:
    if record is None:
        raise ValueError("not a final call status; such callbacks are never stored")
    return call_message(record, payload.received_at, ZoneInfo(policy.timezone),
                        missed_opens=policy.missed_opens_ticket, answered_opens=policy.answered_opens_ticket)


def normalise_twilio_call(payload: RawPayload) -> InboundMessage:
    return _message(twilio_call(parse_form(payload.body)), payload, CallPolicy.from_meta(payload.meta))


def read_pbx_call(body: bytes, policy: CallPolicy) -> CallRecord:
    """The PBX record in a raw body. ValueError for bad UTF-8 or JSON, JSON nested too deep
    to decode (json.loads recurses), or a bad record."""
    try:
        obj = json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply; expected one flat JSON object") from None
    return pbx_call(obj, ZoneInfo(policy.timezone), policy.own_numbers)


def normalise_pbx_call(payload: RawPayload) -> InboundMessage:
    policy = CallPolicy.from_meta(payload.meta)
    return _message(read_pbx_call(payload.body, policy), payload, policy)
