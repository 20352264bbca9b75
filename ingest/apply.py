"""Write operations that turn a normalised inbound message into contact, ticket, message,
timeline events and (maybe) an acknowledgement in the outbox. Each runs inside the writer's
batch, so the look-ups and the writes that depend on them see one consistent database."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, get_args

from ingest.analysis import message_search_body
from ingest.contacts import merge_contacts
from ingest.deep_links import BotLinks, deep_link_key
from ingest.records import Identity, InboundMessage, RawPayload
from ingest.refusal import Refusal
from ingest.reply_routes import REPLY_FACTS, facts_from_rows, no_route_reason, reply_connector, reply_routes
from ingest.store import Tx, iso
from router.claimref import format_claim_ref, jalali_year
from router.deeplink import verify
from router.matching import AckFacts, MatchDecision, MatchFacts, MatchReason, decide_thread, should_acknowledge
from router.rules import Priority
from router.templates import acknowledgement
from router.workflow import TRANSITIONS, TransitionError, check_transition

if TYPE_CHECKING:
    from ingest.analysis import MessageAnalysis
    from ingest.routing_hooks import RoutingHooks


@dataclass(frozen=True, slots=True)
class RouteResult:
    queue: str
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    # Set by ingest/routing_hooks.py from the routing rules:
    skill: str | None = None
    sla_policy: str | None = None
    rule: str | None = None
    insurer: str = ""
    line_of_business: str = "other"


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """Everything the apply step needs from configuration, fixed at start-up."""

    reference_prefix: str
    continuity_window: timedelta
    default_queue: str
    acknowledge: bool
    ack_hourly_limit: int
    own_addresses: frozenset[str]
    mail_domain: str
    from_address: str
    # channel -> connector instance that answers on it by default
    reply_connectors: dict[str, str] = field(default_factory=dict)
    # connector instance -> channels it can send on (so a reply leaves through the bot or
    # number the customer wrote to, when there are several)
    sending_connectors: dict[str, frozenset[str]] = field(default_factory=dict)
    # Routing rules, assignment, SLA clocks and workflow (ingest/routing_hooks.py); None: off.
    routing: RoutingHooks | None = None
    # Bots whose signed deep links acknowledgements carry (filled as connectors learn them).
    bot_links: BotLinks = field(default_factory=BotLinks)


@dataclass(frozen=True, slots=True)
class Applied:
    ticket_ref: str
    message_row: int
    reason: str
    created: bool
    acknowledged: bool


# -- inbox --------------------------------------------------------------------------------------


def insert_inbox(payload: RawPayload) -> Callable[[Tx], tuple[int, bool]]:
    key = f"{payload.channel}:{payload.dedupe_key}"

    def op(tx: Tx) -> tuple[int, bool]:
        cur = tx.execute(
            "INSERT INTO inbox (channel, connector, dedupe_key, fmt, meta, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
            (payload.channel, payload.connector, key, payload.fmt,
             json.dumps(payload.meta, ensure_ascii=False), iso(payload.received_at)),
        )
        if cur.rowcount == 1:
            tx.execute("INSERT INTO inbox_raw (inbox_id, size, body) VALUES (?, ?, ?)",
                       (cur.lastrowid, len(payload.body), payload.body))
            return cur.lastrowid, False
        row = tx.one("SELECT id FROM inbox WHERE dedupe_key = ?", (key,))
        return row["id"], True

    return op


def quarantine(inbox_id: int, error: str, traceback_text: str) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        # 'quarantined': a retry (it stays listed until threaded) that failed again.
        if not tx.execute("UPDATE inbox SET state = 'quarantined' WHERE id = ? AND state IN ('pending', 'quarantined')",
                          (inbox_id,)).rowcount:
            return 0  # threaded by another processor meanwhile
        # A retry that failed again: its earlier entry gives way to this one (one open entry).
        tx.execute("UPDATE quarantine SET resolved_at = ? WHERE inbox_id = ? AND resolved_at IS NULL",
                   (tx.stamp, inbox_id))
        cur = tx.execute(
            "INSERT INTO quarantine (inbox_id, error, traceback, created_at) VALUES (?, ?, ?, ?)",
            (inbox_id, error, traceback_text, tx.stamp),
        )
        tx.emit("message_quarantined", inbox_id=inbox_id, error=error)
        return cur.lastrowid

    return op


def release_from_quarantine(inbox_ids: list[int]) -> Callable[[Tx], list[int]]:
    """Mark quarantined rows pending again so the processor retries them."""

    def op(tx: Tx) -> list[int]:
        released = []
        for inbox_id in inbox_ids:
            cur = tx.execute("UPDATE inbox SET state = 'pending' WHERE id = ? AND state = 'quarantined'", (inbox_id,))
            if cur.rowcount:
                tx.execute("UPDATE quarantine SET resolved_at = ? WHERE inbox_id = ? AND resolved_at IS NULL",
                           (tx.stamp, inbox_id))
                released.append(inbox_id)
        return released

    return op


# -- timeline -----------------------------------------------------------------------------------


def record_event(tx: Tx, ticket_id: int, ticket_ref: str, kind: str, actor: str = "system", **data: Any) -> None:
    tx.execute(
        "INSERT INTO events (ticket_id, at, kind, actor, data) VALUES (?, ?, ?, ?, ?)",
        (ticket_id, tx.stamp, kind, actor, json.dumps(data, ensure_ascii=False, default=str)),
    )
    tx.emit(kind, ticket_ref, actor=actor, **data)


# -- contacts -----------------------------------------------------------------------------------


def resolve_contact(tx: Tx, identities: list[Identity], *, vouched: int | None = None) -> int:
    """The contact holding any of these identities (the sender's own first), else a new one;
    identities not yet known are attached to it, so one person reached on several channels
    becomes one contact.

    `vouched`: how many of `identities`, from the first, the channel itself vouches for (a mail's
    sender, an SMS number, a Telegram user, a number shared with Telegram's own button); the rest
    were only stated (a phone in a mail signature, a web form's fields), and anyone can state
    anyone's phone or address. A stated identity never brings a newcomer into someone else's
    contact: a vouched sender nobody knows gets a contact of its own (the stated identities
    already known stay where they are), and unknown identities join an existing contact only
    when it was found through a vouched one. None: all are vouched for."""
    found: dict[Identity, int] = {}
    name = next((i.display_name for i in identities if i.display_name), "")
    trusted = set(identities if vouched is None else identities[:vouched])
    # A mail whose From (and envelope) named no readable address has an empty identity: it is
    # nobody's in particular, so it gets a contact of its own rather than everyone else's.
    identities = [ident for ident in identities if ident.value]
    trusted = {ident for ident in trusted if ident.value}
    for ident in identities:
        row = tx.one("SELECT contact_id FROM identities WHERE kind = ? AND value = ?", (ident.kind, ident.value))
        if row:
            found[ident] = row["contact_id"]
    by_trusted = [contact for ident, contact in found.items() if ident in trusted]
    attach = True
    if by_trusted:
        contact_id = by_trusted[0]
    elif found and not trusted:
        # Nothing vouched for (a web form): the message goes to the person it names, but the
        # identities it merely states are not added to them.
        contact_id = next(iter(found.values()))
        attach = False
    else:
        contact_id = tx.execute(
            "INSERT INTO contacts (display_name, created_at) VALUES (?, ?)", (name, tx.stamp)
        ).lastrowid
    for ident in identities:
        if attach and ident not in found:
            _add_identity(tx, contact_id, ident)
    return contact_id


def _add_identity(tx: Tx, contact_id: int, ident: Identity) -> None:
    """`ident` becomes one of the contact's, unless it is already someone's."""
    tx.execute(
        "INSERT INTO identities (contact_id, kind, value, display_name, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (kind, value) DO NOTHING",
        (contact_id, ident.kind, ident.value, ident.display_name, tx.stamp),
    )


def _join_proven(tx: Tx, contact_id: int, proven: Identity) -> int:
    """The sender's contact, merged with the one holding `proven` if that is another."""
    row = tx.one("SELECT contact_id FROM identities WHERE kind = ? AND value = ?", (proven.kind, proven.value))
    return contact_id if row is None else _joined(tx, contact_id, row["contact_id"])


def _joined(tx: Tx, contact_id: int, other: int) -> int:
    """One contact of the two: the older is kept, so the history the firm already knows stays
    where it was (a merge like an agent's, undoable)."""
    if other == contact_id:
        return contact_id
    keep, merge = sorted((other, contact_id))
    merge_contacts(keep, merge, actor="system")(tx)
    return keep


def _signed_link_contact(tx: Tx, msg: InboundMessage) -> int | None:
    """The contact of the claim a deep link names, when the link is one we signed for the bot
    it reached (router/deeplink.py); None for any other message, or a link not ours."""
    signed = msg.signed_ref
    if signed is None or not verify(deep_link_key(tx), signed.scope, signed.ref, signed.signature):
        return None
    ticket_id = _claim_ticket(tx, (signed.ref,))
    row = tx.one("SELECT contact_id FROM tickets WHERE id = ?", (ticket_id,)) if ticket_id else None
    return row["contact_id"] if row else None


# -- matching -----------------------------------------------------------------------------------


MAX_MERGE_CHAIN = 16


def follow_merges(tx: Tx, ref: str, *, insurer: str | None = None) -> Any:
    """Ticket `ref` (id, ref, merged_into), or the ticket it was merged into, along a chain of
    merges (bounded: a cycle written by hand must not hang the writer). With `insurer`, only that
    insurer's tickets: the walk stops at the last of theirs (an older store may hold a merge into
    another insurer's claim, which the insurer must not write to)."""
    sql = "SELECT id, ref, merged_into FROM tickets WHERE ref = ?" + (" AND insurer = ?" if insurer is not None else "")

    def fetch(name: str) -> Any:
        return tx.one(sql, (name,) if insurer is None else (name, insurer))

    ticket = fetch(ref)
    for _ in range(MAX_MERGE_CHAIN):
        if ticket is None or not ticket["merged_into"]:
            break
        target = fetch(ticket["merged_into"])
        if target is None:
            break
        ticket = target
    return ticket


def _claim_ticket(tx: Tx, candidates: tuple[str, ...]) -> int | None:
    for ref in candidates:
        # A merged ticket's reference leads to the ticket it was merged into.
        ticket = follow_merges(tx, ref)
        if ticket is not None:
            return ticket["id"]
    return None


def _header_ticket(tx: Tx, msg: InboundMessage) -> int | None:
    # Newest reference first: the message replied to is the best evidence.
    for mid in [msg.in_reply_to, *reversed(msg.references)]:
        if mid:
            row = tx.one("SELECT ticket_id FROM email_message_ids WHERE message_id = ?", (mid,))
            if row:
                return row["ticket_id"]
    return None


def _continuity_ticket(tx: Tx, msg: InboundMessage, contact_id: int, window: timedelta) -> int | None:
    if window <= timedelta(0):
        return None
    # From the conversation's last word (`conversation_at`), not `updated_at`: an assignment, an
    # escalation or a supervisor's notice does not keep a quiet conversation open.
    since = iso(tx.now - window)
    if msg.conversation_key:
        row = tx.one(
            "SELECT id FROM tickets WHERE conversation_key = ? AND conversation_at >= ? AND status != 'closed'"
            " ORDER BY conversation_at DESC LIMIT 1",
            (msg.conversation_key, since),
        )
        if row:
            return row["id"]
    row = tx.one(
        "SELECT id, insurer FROM tickets WHERE contact_id = ? AND conversation_at >= ? AND status != 'closed'"
        " ORDER BY conversation_at DESC LIMIT 1",
        (contact_id, since),
    )
    if row is None:
        return None
    if row["insurer"] and tx.one(
        "SELECT 1 FROM tickets WHERE contact_id = ? AND conversation_at >= ? AND status != 'closed' AND insurer != ?"
        " LIMIT 1", (contact_id, since, row["insurer"])):
        # The person has open claims of other owners too: a message naming none of them is not
        # guessed into an insurer's claim (that insurer would read it through its API; an insurer
        # filing a claim that names someone must not read what they write about another claim).
        return None
    return row["id"]


def _next_claim_ref(tx: Tx, prefix: str) -> str:
    year = jalali_year(tx.now)
    row = tx.one(
        "INSERT INTO claim_sequence (year, last) VALUES (?, 1)"
        " ON CONFLICT (year) DO UPDATE SET last = last + 1 RETURNING last",
        (year,),
    )
    return format_claim_ref(prefix, year, row["last"])


def _create_ticket(tx: Tx, ctx: ApplyContext, msg: InboundMessage, contact_id: int,
                   analysis: MessageAnalysis) -> tuple[int, str]:
    route = ctx.routing.route(tx, msg, contact_id, analysis.text) if ctx.routing else RouteResult(ctx.default_queue)
    ref = _next_claim_ref(tx, ctx.reference_prefix)
    subject = msg.subject or (msg.display_text or msg.text).strip().split("\n", 1)[0][:120]
    ticket_id = tx.execute(
        "INSERT INTO tickets (ref, contact_id, subject, queue, priority, channel, conversation_key,"
        " created_at, updated_at, conversation_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ref, contact_id, subject, route.queue, route.priority, msg.channel, msg.conversation_key,
         tx.stamp, tx.stamp, tx.stamp),
    ).lastrowid
    record_event(tx, ticket_id, ref, "ticket_created", channel=msg.channel, queue=route.queue, priority=route.priority)
    if ctx.routing:  # assignment and SLA clocks
        ctx.routing.ticket_created(tx, ctx, ticket_id, ref, route)
    return ticket_id, ref


# -- the whole step -----------------------------------------------------------------------------


def apply_inbound(
    inbox_id: int, connector: str, msg: InboundMessage, stored_attachments: list[tuple[int, str | None]],
    ctx: ApplyContext, analysis: MessageAnalysis, *, from_quarantine: bool = False,
) -> Callable[[Tx], Applied]:
    """`stored_attachments`: for each of msg.attachments, (size, sha256 or None when not kept);
    `analysis`: what ingest.analysis read from its words, worked out before this write;
    `from_quarantine`: a retry, whose quarantine entry is resolved in this same write."""

    def op(tx: Tx) -> Applied:
        # Threaded once: another processor on this store (a second daemon, `quarantine retry`
        # run beside the daemon) may have threaded or quarantined this row meanwhile.
        state = tx.one("SELECT state, message_row FROM inbox WHERE id = ?", (inbox_id,))
        if state is not None and state["state"] != "pending" and not (from_quarantine and state["state"] == "quarantined"):
            done = tx.one("SELECT t.ref FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.id = ?",
                          (state["message_row"],)) if state["message_row"] else None
            return Applied(done["ref"] if done else "", state["message_row"] or 0, "already_processed", False, False)
        # A web form's sender is only what the visitor typed; every other channel vouches for its sender.
        vouched = 0 if msg.kind == "form" else 1 + len(msg.proven_identities)
        link_contact = _signed_link_contact(tx, msg)
        if link_contact is not None:
            # They followed the link from the acknowledgement the claim's contact received: the
            # sender is one of the contact's own (a newcomer joins it; a known sender's contact
            # is merged with it, as when they share their number).
            _add_identity(tx, link_contact, msg.sender)
        contact_id = resolve_contact(tx, [msg.sender, *msg.proven_identities, *msg.extra_identities],
                                     vouched=vouched)
        for proven in msg.proven_identities:
            contact_id = _join_proven(tx, contact_id, proven)
        if link_contact is not None:
            contact_id = _joined(tx, contact_id, link_contact)
        facts = MatchFacts(
            claim_ticket=_claim_ticket(tx, analysis.claim_refs),
            header_ticket=_header_ticket(tx, msg) if msg.channel == "email" else None,
            # A web form is a new claim by intent: it never continues an open conversation.
            continuity_ticket=None if msg.kind == "form" else _continuity_ticket(tx, msg, contact_id, ctx.continuity_window),
            automatic=msg.is_automatic,
            opens_ticket=msg.opens_ticket,
        )
        decision: MatchDecision = decide_thread(facts)
        if decision.reason is MatchReason.UNTHREADED:
            tx.execute("UPDATE inbox SET state = 'unthreaded' WHERE id = ?", (inbox_id,))
            tx.emit("message_unthreaded", inbox_id=inbox_id, reason=msg.auto_reason)
            return Applied("", 0, decision.reason, False, False)
        if decision.creates_ticket:
            ticket_id, ref = _create_ticket(tx, ctx, msg, contact_id, analysis)
        else:
            ticket_id = decision.ticket_id
            ref = tx.one("SELECT ref FROM tickets WHERE id = ?", (ticket_id,))["ref"]

        message_row = _insert_message(tx, inbox_id, connector, msg, ticket_id, stored_attachments,
                                      analysis.search_body)
        _touch_ticket(tx, ticket_id, ref, msg)
        if ctx.routing:  # next-response clock, workflow "message received"
            ctx.routing.customer_message(tx, ctx, ticket_id, ref, msg)
        record_event(
            tx, ticket_id, ref, "message_received", channel=msg.channel, message_row=message_row,
            matched_by=decision.reason.value, automatic=msg.auto_reason or None, message_kind=msg.kind,
            # Recorded only when it happened: the sender joined the contact through our link.
            **({"signed_link": True} if link_contact is not None else {}),
        )
        acknowledged = _maybe_acknowledge(tx, ctx, msg, analysis, connector, ticket_id, ref, decision.creates_ticket)
        tx.execute("UPDATE inbox SET state = 'done', message_row = ? WHERE id = ?", (message_row, inbox_id))
        if from_quarantine:
            tx.execute("UPDATE quarantine SET resolved_at = ? WHERE inbox_id = ? AND resolved_at IS NULL",
                       (tx.stamp, inbox_id))
        return Applied(ref, message_row, decision.reason.value, decision.creates_ticket, acknowledged)

    return op


FILES_TO_FETCH = "attachments_to_fetch"
"""Bus-only event (not on the timeline): `message_row` has attachments still at the channel."""


def index_message(tx: Tx, message_row: int, body: str) -> None:
    """Make a message findable at once: its full-text row is written with it."""
    tx.execute("INSERT INTO search_index (rowid, body) VALUES (?, ?)", (message_row, body))


def _insert_message(
    tx: Tx, inbox_id: int | None, connector: str, msg: InboundMessage, ticket_id: int,
    stored_attachments: list[tuple[int, str | None]], search_body: str,
) -> int:
    message_row = tx.execute(
        "INSERT INTO messages (ticket_id, inbox_id, direction, kind, channel, connector, channel_message_id,"
        " sender_kind, sender, sender_name, recipients, subject, text, display_text, html, auto_reason, sent_at,"
        " created_at) VALUES (?, ?, 'in', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ticket_id, inbox_id, msg.kind, msg.channel, connector, msg.channel_message_id, msg.sender.kind,
         msg.sender.value, msg.sender.display_name, json.dumps([r.value for r in msg.recipients], ensure_ascii=False),
         msg.subject, msg.text, msg.display_text or msg.text, msg.html, msg.auto_reason,
         iso(msg.sent_at), tx.stamp),
    ).lastrowid
    remote = False
    for att, (size, digest) in zip(msg.attachments, stored_attachments):
        tx.execute(
            "INSERT INTO attachments (message_id, filename, content_type, size, sha256, remote_ref)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (message_row, att.filename, att.content_type, size, digest, att.remote_ref),
        )
        remote = remote or (digest is None and bool(att.remote_ref))
    if remote:  # bus only: ingest/attachment_fetcher.py downloads them after the commit
        tx.emit(FILES_TO_FETCH, message_row=message_row)
    if msg.message_id:
        tx.execute(
            "INSERT INTO email_message_ids (message_id, ticket_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (msg.message_id, ticket_id),
        )
    index_message(tx, message_row, search_body)
    return message_row


def _touch_ticket(tx: Tx, ticket_id: int, ref: str, msg: InboundMessage) -> None:
    row = tx.one("SELECT status FROM tickets WHERE id = ?", (ticket_id,))
    reopen = row["status"] == "closed" and not msg.is_automatic
    # Status and closed_at only when they change: SQLite rewrites the entries of every index over
    # a column the statement assigns, even to its old value (three more indexes per message).
    reopening = ", status = 'reopened', closed_at = NULL" if reopen else ""
    # An auto-reply or a bounce is nobody's word in the conversation: it keeps no window open.
    spoken = "" if msg.is_automatic else ", conversation_at = :now"
    tx.execute(
        "UPDATE tickets SET updated_at = :now, last_inbound_at = :now, message_count = message_count + 1"
        f"{spoken}{reopening} WHERE id = :id",
        {"now": tx.stamp, "id": ticket_id},
    )
    if reopen:
        record_event(tx, ticket_id, ref, "status_changed", old="closed", new="reopened")
        from ingest import routing_hooks  # late: routing_hooks builds on this module

        routing_hooks.status_changed(tx, ticket_id, ref, "closed", "reopened")


def _maybe_acknowledge(
    tx: Tx, ctx: ApplyContext, msg: InboundMessage, analysis: MessageAnalysis, connector: str, ticket_id: int,
    ref: str, created: bool,
) -> bool:
    via = reply_connector(ctx, msg.channel, connector)
    recipient = msg.sender.value
    facts = AckFacts(
        created_ticket=created,
        enabled=ctx.acknowledge,
        automatic=msg.is_automatic,
        unattended_sender=analysis.unattended_sender,
        own_address=recipient.lower() in ctx.own_addresses,
        sent_last_hour=0,
        hourly_limit=ctx.ack_hourly_limit,
        can_reply=bool(via),
    )
    if not should_acknowledge(facts):  # no acknowledgement even before counting the recent ones
        return False
    sent_last_hour = tx.one(
        "SELECT count(*) AS n FROM outbox WHERE recipient = ? AND automatic = 1 AND created_at >= ?",
        (recipient, iso(tx.now - timedelta(hours=1))),
    )["n"]
    if not should_acknowledge(replace(facts, sent_last_hour=sent_last_hour)):
        return False
    persian = analysis.text.language == "fa"
    expected = ctx.routing.expected_response(tx, ticket_id, persian) if ctx.routing else ""
    # Signed links to our bots: the customer continues there and is answered there.
    links = ctx.bot_links.for_claim(deep_link_key(tx), ref, besides=msg.channel) if ctx.bot_links.bots else []
    text = acknowledgement(ref, persian=persian, subject=msg.subject, expected_response=expected,
                           links=[(link.channel, link.url) for link in links])
    enqueue_outbound(
        tx, ctx, ticket_id=ticket_id, ref=ref, channel=msg.channel, connector=via,
        recipient=recipient, subject=text.subject, text=text.text, automatic=True,
        in_reply_to=msg.message_id, references=(*msg.references, msg.message_id) if msg.message_id else msg.references,
        author="system",
    )
    return True


def new_message_id(ref: str, domain: str) -> str:
    return f"{ref}.{secrets.token_hex(8)}@{domain}"


def enqueue_outbound(
    tx: Tx, ctx: ApplyContext, *, ticket_id: int, ref: str, channel: str, connector: str, recipient: str,
    text: str, subject: str = "", automatic: bool = False, in_reply_to: str = "",
    references: tuple[str, ...] = (), author: str = "", now: datetime | None = None, internal: bool = False,
) -> int:
    """Record an outgoing message on the thread and queue it for delivery, in one write.
    Email gets its Message-ID now, so a reply to it threads even before it has left. `internal`:
    to one of the firm's people (a supervisor's SLA notice), not the customer: the thread keeps it
    as internal, so no customer-facing view shows it and it answers no one."""
    message_id = new_message_id(ref, ctx.mail_domain) if channel == "email" else ""
    payload = {
        "subject": subject, "text": text, "in_reply_to": in_reply_to,
        "references": [r for r in references if r], "message_id": message_id, "ticket_ref": ref,
    }
    message_row = tx.execute(
        "INSERT INTO messages (ticket_id, direction, kind, channel, connector, channel_message_id, sender,"
        " recipients, subject, text, display_text, author, created_at)"
        " VALUES (?, ?, 'message', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ticket_id, "internal" if internal else "out", channel, connector, message_id, ctx.from_address if channel == "email" else "",
         json.dumps([recipient], ensure_ascii=False), subject, text, text, author, tx.stamp),
    ).lastrowid
    index_message(tx, message_row, message_search_body(subject, "", ctx.from_address if channel == "email" else "", text))
    if message_id:
        tx.execute("INSERT INTO email_message_ids (message_id, ticket_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                   (message_id, ticket_id))
    outbox_id = tx.execute(
        "INSERT INTO outbox (ticket_id, message_row, channel, connector, recipient, payload, automatic,"
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ticket_id, message_row, channel, connector, recipient, json.dumps(payload, ensure_ascii=False),
         int(automatic), iso(now or tx.now), tx.stamp),
    ).lastrowid
    # A person's answer to the customer is a word in the conversation; an acknowledgement, a
    # rule's reminder or a supervisor's notice is not.
    spoken = "" if automatic or internal else ", conversation_at = :now"
    tx.execute(f"UPDATE tickets SET updated_at = :now, message_count = message_count + 1{spoken} WHERE id = :id",
               {"now": tx.stamp, "id": ticket_id})
    record_event(tx, ticket_id, ref, "outbound_queued", channel=channel, outbox_id=outbox_id,
                 automatic=automatic, author=author or None, message_row=message_row)
    if ctx.routing and not automatic:  # a person answered: response clocks are met
        ctx.routing.responded(tx, ticket_id, ref)
    return outbox_id


