"""Which channels a reply to a claim can go on, to whom, and through which connector: one
decision, taken by the reply itself (`apply.agent_reply`) and shown to the console before it
offers a channel (the agent API's `open_ticket`), so the two never disagree. Pure over the rows
of REPLY_FACTS, which the writer's transaction and the store's reader both run."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.apply import ApplyContext

# Only the claim's own contact is answered: anyone who names a claim reference (a `/start PV-...`
# deep link, `[PV-...]` in a subject, an SMS quoting it) threads onto the claim, but references
# are sequential and guessable, so a sender who is not one of the claim contact's identities must
# never receive the adjuster's replies. Hence the contact's latest message on each channel (and
# the latest without a sender address, which says where they last wrote), then their email
# addresses and phones, written to when nothing of theirs can be answered in kind (an insurer
# filed the claim, they wrote through a web form or called). Parameter: `ref`.
REPLY_FACTS = (
    "SELECT 'message' AS source, m.id, m.channel, m.connector, m.sender AS address, m.channel_message_id, m.subject"
    " FROM messages m WHERE m.id IN (SELECT max(m.id) FROM tickets t JOIN messages m ON m.ticket_id = t.id"
    "  WHERE t.ref = :ref AND m.direction = 'in' AND m.auto_reason = ''"
    "  AND (m.sender = '' OR EXISTS"
    # By kind and value: a Telegram and a Bale user may have the same number.
    "   (SELECT 1 FROM identities i WHERE i.kind = m.sender_kind AND i.value = m.sender"
    "    AND (i.contact_id = t.contact_id"
    # A claim a supervisor merged into this one brought its own contact's thread: that contact was
    # answerable there and stays answerable here. Found from the sender's own claims (by index),
    # not by scanning every ticket for `merged_into`.
    "     OR EXISTS (SELECT 1 FROM tickets s WHERE s.contact_id = i.contact_id AND s.merged_into = t.ref))))"
    "  GROUP BY m.channel, m.sender = '')"
    " UNION ALL SELECT 'identity', i.id, i.kind, '', i.value, '', '' FROM tickets t"
    " JOIN identities i ON i.contact_id = t.contact_id WHERE t.ref = :ref AND i.kind IN ('email', 'phone')"
)

# Channels a contact's identity can be written to, in order of preference.
IDENTITY_CHANNELS = (("email", "email"), ("phone", "sms"), ("phone", "whatsapp"))


@dataclass(frozen=True, slots=True)
class Written:
    """The contact's latest message on a channel (`sender` empty: one with no address)."""

    id: int
    channel: str
    connector: str
    sender: str
    channel_message_id: str
    subject: str


@dataclass(frozen=True, slots=True)
class ReplyFacts:
    written: tuple[Written, ...]  # newest first
    identities: tuple[tuple[str, str], ...]  # the contact's (kind, value), email and phone, oldest first


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    """A way a reply can leave: on `channel`, through `connector`, to `recipient`. Answering a
    message, it carries that message's channel id and subject (a mail threads under it); written
    to one of the contact's identities instead, they are empty."""

    channel: str
    recipient: str
    connector: str
    default: bool = False
    channel_message_id: str = ""
    subject: str = ""


def facts_from_rows(rows: Sequence[sqlite3.Row]) -> ReplyFacts:
    written = [Written(r["id"], r["channel"], r["connector"], r["address"], r["channel_message_id"], r["subject"])
               for r in rows if r["source"] == "message"]
    # An identity's row has its kind where a message's has its channel.
    identities = sorted((r["id"], r["channel"], r["address"]) for r in rows if r["source"] == "identity")
    return ReplyFacts(tuple(sorted(written, key=lambda w: w.id, reverse=True)),
                      tuple((kind, value) for _, kind, value in identities))


def reply_connector(ctx: ApplyContext, channel: str, inbound_connector: str) -> str:
    """The connector that answers on `channel` a message received through `inbound_connector`:
    that one when it sends on the channel (the bot or number the customer wrote to), else the
    channel's default; empty when none sends on it (web forms, phone calls)."""
    if channel in ctx.sending_connectors.get(inbound_connector, frozenset()):
        return inbound_connector
    return ctx.reply_connectors.get(channel, "")


def reply_routes(facts: ReplyFacts, ctx: ApplyContext) -> list[ReplyRoute]:
    """One route per channel, the ones the contact wrote on first (latest first), then their
    email and phone. The default is the channel they last wrote on; when that cannot be answered
    in kind (a web form, a call), the first of email, SMS, WhatsApp that can be written to."""
    routes: dict[str, ReplyRoute] = {}
    for w in facts.written:
        connector = reply_connector(ctx, w.channel, w.connector) if w.sender else ""
        if connector and w.channel not in routes:
            routes[w.channel] = ReplyRoute(w.channel, w.sender, connector, channel_message_id=w.channel_message_id,
                                           subject=w.subject)
    for kind, channel in IDENTITY_CHANNELS:
        connector = ctx.reply_connectors.get(channel, "")
        value = next((value for k, value in facts.identities if k == kind), None)
        if connector and value and channel not in routes:
            routes[channel] = ReplyRoute(channel, value, connector)
    if not routes:
        return []
    last = facts.written[0].channel if facts.written else None
    default = last if last in routes else next(
        (channel for _, channel in IDENTITY_CHANNELS if channel in routes), next(iter(routes)))
    return [replace(r, default=r.channel == default) for r in routes.values()]


@dataclass(frozen=True, slots=True)
class NoRoute:
    """Why `reply_routes` found none: the server's words, and the same as a refusal's `reason`
    (`no_reply.<what the contact wrote>.<what they can be written to>`) and `params`."""

    text: str
    reason: str
    params: dict[str, Any]


def no_route_reason(facts: ReplyFacts) -> NoRoute:
    """Why `reply_routes` found none, saying what would make a reply possible."""
    unanswered = sorted({w.channel for w in facts.written if w.sender})
    params: dict[str, Any] = {}
    if unanswered:
        wrote, params["channels"] = "unanswered", unanswered
        text = f"no connector answers the contact's {', '.join(unanswered)} messages"
    elif facts.written:
        wrote, params["channel"] = "no_sender", facts.written[0].channel
        text = f"the customer's {facts.written[0].channel} message has no sender address to answer"
    else:
        wrote, text = "not_written", "the claim's contact has not written on it"
    kinds = sorted({kind for kind, _ in facts.identities})
    if kinds:
        return NoRoute(f"{text}, and no connector writes to their {' or '.join(kinds)}", f"no_reply.{wrote}.no_writer",
                       {**params, "kinds": kinds})
    return NoRoute(f"{text}, and they have no email or phone to write to: add one to the contact",
                   f"no_reply.{wrote}.no_address", params)
