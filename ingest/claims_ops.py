"""Claims filed by insurers through the B2B API: the validated filing, and the write operations
that open the claim, add the insurer's messages to its thread, and turn status and SLA changes
into signed webhooks waiting in the outbox.

Opening a claim goes through the same steps as an inbound message (contact resolution, the
claim-reference sequence, routing, the timeline), by building an `InboundMessage` for the
filing and calling the apply step's own functions, so nothing here is a second copy of them.
Idempotency is decided inside the writer, where requests are serialised: the same
`Idempotency-Key`, or the same insurer claim number (by its key, `claim_number_key`: digits in
any script, case, spacing, dash and slash forms), always yields the same claim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ingest.analysis import analyse, message_search_body
from ingest.apply import (
    ApplyContext,
    _create_ticket,
    _insert_message,
    _touch_ticket,
    follow_merges,
    record_event,
    resolve_contact,
)
from ingest.persian import claim_number_key
from ingest.records import AttachmentData, Identity, InboundMessage
from ingest.store import Tx
from router.identity import normalize_email, normalize_national_id, normalize_phone

API_CHANNEL = "api"
WEBHOOK_CHANNEL = "insurer_webhook"
MAX_DOCUMENT_BYTES = 10 * 2**20


# -- the filing ---------------------------------------------------------------------------------


class _Model(BaseModel):
    # Strict: validated from the JSON text (`model_validate_json`), so a date must be an ISO
    # string and a number is never taken for one.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)


class Policyholder(_Model):
    name: str = Field(min_length=1, max_length=200)
    national_id: str | None = Field(None, description="کد ملی, 10 digits, checksum validated",
                                    examples=["0499370899"])
    phones: tuple[str, ...] = Field((), max_length=5, description="any common spelling; stored as E.164",
                                    examples=[["09121234567"]])
    email: str | None = Field(None, max_length=254, examples=["ali@example.com"])

    @field_validator("national_id")
    @classmethod
    def _national_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normalised = normalize_national_id(value)
        if normalised is None:
            raise ValueError("not a valid national id (10 digits with a valid check digit)")
        return normalised

    @field_validator("phones")
    @classmethod
    def _phones(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for raw in value:
            phone = normalize_phone(raw)
            if phone is None:
                raise ValueError(f"{raw!r} is not a phone number")
            out.append(phone)
        return tuple(dict.fromkeys(out))

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normalised = normalize_email(value)
        if normalised is None:
            raise ValueError(f"{value!r} is not an e-mail address")
        return normalised


class Vehicle(_Model):
    plate: str = Field(min_length=1, max_length=40)
    model: str = Field("", max_length=100)


def _gregorian(value: date) -> date:
    # An Iranian system may well send its own calendar's date, which parses as a Gregorian one
    # fourteen centuries back.
    if value.year < 1900:
        raise ValueError(f"expected a Gregorian date (e.g. 2026-05-01); {value.isoformat()} looks like a Jalali one")
    return value


class Patient(_Model):
    name: str = Field(min_length=1, max_length=200)
    hospital: str = Field("", max_length=200)
    admitted_on: date | None = None

    @field_validator("admitted_on")
    @classmethod
    def _admitted_on(cls, value: date | None) -> date | None:
        return None if value is None else _gregorian(value)


class Document(_Model):
    """A document the insurer holds (`url`) or sends inline (`content_base64`); exactly one."""

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", max_length=100)
    url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    content_base64: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Document:
        if (self.url is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of url or content_base64")
        return self

    @field_validator("content_base64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"over the {MAX_DOCUMENT_BYTES}-byte document limit")
        return value

    def data(self) -> bytes | None:
        return base64.b64decode(self.content_base64) if self.content_base64 is not None else None


LineOfBusiness = Literal["auto", "health"]


class ClaimFiling(_Model):
    """`POST /api/v1/claims`: a claim file opened at the insurer."""

    claim_number: str = Field(min_length=1, max_length=64, description=(
        "the insurer's own claim number, kept as written; spellings that differ only in the digits'"
        " script (Persian, Arabic-Indic, Latin), letter case, spaces, half-spaces, or dash and slash"
        " characters name the same claim"))
    policy_number: str = Field(min_length=1, max_length=64)
    line_of_business: LineOfBusiness
    policyholder: Policyholder
    vehicle: Vehicle | None = None
    patient: Patient | None = None
    loss_date: date
    loss_place: str = Field("", max_length=500)
    description: str = Field("", max_length=20_000)
    documents: tuple[Document, ...] = Field((), max_length=20)

    @field_validator("claim_number")
    @classmethod
    def _claim_number(cls, value: str) -> str:
        # Invisible characters and tatweel alone: every such number would be one claim.
        if not claim_number_key(value):
            raise ValueError("has no letters, digits or punctuation")
        return value

    @field_validator("loss_date")
    @classmethod
    def _loss_date(cls, value: date) -> date:
        _gregorian(value)
        if value > datetime.now(UTC).date() + timedelta(days=1):  # no loss has happened yet tomorrow
            raise ValueError(f"{value.isoformat()} is in the future")
        return value

    def identities(self) -> list[Identity]:
        name = self.policyholder.name
        found = [Identity("national_id", self.policyholder.national_id, name)] if self.policyholder.national_id else []
        found += [Identity("phone", p, name) for p in self.policyholder.phones]
        if self.policyholder.email:
            found.append(Identity("email", self.policyholder.email, name))
        return found

    def details(self) -> dict[str, Any]:
        """What GET shows back besides the ticket's own fields."""
        return self.model_dump(mode="json", include={"policy_number", "vehicle", "patient", "loss_date", "loss_place"})

    def thread_text(self) -> str:
        lines = [f"Claim {self.claim_number} (policy {self.policy_number}, {self.line_of_business})",
                 f"Policyholder: {self.policyholder.name}", f"Loss: {self.loss_date.isoformat()} {self.loss_place}".rstrip()]
        if self.vehicle:
            lines.append(f"Vehicle: {self.vehicle.plate} {self.vehicle.model}".rstrip())
        if self.patient:
            lines.append(f"Patient: {self.patient.name}, {self.patient.hospital}".rstrip(", "))
        if self.description:
            lines += ["", self.description]
        return "\n".join(lines)