class ReplyError(Refusal):
    """An agent reply that cannot be sent as asked (unknown ticket, no channel to answer on)."""


def agent_reply(ref: str, text: str, author: str, ctx: ApplyContext, channel: str | None = None, *,
                automatic: bool = False) -> Callable[[Tx], int]:
    """Answer the claim's contact on the default of `reply_routes` (the channel they last wrote
    on), or on `channel`, which must be one of them. `automatic`: sent by a rule (a reminder),
    so it meets no response target."""

    def op(tx: Tx) -> int:
        if not text.strip():  # every way in (console, agent API, CLI) meets this: no blank mail
            raise ReplyError("the reply is empty", "reply_empty")
        ticket = tx.one("SELECT id, subject FROM tickets WHERE ref = ?", (ref,))
        if ticket is None:
            raise ReplyError(f"no ticket {ref}", "no_ticket", ref=ref)
        facts = facts_from_rows(tx.execute(REPLY_FACTS, {"ref": ref}).fetchall())
        routes = reply_routes(facts, ctx)
        route = next((r for r in routes if (r.channel == channel if channel else r.default)), None)
        if route is None:
            if not routes:
                why = no_route_reason(facts)
                raise ReplyError(f"{ref}: {why.text}", why.reason, ref=ref, **why.params)
            offered = [r.channel for r in routes]
            raise ReplyError(f"{ref} cannot be answered on {channel}, only on {', '.join(offered)}",
                             "wrong_reply_channel", ref=ref, channel=channel, channels=offered)
        references: tuple[str, ...] = ()
        in_reply_to = ""
        if route.channel == "email" and route.channel_message_id:
            rows = tx.execute(
                "SELECT channel_message_id FROM messages WHERE ticket_id = ? AND channel = 'email'"
                " AND channel_message_id != '' ORDER BY id DESC LIMIT 20", (ticket["id"],)
            ).fetchall()
            # A mail without a Message-ID is stored under a digest of its bytes: no header names it.
            references = tuple(reversed([r[0] for r in rows if not r[0].startswith("sha256:")]))
            in_reply_to = "" if route.channel_message_id.startswith("sha256:") else route.channel_message_id
        # A subject is mail's: on SMS or a chat the thread would show one the customer never sees.
        subject = route.subject or ticket["subject"] if route.channel == "email" else ""
        return enqueue_outbound(
            tx, ctx, ticket_id=ticket["id"], ref=ref, channel=route.channel, connector=route.connector,
            recipient=route.recipient, text=text, subject=subject,
            in_reply_to=in_reply_to, references=references, author=author, automatic=automatic,
        )

    return op


# How far a sent message has got, as channels report it (Twilio's MessageStatus values): a
# report of an earlier stage arriving after a later one (callbacks race) says nothing new.
_DELIVERY_STAGES = {
    "accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4, "read": 5,
}
# Stages a polled gateway need not be asked about again ("read", on WhatsApp, may follow "delivered").
FINAL_STATUSES = frozenset(status for status, stage in _DELIVERY_STAGES.items() if stage >= 4)
_FAILED_STATUSES = ("failed", "undelivered", "canceled")
# Reports on ids no message has: kept for the write that records the id, milliseconds later when
# the gateway called back as it answered the send, longer when the outbox could record the
# outcome only after a store outage.
# Bounded by age and by count: a gateway account shared with another system reports that
# system's messages to our URL too, and those are never claimed.
PENDING_REPORTS_FOR = timedelta(days=7)
PENDING_REPORTS_AT_MOST = 10_000


def delivery_news(reported: list[str], status: str) -> bool:
    """Whether `status` adds to the statuses already on the timeline for the same message:
    not a repeat (callbacks are retried, and replayable: their signature has no timestamp) and
    not a stage behind the furthest reached. A status we do not know is news once."""
    if status in reported:
        return False
    stage = _DELIVERY_STAGES.get(status)
    reached = [_DELIVERY_STAGES[r] for r in reported if r in _DELIVERY_STAGES]
    return stage is None or not reached or stage >= max(reached)