class InsurerMessage(_Model):
    """`POST /api/v1/claims/{ref}/messages`: the insurer writes into the claim's thread."""

    text: str = Field(min_length=1, max_length=20_000)
    documents: tuple[Document, ...] = Field((), max_length=20)


def filing_fingerprint(method: str, path: str, filing: ClaimFiling) -> str:
    """`request_fingerprint` of a validated filing, its claim number by its key: a retry that
    writes the number another way is the same request, as it is the same claim."""
    return _fingerprint(method, path, {**filing.model_dump(mode="json"),
                                       "claim_number": claim_number_key(filing.claim_number)})


def request_fingerprint(method: str, path: str, request: BaseModel) -> str:
    """What an Idempotency-Key is bound to: the same key with another request is refused. The
    validated request counts, as the models normalise it (whitespace stripped, phones in E.164,
    defaults filled in), not the body: a retry that another client or library serialised again
    (key order, spacing, non-ASCII escaped or not) or that differs only in what the models strip
    (`"P-1 "`) is the same request, as it would store the same thing."""
    return _fingerprint(method, path, request.model_dump(mode="json"))


def body_fingerprint(method: str, path: str, document: Any, *, filing: bool = False) -> str:
    """What a key stored before the fourteenth session is bound to: the parsed body (a filing's
    claim number by its key). Accepted beside the current fingerprint, so that a retry straddling
    that upgrade replays rather than being refused as a reused key (keys do not expire)."""
    if filing:
        document = {**document, "claim_number": claim_number_key(document["claim_number"])}
    return _fingerprint(method, path, document)


def _fingerprint(method: str, path: str, document: dict[str, Any]) -> str:
    body = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{body}".encode("utf-8", "surrogatepass")).hexdigest()


# -- outcomes and errors ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimOpened:
    ref: str
    created: bool
    # None when created; else what recognised the repeat: "idempotency_key" or "claim_number"
    replayed_by: str | None = None


@dataclass(frozen=True, slots=True)
class MessagePosted:
    ref: str
    message_id: int
    replayed: bool


class ClaimNotFound(LookupError):
    """No such claim for this insurer (another insurer's claim is not found either)."""


class IdempotencyKeyReused(ValueError):
    """The Idempotency-Key was already used for a different request."""


# -- write operations ---------------------------------------------------------------------------


def _replay(tx: Tx, insurer: str, key: str | None, fingerprints: tuple[str, ...]) -> dict[str, Any] | None:
    """The stored result of the request `key` was first used for, when this is that request
    (its fingerprint is one of `fingerprints`: the current one first, then older kinds)."""
    if not key:
        return None
    row = tx.one("SELECT fingerprint, result FROM api_idempotency WHERE insurer = ? AND key = ?", (insurer, key))
    if row is None:
        return None
    if row["fingerprint"] not in fingerprints:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used for a different request")
    return json.loads(row["result"])


def _remember(tx: Tx, insurer: str, key: str | None, fingerprint: str, result: dict[str, Any]) -> None:
    if key:
        tx.execute(
            "INSERT INTO api_idempotency (insurer, key, fingerprint, result, created_at) VALUES (?, ?, ?, ?, ?)",
            (insurer, key, fingerprint, json.dumps(result), tx.stamp),
        )