def message_delivery(parts: list[str]) -> str:
    """How far a message sent in parts has got, from each part's furthest stage ("" for a part
    not reported on yet: the channel took it, so it is queued): failed as soon as any part
    failed (the reader misses it; the first failed part's word), else the least advanced
    part's stage, so delivered only once every part is."""
    failed = next((status for status in parts if status in _FAILED_STATUSES), None)
    if failed is not None:
        return failed
    return min((status or "queued" for status in parts), key=_DELIVERY_STAGES.__getitem__)


def delivery_status(channel: str, channel_message_id: str, status: str, detail: str) -> Callable[[Tx], bool]:
    """A channel's report on a message we sent (Twilio MessageStatus, Kavenegar's codes), on the
    timeline when it is news. True when the message is ours; a report on an id not recorded yet
    is kept until the outbox records it (`record_sent_ids`)."""

    def op(tx: Tx) -> bool:
        if _apply_report(tx, channel, channel_message_id, status, detail):
            return True
        tx.execute(
            "DELETE FROM pending_delivery_reports WHERE received_at < ?"
            " OR id <= (SELECT max(id) FROM pending_delivery_reports) - ?",
            (iso(tx.now - PENDING_REPORTS_FOR), PENDING_REPORTS_AT_MOST - 1))
        tx.execute(
            "INSERT INTO pending_delivery_reports (channel, channel_message_id, status, detail, received_at)"
            " VALUES (?, ?, ?, ?, ?)", (channel, channel_message_id, status, detail, tx.stamp))
        return False

    return op


def record_sent_ids(tx: Tx, message_row: int, channel: str, ids: tuple[str, ...]) -> None:
    """The ids the channel gave a message we sent (one per part), so a report on any part finds
    it; then the reports on them that came before this write, in the order they came."""
    for part, channel_message_id in enumerate(ids):
        tx.execute("INSERT OR IGNORE INTO outbound_message_ids (channel, channel_message_id, message_row, part)"
                   " VALUES (?, ?, ?, ?)", (channel, channel_message_id, message_row, part))
    marks = ", ".join("?" * len(ids))
    early = tx.execute(
        "SELECT id, channel_message_id, status, detail FROM pending_delivery_reports"
        f" WHERE channel = ? AND channel_message_id IN ({marks}) ORDER BY id", (channel, *ids)).fetchall()
    for report in early:
        _apply_report(tx, channel, report["channel_message_id"], report["status"], report["detail"])
    tx.execute(f"DELETE FROM pending_delivery_reports WHERE channel = ? AND channel_message_id IN ({marks})",
               (channel, *ids))


def _apply_report(tx: Tx, channel: str, channel_message_id: str, status: str, detail: str) -> bool:
    """One report onto its message's timeline, as the message's status over all its parts
    (`message_delivery`) and only when that is news; False when no message has the id."""
    row = tx.one(
        "SELECT o.message_row, o.part, o.status, m.ticket_id, t.ref FROM outbound_message_ids o"
        " JOIN messages m ON m.id = o.message_row JOIN tickets t ON t.id = m.ticket_id"
        " WHERE o.channel = ? AND o.channel_message_id = ?", (channel, channel_message_id))
    if row is None:
        return False
    shown = status  # a status we know no stage of stands for itself: news once, as reported
    if status in _DELIVERY_STAGES:
        if not delivery_news([row["status"]] if row["status"] else [], status):
            return True  # a repeat, or behind what this part already reached
        tx.execute("UPDATE outbound_message_ids SET status = ? WHERE channel = ? AND channel_message_id = ?",
                   (status, channel, channel_message_id))
    parts = tx.execute("SELECT channel_message_id, status FROM outbound_message_ids WHERE message_row = ?"
                       " ORDER BY part", (row["message_row"],)).fetchall()
    if status in _DELIVERY_STAGES:
        shown = message_delivery([part["status"] for part in parts])
    key = parts[0]["channel_message_id"]  # the message's id as shown: its first part's
    if len(parts) > 1:
        detail = f"part {row['part'] + 1} of {len(parts)}" + (f": {detail}" if detail else "")
    reported = [
        data["status"] for (raw,) in tx.execute(
            "SELECT data FROM events WHERE ticket_id = ? AND kind = 'delivery_status'", (row["ticket_id"],))
        if (data := json.loads(raw)).get("channel_message_id") == key
    ]
    if delivery_news(reported, shown):
        record_event(tx, row["ticket_id"], row["ref"], "delivery_status", channel=channel,
                     channel_message_id=key, status=shown, detail=detail or None)
    return True