def _attachments(documents: tuple[Document, ...]) -> tuple[AttachmentData, ...]:
    return tuple(AttachmentData(d.filename, d.content_type, remote_ref=d.url or "") for d in documents)


def open_claim(
    insurer: str, filing: ClaimFiling, ctx: ApplyContext, *, connector: str, idempotency_key: str | None,
    fingerprints: tuple[str, ...], stored_documents: list[tuple[int, str | None]],
) -> Callable[[Tx], ClaimOpened]:
    """Open the claim (or find the one this request already opened). `stored_documents`: for
    each filing document, (size, sha256 of the stored bytes, or None for a URL)."""

    def op(tx: Tx) -> ClaimOpened:
        replay = _replay(tx, insurer, idempotency_key, fingerprints)
        if replay is not None:
            return ClaimOpened(replay["ref"], False, "idempotency_key")
        key = claim_number_key(filing.claim_number)
        # By the key; the very spelling first, for a number filed under two before the key
        # existed (migration 8 left the later one without a key): each keeps finding its own.
        existing = tx.one(
            "SELECT t.ref FROM insurer_claims c JOIN tickets t ON t.id = c.ticket_id"
            " WHERE c.insurer = ? AND (c.claim_key = ? OR c.claim_number = ?) ORDER BY c.claim_number = ? DESC LIMIT 1",
            (insurer, key, filing.claim_number, filing.claim_number))
        if existing is not None:
            # Merged away, the number's claim lives on in the one it joined (as a message to it does).
            ref = follow_merges(tx, existing["ref"], insurer=insurer)["ref"]
            _remember(tx, insurer, idempotency_key, fingerprints[0], {"ref": ref})
            return ClaimOpened(ref, False, "claim_number")

        identities = filing.identities()
        msg = InboundMessage(
            channel=API_CHANNEL,
            channel_message_id=f"claim:{insurer}:{filing.claim_number}",
            sender=Identity("insurer", insurer),
            subject=f"{filing.claim_number} — {filing.policyholder.name}",
            text=filing.thread_text(),
            attachments=_attachments(filing.documents),
            extra_identities=tuple(identities),
            # Routing and SLA hooks see who filed it and for which line of business.
            meta=(("insurer", insurer), ("line_of_business", filing.line_of_business),
                  ("claim_number", filing.claim_number)),
        )
        if identities:
            contact_id = resolve_contact(tx, identities)
            tx.execute("UPDATE contacts SET display_name = ? WHERE id = ? AND display_name = ''",
                       (filing.policyholder.name, contact_id))
        else:
            contact_id = tx.execute("INSERT INTO contacts (display_name, created_at) VALUES (?, ?)",
                                    (filing.policyholder.name, tx.stamp)).lastrowid
        analysis = analyse(msg, ctx.reference_prefix)  # in the writer: insurer filings are few
        ticket_id, ref = _create_ticket(tx, ctx, msg, contact_id, analysis)
        tx.execute("UPDATE tickets SET insurer = ?, line_of_business = ? WHERE id = ?",
                   (insurer, filing.line_of_business, ticket_id))
        tx.execute(
            "INSERT INTO insurer_claims (ticket_id, insurer, claim_number, claim_key, details, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ticket_id, insurer, filing.claim_number, key, json.dumps(filing.details(), ensure_ascii=False), tx.stamp),
        )
        record_event(tx, ticket_id, ref, "claim_filed", f"insurer:{insurer}", claim_number=filing.claim_number,
                     line_of_business=filing.line_of_business)
        _thread_message(tx, connector, msg, ticket_id, ref, stored_documents, analysis.search_body)
        _remember(tx, insurer, idempotency_key, fingerprints[0], {"ref": ref})
        return ClaimOpened(ref, True)

    return op


def _thread_message(tx: Tx, connector: str, msg: InboundMessage, ticket_id: int, ref: str,
                    stored: list[tuple[int, str | None]], search_body: str) -> int:
    message_row = _insert_message(tx, None, connector, msg, ticket_id, stored, search_body)
    _touch_ticket(tx, ticket_id, ref, msg)
    record_event(tx, ticket_id, ref, "message_received", channel=msg.channel, message_row=message_row,
                 matched_by="insurer_api", message_kind=msg.kind)
    return message_row