# -- agent actions ------------------------------------------------------------------------------
# Each records a timeline event with the agent as actor; the agent API adds the audit row.


class TicketActionError(Refusal):
    """An agent action that cannot be done as asked (unknown ticket, illegal move...)."""


PRIORITIES: tuple[str, ...] = get_args(Priority)


def _ticket_for_action(tx: Tx, ref: str) -> Any:
    row = tx.one("SELECT id, ref, status, priority, queue, skill, assignee, merged_into FROM tickets WHERE ref = ?",
                 (ref,))
    if row is None:
        raise TicketActionError(f"no ticket {ref}", "no_ticket", ref=ref)
    return row


def _set_status(tx: Tx, ticket: Any, new: str, actor: str) -> None:
    try:
        check_transition(ticket["status"], new)
    except TransitionError as exc:
        raise TicketActionError(f"{ticket['ref']}: {exc}", "illegal_transition", ref=ticket["ref"], old=exc.old,
                                new=exc.new, allowed=sorted(TRANSITIONS.get(exc.old, ()))) from None
    tx.execute(
        "UPDATE tickets SET status = ?, updated_at = ?,"
        " closed_at = CASE WHEN ? = 'closed' THEN ? ELSE NULL END WHERE id = ?",
        (new, tx.stamp, new, tx.stamp, ticket["id"]),
    )
    record_event(tx, ticket["id"], ticket["ref"], "status_changed", actor, old=ticket["status"], new=new)
    from ingest import routing_hooks  # late: routing_hooks builds on this module

    routing_hooks.status_changed(tx, ticket["id"], ticket["ref"], ticket["status"], new)


def add_note(ref: str, text: str, author: str) -> Callable[[Tx], int]:
    """An internal note on the thread: never sent, never shown to the customer."""
    if not text.strip():
        raise TicketActionError("a note needs some text", "note_empty")

    def op(tx: Tx) -> int:
        ticket = _ticket_for_action(tx, ref)
        message_row = tx.execute(
            "INSERT INTO messages (ticket_id, direction, kind, channel, sender, text, display_text, author, created_at)"
            " VALUES (?, 'internal', 'note', 'internal', ?, ?, ?, ?, ?)",
            (ticket["id"], author, text, text, author, tx.stamp),
        ).lastrowid
        index_message(tx, message_row, message_search_body("", "", author, text))
        tx.execute("UPDATE tickets SET updated_at = ?, message_count = message_count + 1 WHERE id = ?",
                   (tx.stamp, ticket["id"]))
        record_event(tx, ticket["id"], ref, "note_added", author, message_row=message_row)
        return message_row

    return op


def assign_ticket(ref: str, assignee: str | None, actor: str) -> Callable[[Tx], str | None]:
    """Give the ticket to `assignee` (None: back to the queue). A new ticket becomes assigned,
    an assigned one with nobody on it goes back to new. Returns the previous assignee."""

    def op(tx: Tx) -> str | None:
        ticket = _ticket_for_action(tx, ref)
        old = ticket["assignee"]
        if old == assignee:
            return old
        tx.execute("UPDATE tickets SET assignee = ?, updated_at = ? WHERE id = ?", (assignee, tx.stamp, ticket["id"]))
        record_event(tx, ticket["id"], ref, "assigned" if assignee else "unassigned", actor, old=old, new=assignee)
        if assignee and ticket["status"] == "new":
            _set_status(tx, ticket, "assigned", actor)
        elif not assignee and ticket["status"] == "assigned":
            _set_status(tx, ticket, "new", actor)
        return old

    return op


def change_status(ref: str, new: str, actor: str) -> Callable[[Tx], str]:
    """Move the ticket along its workflow; returns the old status."""

    def op(tx: Tx) -> str:
        ticket = _ticket_for_action(tx, ref)
        if ticket["merged_into"]:
            # Its thread lives on in the other ticket: reopened, this one would be an empty claim
            # in the queue that nobody can answer.
            raise TicketActionError(f"{ref} was merged into {ticket['merged_into']}; work on that one", "merged_ticket",
                                    ref=ref, into=ticket["merged_into"])
        _set_status(tx, ticket, new, actor)
        return ticket["status"]

    return op


def change_queue(ref: str, queue: str, actor: str) -> Callable[[Tx], str]:
    """Move the ticket to another queue (a misrouted claim): it leaves whoever held it and is
    assigned as the new queue assigns. Returns the old queue. `queue` is checked by the caller
    against the configured queues."""

    def op(tx: Tx) -> str:
        ticket = _ticket_for_action(tx, ref)
        old = ticket["queue"]
        if old == queue:
            return old
        if ticket["merged_into"]:
            raise TicketActionError(f"{ref} was merged into {ticket['merged_into']}; work on that one", "merged_ticket",
                                    ref=ref, into=ticket["merged_into"])
        if ticket["status"] == "closed":
            raise TicketActionError(f"{ref} is closed; reopen it to move it", "closed_ticket", ref=ref)
        tx.execute("UPDATE tickets SET queue = ?, updated_at = ? WHERE id = ?", (queue, tx.stamp, ticket["id"]))
        record_event(tx, ticket["id"], ref, "queue_changed", actor, old=old, new=queue)
        if ticket["assignee"]:
            assign_ticket(ref, None, actor)(tx)
        from ingest import routing_hooks  # late: routing_hooks builds on this module

        routing_hooks.queue_changed(tx, ticket["id"], ref, queue, ticket["skill"])
        return old

    return op