def post_insurer_message(
    insurer: str, ref: str, message: InsurerMessage, *, connector: str, idempotency_key: str | None,
    fingerprints: tuple[str, ...], stored_documents: list[tuple[int, str | None]],
) -> Callable[[Tx], MessagePosted]:
    def op(tx: Tx) -> MessagePosted:
        # A merged claim's message goes on its thread, as a mail naming it does, rather than
        # reopening the closed, empty source.
        ticket = follow_merges(tx, ref, insurer=insurer)
        if ticket is None:
            raise ClaimNotFound(ref)
        replay = _replay(tx, insurer, idempotency_key, fingerprints)
        if replay is not None:
            return MessagePosted(replay.get("ref", ref), replay["message_id"], True)
        msg = InboundMessage(
            channel=API_CHANNEL, channel_message_id="", sender=Identity("insurer", insurer), text=message.text,
            attachments=_attachments(message.documents), opens_ticket=False,
        )
        row = _thread_message(tx, connector, msg, ticket["id"], ticket["ref"], stored_documents,
                              message_search_body(msg.subject, msg.sender.display_name, msg.sender.value, msg.text))
        _remember(tx, insurer, idempotency_key, fingerprints[0], {"message_id": row, "ref": ticket["ref"]})
        return MessagePosted(ticket["ref"], row, False)

    return op


# -- webhooks -----------------------------------------------------------------------------------

# The timeline events an insurer hears about. The events table is the source (with a cursor
# advanced in the same transaction as the outbox rows), not the in-process bus, so a crash
# between a status change and its webhook loses nothing.
WEBHOOK_SCAN = 5_000


def webhook_body(event: Any) -> str:
    data = json.loads(event["data"])
    return json.dumps({
        "id": f"evt_{event['id']}",
        "type": f"claim.{event['kind']}",
        "occurred_at": event["at"],
        "claim": {"reference": event["ref"], "insurer_claim_number": event["claim_number"],
                  "status": event["status"], "queue": event["queue"]},
        "data": {k: v for k, v in data.items() if k not in ("message_row", "actor")},
    }, ensure_ascii=False, sort_keys=True)


def enqueue_webhooks(connector: str) -> Callable[[Tx], tuple[int, bool]]:
    """Queue one outbox row per status or SLA change of an insurer's claim since the cursor.
    Returns (rows queued, caught up)."""

    def op(tx: Tx) -> tuple[int, bool]:
        last = tx.one("SELECT max(id) AS n FROM events")["n"] or 0
        row = tx.one("SELECT last_event_id FROM insurer_webhook_cursor WHERE connector = ?", (connector,))
        if row is None:  # a new connector starts from now, not from the beginning of history
            tx.execute("INSERT INTO insurer_webhook_cursor (connector, last_event_id) VALUES (?, ?)", (connector, last))
            return 0, True
        start = row["last_event_id"]
        upto = min(last, start + WEBHOOK_SCAN)
        # The status as of each event (the latest change up to it), not as of this round: two
        # changes in one write would otherwise both report the second.
        events = tx.execute(
            "SELECT e.id, e.at, e.kind, e.data, e.ticket_id, t.ref, t.queue, t.insurer, c.claim_number,"
            " coalesce((SELECT json_extract(s.data, '$.new') FROM events s WHERE s.ticket_id = e.ticket_id"
            "  AND s.kind = 'status_changed' AND s.id <= e.id ORDER BY s.id DESC LIMIT 1), 'new') AS status"
            " FROM events e JOIN tickets t ON t.id = e.ticket_id"
            " JOIN insurer_clients ic ON ic.name = t.insurer AND ic.active = 1 AND ic.webhook_url != ''"
            " LEFT JOIN insurer_claims c ON c.ticket_id = t.id"
            " WHERE e.id > ? AND e.id <= ? AND (e.kind = 'status_changed' OR e.kind LIKE 'sla\\_%' ESCAPE '\\')"
            " ORDER BY e.id",
            (start, upto),
        ).fetchall()
        for event in events:
            body = webhook_body(event)
            outbox_id = tx.execute(
                "INSERT INTO outbox (ticket_id, channel, connector, recipient, payload, automatic, next_attempt_at,"
                " created_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                (event["ticket_id"], WEBHOOK_CHANNEL, connector, event["insurer"],
                 json.dumps({"text": body, "ticket_ref": event["ref"], "event_id": event["id"]}, ensure_ascii=False),
                 tx.stamp, tx.stamp),
            ).lastrowid
            tx.emit("outbound_queued", event["ref"], channel=WEBHOOK_CHANNEL, outbox_id=outbox_id)
        tx.execute("UPDATE insurer_webhook_cursor SET last_event_id = ? WHERE connector = ?", (upto, connector))
        return len(events), upto >= last

    return op


def log_webhook_attempt(outbox_id: int, insurer: str, attempt: int, status_code: int | None, outcome: str,
                        detail: str) -> Callable[[Tx], None]:
    """The delivery log: one row per attempt, whatever its outcome."""

    def op(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO insurer_webhook_log (outbox_id, insurer, attempt, at, status_code, outcome, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (outbox_id, insurer, attempt, tx.stamp, status_code, outcome, detail[:500]),
        )

    return op