def change_priority(ref: str, priority: str, actor: str) -> Callable[[Tx], str]:
    if priority not in PRIORITIES:
        raise TicketActionError(f"priority {priority!r}: expected one of {', '.join(PRIORITIES)}")

    def op(tx: Tx) -> str:
        ticket = _ticket_for_action(tx, ref)
        if ticket["priority"] != priority:
            tx.execute("UPDATE tickets SET priority = ?, updated_at = ? WHERE id = ?", (priority, tx.stamp, ticket["id"]))
            record_event(tx, ticket["id"], ref, "priority_changed", actor, old=ticket["priority"], new=priority)
            from ingest import routing_hooks  # late: routing_hooks builds on this module

            routing_hooks.priority_changed(tx, ticket["id"], ref, ticket["priority"], priority)
        return ticket["priority"]

    return op


def merge_tickets(source_ref: str, target_ref: str, actor: str) -> Callable[[Tx], int]:
    """Fold `source` into `target`: its messages with their timeline events, e-mail ids and
    outbox move over and the source is closed with `merged_into` set. Returns how many messages
    moved."""
    if source_ref == target_ref:
        raise TicketActionError("cannot merge a ticket into itself", "merge_into_itself", ref=source_ref)

    def op(tx: Tx) -> int:
        source = _ticket_for_action(tx, source_ref)
        target = _ticket_for_action(tx, target_ref)
        for ticket in (source, target):
            if ticket["merged_into"]:
                raise TicketActionError(f"{ticket['ref']} was already merged into {ticket['merged_into']}",
                                        "already_merged", ref=ticket["ref"], into=ticket["merged_into"])
        filed_by, into = (tx.one("SELECT insurer FROM tickets WHERE id = ?", (t["id"],))[0] or "" for t in (source, target))
        if filed_by and filed_by != into:
            # The insurer follows its claim through the API: merged away, its filing would show on
            # another insurer's claim (or none), and it would be left following a closed, empty one.
            # A customer's own thread may still join an insurer's claim.
            raise TicketActionError(f"{source_ref} is insurer {filed_by}'s claim; it can only be merged into"
                                    f" another of {filed_by}'s claims", "insurer_claim_merge", ref=source_ref,
                                    insurer=filed_by)
        moved = tx.execute("UPDATE messages SET ticket_id = ? WHERE ticket_id = ?", (target["id"], source["id"])).rowcount
        for table in ("email_message_ids", "outbox"):
            tx.execute(f"UPDATE {table} SET ticket_id = ? WHERE ticket_id = ?", (target["id"], source["id"]))
        # Only the events of the thread go with it. The source's own life (routing, status,
        # assignment, SLA clocks) stays its own: reports rebuild each ticket's statuses from it.
        tx.execute(
            "UPDATE events SET ticket_id = ? WHERE ticket_id = ? AND (kind IN ('message_received', 'outbound_queued',"
            " 'note_added', 'attachment_fetch_failed') OR kind LIKE 'delivery\\_%' ESCAPE '\\')",
            (target["id"], source["id"]))
        came = tx.one("SELECT last_inbound_at, conversation_at FROM tickets WHERE id = ?", (source["id"],))
        tx.execute(
            "UPDATE tickets SET message_count = message_count + :moved, updated_at = :now,"
            " last_inbound_at = max(coalesce(last_inbound_at, ''), coalesce(:inbound, '')),"
            " conversation_at = max(coalesce(conversation_at, ''), coalesce(:spoken, '')) WHERE id = :id",
            {"moved": moved, "now": tx.stamp, "inbound": came["last_inbound_at"], "spoken": came["conversation_at"],
             "id": target["id"]},
        )
        tx.execute(
            "UPDATE tickets SET status = 'closed', closed_at = ?, updated_at = ?, message_count = 0, merged_into = ?"
            " WHERE id = ?",
            (tx.stamp, tx.stamp, target_ref, source["id"]),
        )
        if source["status"] != "closed":
            # A closing like any other for reports and the insurer's webhook; no status hooks: a
            # merge resolves nothing (no resolution clock met, no workflow rule on closing).
            record_event(tx, source["id"], source_ref, "status_changed", actor, old=source["status"], new="closed",
                         merged_into=target_ref)
        record_event(tx, source["id"], source_ref, "merged_into", actor, target=target_ref, old_status=source["status"])
        from ingest import routing_hooks  # late: routing_hooks builds on this module

        routing_hooks.merged_away(tx, source["id"], source_ref)
        record_event(tx, target["id"], target_ref, "merged_from", actor, source=source_ref, messages=moved)
        if target["status"] == "closed" and source["status"] != "closed":
            # The open conversation goes on in the target, as when the customer writes to a
            # closed claim: left closed, it would drop out of every list with the customer waiting.
            _set_status(tx, target, "reopened", actor)
        return moved

    return op


def index_for_search(entries: list[tuple[int, str]], last_message_id: int) -> Callable[[Tx], int]:
    """Add (message row, Persian-normalised text) pairs to the full-text index and remember how
    far indexing got. Idempotent: a message already indexed is replaced."""

    def op(tx: Tx) -> int:
        for message_row, body in entries:
            tx.execute("DELETE FROM search_index WHERE rowid = ?", (message_row,))
            tx.execute("INSERT INTO search_index (rowid, body) VALUES (?, ?)", (message_row, body))
        tx.execute("UPDATE search_state SET last_message_id = max(last_message_id, ?) WHERE id = 1", (last_message_id,))
        return len(entries)

    return op
