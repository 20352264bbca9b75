"""Read models over the store: what the CLI, the agent API and reports show."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.base import Normaliser
from ingest.reply_routes import REPLY_FACTS, ReplyFacts, facts_from_rows
from ingest.store import Store

TICKET_COLUMNS = (
    "t.id, t.ref, t.status, t.queue, t.priority, t.assignee, t.subject, t.channel, t.message_count,"
    " t.created_at, t.updated_at, t.last_inbound_at, t.last_outbound_at, t.closed_at, t.insurer,"
    " t.line_of_business, t.sla_policy, t.contact_id, c.display_name AS contact_name,"
    " (SELECT value FROM identities i WHERE i.contact_id = t.contact_id ORDER BY i.id LIMIT 1) AS contact"
)


# Whether a customer message's sender is one of the claim contact's own identities (matched by
# kind and value, as replies are): anyone naming a claim reference threads onto it, and the console
# marks who is not the contact. NULL for our own messages, notes and an insurer's filing.
FROM_CONTACT = (
    "CASE WHEN m.direction != 'in' OR m.channel = 'api' THEN NULL ELSE EXISTS (SELECT 1 FROM identities i"
    " WHERE i.kind = m.sender_kind AND i.value = m.sender AND i.contact_id = t.contact_id) END AS from_contact"
)


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _ticket(row: Any, channels: list[str]) -> dict[str, Any]:
    return {
        "reference": row["ref"],
        "status": row["status"],
        "queue": row["queue"],
        "priority": row["priority"],
        "assignee": row["assignee"],
        "contact": {"id": row["contact_id"], "name": row["contact_name"], "identity": row["contact"]},
        "subject": row["subject"],
        "channels": channels,
        "message_count": row["message_count"],
        "insurer": row["insurer"],
        "line_of_business": row["line_of_business"],
        "sla_policy": row["sla_policy"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "last_inbound_at": row["last_inbound_at"],
        "last_outbound_at": row["last_outbound_at"],
        "closed_at": row["closed_at"],
    }


async def list_tickets(store: Store, *, status: str | None = None, queue: str | None = None,
                       limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    where, params = [], []
    if status:
        where.append("t.status = ?")
        params.append(status)
    if queue:
        where.append("t.queue = ?")
        params.append(queue)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await store.fetchall(
        f"SELECT {TICKET_COLUMNS}, (SELECT group_concat(DISTINCT m.channel) FROM messages m WHERE m.ticket_id = t.id)"
        f" AS channels FROM tickets t LEFT JOIN contacts c ON c.id = t.contact_id {clause}"
        " ORDER BY t.updated_at DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return [_ticket(row, sorted((row["channels"] or "").split(",")) if row["channels"] else []) for row in rows]


_MESSAGE_COLUMNS = (
    "m.id, m.direction, m.kind, m.channel, m.connector, m.channel_message_id, m.sender, m.sender_name,"
    " m.recipients, m.subject, m.text, m.display_text, m.auto_reason, m.author, m.sent_at, m.created_at"
)


async def _messages(store: Store, where: str, params: tuple[Any, ...], *, newest: int | None = None,
                    ref: bool = False) -> list[dict[str, Any]]:
    """Thread messages (`where` over `messages m`), oldest first, with their attachments; only
    the `newest` of them when given (read newest first from the (ticket, id) index, so a
    window of a long thread reads that window only). `ref`: with their ticket's reference."""
    joined = f", {FROM_CONTACT}{', t.ref' if ref else ''} FROM messages m JOIN tickets t ON t.id = m.ticket_id"
    if newest is None:
        rows = await store.fetchall(f"SELECT {_MESSAGE_COLUMNS}{joined} WHERE {where} ORDER BY m.id", params)
    else:
        rows = await store.fetchall(f"SELECT {_MESSAGE_COLUMNS}{joined} WHERE {where} ORDER BY m.id DESC LIMIT ?",
                                    (*params, newest))
        rows.reverse()
    if not rows:
        return []
    # The window's id range of the ticket: one index range, however many messages it holds.
    attachments = await store.fetchall(
        "SELECT a.message_id, a.filename, a.content_type, a.size, a.sha256, a.remote_ref FROM attachments a"
        " JOIN messages m ON m.id = a.message_id WHERE m.id BETWEEN ? AND ? AND " + where + " ORDER BY a.id",
        (rows[0]["id"], rows[-1]["id"], *params),
    )
    by_message: dict[int, list[dict[str, Any]]] = {}
    for att in attachments:
        by_message.setdefault(att["message_id"], []).append(
            {"filename": att["filename"], "content_type": att["content_type"], "size": att["size"],
             "sha256": att["sha256"], "remote_ref": att["remote_ref"] or None}
        )
    return [
        {**dict(m), "recipients": json.loads(m["recipients"] or "[]"), "auto_reason": m["auto_reason"] or None,
         "author": m["author"] or None, "from_contact": _flag(m["from_contact"]),
         "attachments": by_message.get(m["id"], [])}
        for m in rows
    ]


def _timeline(rows: list[Any]) -> list[dict[str, Any]]:
    return [{"at": e["at"], "kind": e["kind"], "actor": e["actor"], **json.loads(e["data"])} for e in rows]


async def ticket_detail(store: Store, ref: str) -> dict[str, Any] | None:
    """The ticket with its whole thread and timeline (the CLI's `tickets show`; the agent API
    reads windows of it: `thread_window`, `timeline_span`)."""
    row = await store.fetchone(
        f"SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN contacts c ON c.id = t.contact_id WHERE t.ref = ?", (ref,)
    )
    if row is None:
        return None
    messages = await _messages(store, "m.ticket_id = ?", (row["id"],))
    events = await store.fetchall(
        "SELECT at, kind, actor, data FROM events WHERE ticket_id = ? ORDER BY id", (row["id"],)
    )
    detail = _ticket(row, sorted({m["channel"] for m in messages}))
    detail["messages"] = messages
    detail["timeline"] = _timeline(events)
    return detail


_OF_TICKET = "m.ticket_id = (SELECT id FROM tickets WHERE ref = ?)"


async def thread_window(store: Store, ref: str, *, before: int | None, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` messages of ticket `ref`'s thread older than message `before` (or
    of all of it), oldest first."""
    if before is None:
        return await _messages(store, _OF_TICKET, (ref,), newest=limit)
    return await _messages(store, f"{_OF_TICKET} AND m.id < ?", (ref, before), newest=limit)


async def messages_before(store: Store, ref: str, message_id: int) -> int:
    """How many messages of ticket `ref`'s thread are older than message `message_id`."""
    row = await store.fetchone(f"SELECT count(*) AS n FROM messages m WHERE {_OF_TICKET} AND m.id < ?",
                               (ref, message_id))
    return int(row["n"]) if row else 0


async def reply_facts(store: Store, ref: str) -> ReplyFacts:
    """What `reply_routes` decides from for ticket `ref`, as `agent_reply` reads it."""
    return facts_from_rows(await store.fetchall(REPLY_FACTS, {"ref": ref}))


async def timeline_span(store: Store, ref: str, *, start: str | None, end: str | None) -> list[dict[str, Any]]:
    """Ticket `ref`'s timeline events from `start` (None: its beginning) until before `end`
    (None: now), in order."""
    rows = await store.fetchall(
        "SELECT at, kind, actor, data FROM events WHERE ticket_id = (SELECT id FROM tickets WHERE ref = ?)"
        " AND at >= coalesce(?, '') AND (? IS NULL OR at < ?) ORDER BY id",
        (ref, start, end, end),
    )
    return _timeline(rows)


async def list_quarantine(store: Store, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    rows = await store.fetchall(
        "SELECT q.id, q.inbox_id, q.error, q.traceback, q.created_at, q.resolved_at, i.channel, i.connector,"
        " i.dedupe_key, r.size FROM quarantine q JOIN inbox i ON i.id = q.inbox_id"
        " JOIN inbox_raw r ON r.inbox_id = i.id"
        + ("" if include_resolved else " WHERE q.resolved_at IS NULL") + " ORDER BY q.id"
    )
    return [dict(row) for row in rows]


async def list_unthreaded(store: Store, normalisers: Mapping[str, Normaliser] | None = None) -> list[dict[str, Any]]:
    """Automatic messages kept unthreaded; with `normalisers` (fmt -> normaliser), with their
    `sender` and `subject` too (see `_unthreaded_head`)."""
    rows = await store.fetchall(
        "SELECT id AS inbox_id, channel, connector, dedupe_key, received_at FROM inbox WHERE state = 'unthreaded'"
        " ORDER BY id"
    )
    found = [dict(row) for row in rows]
    if normalisers is not None:
        for row in found:
            row.update(await _unthreaded_head(store, row["inbox_id"], normalisers))
    return found


async def _unthreaded_head(store: Store, inbox_id: int, normalisers: Mapping[str, Normaliser]) -> dict[str, Any]:
    """Sender and subject of an unthreaded payload, read again from its raw bytes: no message row
    keeps them. None where its normaliser is not installed or now fails on it. One payload at a
    time: a bounce can carry the whole mail it returns."""
    from ingest.service import INBOX_COLUMNS, INBOX_FROM, payload_from_row

    row = await store.fetchone(f"SELECT {INBOX_COLUMNS} FROM {INBOX_FROM} WHERE inbox.id = ?", (inbox_id,))
    normaliser = normalisers.get(row["fmt"]) if row else None
    try:
        msg = normaliser(payload_from_row(row)) if normaliser and row else None
    except Exception:  # it was normalised once; a listing must not stop at one that changed since
        msg = None
    return {"sender": msg.sender.value or None, "subject": msg.subject} if msg else {"sender": None, "subject": None}


async def conversation_history(store: Store, conversation_key: str, limit: int = 50) -> list[dict[str, Any]]:
    """The latest messages of the ticket this conversation is on (customer and agent side), oldest
    first, without internal notes: what a web-chat visitor sees after a reload. Web chat messages
    accepted but not threaded yet (or quarantined) come last, shaped like messages: they were
    acknowledged, so the widget no longer holds them. One statement: one snapshot, so a message
    threaded meanwhile is read once, from one table or the other."""
    # A web chat inbox key is "webchat:<session>:<client id>": the conversation key and ":", so
    # its rows are the index range from there up to the key and ";" (the character after ":").
    prefix = f"{conversation_key}:"
    rows = await store.fetchall(
        "SELECT id, direction, channel, channel_message_id, display_text, created_at FROM ("
        " SELECT *, 0 AS pending FROM ("
        "  SELECT id, direction, channel, channel_message_id, display_text, created_at FROM messages"
        "  WHERE kind != 'note' AND direction != 'internal' AND ticket_id ="
        "   (SELECT id FROM tickets WHERE conversation_key = :key ORDER BY updated_at DESC LIMIT 1)"
        "  ORDER BY id DESC LIMIT :limit)"
        " UNION ALL"
        " SELECT i.id, 'in', i.channel, json_extract(CAST(r.body AS TEXT), '$.client_id'),"
        "  json_extract(CAST(r.body AS TEXT), '$.text'), i.received_at, 1"
        "  FROM inbox i JOIN inbox_raw r ON r.inbox_id = i.id"
        "  WHERE i.dedupe_key >= :prefix AND i.dedupe_key < :past AND i.state IN ('pending', 'quarantined')"
        " ORDER BY pending DESC, id DESC LIMIT :limit"
        ") ORDER BY pending, id",
        {"key": conversation_key, "prefix": prefix, "past": f"{conversation_key};", "limit": limit},
    )
    return [dict(row) for row in rows]


# -- agent API read models ----------------------------------------------------------------------
# `queues` is the set an agent may see, or None for all (supervisors); filtering happens in SQL
# so an agent never receives a row of a queue it is not a member of.

# A customer is waiting when they wrote last (an automatic acknowledgement is not an answer).
_WAITING = ("t.status != 'closed' AND t.last_inbound_at IS NOT NULL"
            " AND (t.last_outbound_at IS NULL OR t.last_inbound_at > t.last_outbound_at)")
_SUMMARY_SQL = (
    f"SELECT {TICKET_COLUMNS}, t.merged_into, CASE WHEN {_WAITING} THEN t.last_inbound_at END AS waiting_since,"
    " (SELECT group_concat(DISTINCT m.channel) FROM messages m WHERE m.ticket_id = t.id AND m.kind != 'note')"
    " AS channels FROM tickets t LEFT JOIN contacts c ON c.id = t.contact_id"
)


def _queue_filter(queues: frozenset[str] | None) -> tuple[str, list[Any]]:
    if queues is None:
        return "1", []
    return f"t.queue IN ({','.join('?' * len(queues))})" if queues else "0", sorted(queues)


def _summary(row: Any) -> dict[str, Any]:
    ticket = _ticket(row, sorted(row["channels"].split(",")) if row["channels"] else [])
    ticket["waiting_since"] = row["waiting_since"]
    ticket["merged_into"] = row["merged_into"]
    return ticket


# The earliest instant of a ticket's running SLA clocks: the one its countdown shows.
_RUNNING = ("(SELECT min(c.{0}) FROM sla_clocks c WHERE c.ticket_id = t.id AND c.met_at IS NULL"
            " AND c.due_at IS NOT NULL)")
_RUNNING_DUE = _RUNNING.format("due_at")


def _past(cutoffs: dict[str, str], mark: str, now: str | None) -> tuple[str, list[Any]]:
    """SQL truth of "ticket t is past `mark` (a running clock's warning or due instant) at
    `now`", or, for a ticket with no running clock, of "its customer has waited since before the
    priority's cutoff" (`cutoffs`: priority -> ISO instant); with its parameters."""
    cases = " ".join("WHEN ? THEN ?" for _ in cutoffs)
    values: list[Any] = [v for pair in cutoffs.items() for v in pair]
    fallback = f"({_WAITING} AND t.last_inbound_at < CASE t.priority {cases} END)" if cutoffs else "0"
    if now is None:
        return fallback, values
    return (f"(CASE WHEN {_RUNNING_DUE} IS NOT NULL THEN coalesce({mark}, {_RUNNING_DUE}) <= ? ELSE {fallback} END)",
            [now, *values])


def _risk_and_breach(warn_before: dict[str, str], breach_before: dict[str, str],
                     now: str | None) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
    """`_past` of the warning and of the due instant: at risk, breached."""
    return _past(warn_before, _RUNNING.format("warn_at"), now), _past(breach_before, _RUNNING_DUE, now)


async def queue_overview(store: Store, queues: frozenset[str] | None, *, warn_before: dict[str, str],
                         breach_before: dict[str, str], now: str | None = None) -> list[dict[str, Any]]:
    """Per queue: open tickets, unassigned, customers waiting and since when; `at_risk` and
    `breached` count the tickets past their warning or due time (see `_past`)."""
    visible, params = _queue_filter(queues)
    (risk_sql, risk_params), (breach_sql, breach_params) = _risk_and_breach(warn_before, breach_before, now)
    rows = await store.fetchall(
        f"SELECT t.queue, count(*) AS open, sum(t.assignee IS NULL) AS unassigned, sum({_WAITING}) AS waiting,"
        f" min(CASE WHEN {_WAITING} THEN t.last_inbound_at END) AS oldest_waiting,"
        f" sum({risk_sql}) AS at_risk, sum({breach_sql}) AS breached"
        f" FROM tickets t WHERE t.status != 'closed' AND {visible} GROUP BY t.queue ORDER BY t.queue",
        (*risk_params, *breach_params, *params),
    )
    found = {row["queue"]: dict(row) for row in rows}
    for queue in queues or ():  # a member queue with nothing in it still shows, with zeros
        found.setdefault(queue, {"queue": queue, "open": 0, "unassigned": 0, "waiting": 0, "oldest_waiting": None,
                                 "at_risk": 0, "breached": 0})
    return [found[q] for q in sorted(found)]


async def tickets_at_risk(store: Store, queues: frozenset[str] | None, *, warn_before: dict[str, str],
                          breach_before: dict[str, str], now: str, limit: int = 50) -> list[dict[str, Any]]:
    """The open tickets `queue_overview` counts at risk, breached first, then the soonest due:
    `ref`, `due_at` (None for a ticket with no running clock) and `breached`."""
    visible, params = _queue_filter(queues)
    (risk_sql, risk_params), (breach_sql, breach_params) = _risk_and_breach(warn_before, breach_before, now)
    rows = await store.fetchall(
        f"SELECT t.ref, {_RUNNING_DUE} AS due_at, {breach_sql} AS breached FROM tickets t"
        f" WHERE t.status != 'closed' AND {visible} AND {risk_sql}"
        " ORDER BY breached DESC, coalesce(due_at, t.last_inbound_at) LIMIT ?",
        (*breach_params, *params, *risk_params, limit))
    return [{"ref": row["ref"], "due_at": row["due_at"], "breached": bool(row["breached"])} for row in rows]


async def ticket_page(
    store: Store, queues: frozenset[str] | None, *, queue: str | None = None, status: str | None = None,
    assignee: str | None = None, after: tuple[str, int] | None = None, limit: int = 100,
) -> dict[str, Any]:
    """One page of tickets, most recently updated first: those after `after` (the
    `(updated_at, id)` of the last ticket of the page before) in that order. A page starts
    where the last one ended however many tickets arrived, changed or closed meanwhile (an
    offset moved with them: rows were repeated or skipped), and costs the same at any depth.
    `next` is the last ticket's key when more follow (else None); `total`, the count for the
    filters, comes with the first page only: counting is what costs. `status`: None for every
    open ticket, "all", or one status."""
    visible, params = _queue_filter(queues)
    where = [visible]
    if queue:
        where.append("t.queue = ?")
        params.append(queue)
    if status is None:
        where.append("t.status != 'closed'")
    elif status != "all":
        where.append("t.status = ?")
        params.append(status)
    if assignee:
        where.append("t.assignee = ?")
        params.append(assignee)
    clause = " AND ".join(where)
    page: dict[str, Any] = {}
    if after is None:
        page["total"] = (await store.fetchone(f"SELECT count(*) AS n FROM tickets t WHERE {clause}", params))["n"]
    else:  # a row value: SQLite walks the (updated_at, id) index from there
        clause += " AND (t.updated_at, t.id) < (?, ?)"
        params += list(after)
    rows = await store.fetchall(
        f"{_SUMMARY_SQL} WHERE {clause} ORDER BY t.updated_at DESC, t.id DESC LIMIT ?", (*params, limit + 1))
    more = len(rows) > limit
    page["tickets"] = [_summary(row) for row in rows[:limit]]
    page["next"] = (rows[limit - 1]["updated_at"], rows[limit - 1]["id"]) if more else None
    return page


async def ticket_summaries(store: Store, refs: list[str]) -> list[dict[str, Any]]:
    if not refs:
        return []
    rows = await store.fetchall(f"{_SUMMARY_SQL} WHERE t.ref IN ({','.join('?' * len(refs))})", refs)
    return [_summary(row) for row in rows]


async def ticket_queue(store: Store, ref: str) -> str | None:
    row = await store.fetchone("SELECT queue FROM tickets WHERE ref = ?", (ref,))
    return row["queue"] if row else None


async def contact_panel(store: Store, contact_id: int | None, *, limit: int = 20,
                        queues: frozenset[str] | None = None) -> dict[str, Any] | None:
    """Who the customer is: identities on every channel and their other claims (in `queues`,
    None: any; filtered before the limit, so claims elsewhere cannot crowd the agent's out)."""
    if contact_id is None:
        return None
    contact = await store.fetchone(
        "SELECT id, display_name, organisation, role, tags FROM contacts WHERE id = ?", (contact_id,)
    )
    if contact is None:
        return None
    identities = await store.fetchall(
        "SELECT kind, value, display_name FROM identities WHERE contact_id = ? ORDER BY id", (contact_id,)
    )
    visible, params = _queue_filter(queues)
    tickets = await store.fetchall(
        f"SELECT t.ref, t.status, t.queue, t.insurer, t.subject, t.updated_at FROM tickets t WHERE t.contact_id = ?"
        f" AND {visible} ORDER BY t.updated_at DESC LIMIT ?",
        (contact_id, *params, limit),
    )
    return {**dict(contact), "identities": [dict(i) for i in identities], "tickets": [dict(t) for t in tickets]}


async def message_sender(store: Store, ref: str, message_id: int) -> dict[str, Any] | None:
    """A customer message of claim `ref`: its sender's identity, the contact holding it (None: no
    one's), and the claim's contact."""
    row = await store.fetchone(
        "SELECT m.sender_kind, m.sender, m.channel, t.contact_id AS claim_contact, i.contact_id AS sender_contact"
        " FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " LEFT JOIN identities i ON i.kind = m.sender_kind AND i.value = m.sender"
        " WHERE m.id = ? AND t.ref = ? AND m.direction = 'in'", (message_id, ref))
    return dict(row) if row is not None else None


async def thread_messages(store: Store, ids: list[int]) -> list[dict[str, Any]]:
    """Messages by row id, shaped like ticket_detail's with their ticket's `ref`, for pushing one
    new message."""
    if not ids:
        return []
    return await _messages(store, f"m.id IN ({','.join('?' * len(ids))})", tuple(ids), ref=True)


async def events_after(store: Store, after_id: int, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Timeline events newer than `after_id`, oldest first, with their ticket's ref and queue:
    the live feed, and the catch-up of a console that reconnects."""
    rows = await store.fetchall(
        "SELECT e.id, e.at, e.kind, e.actor, e.data, t.ref, t.queue FROM events e JOIN tickets t ON t.id = e.ticket_id"
        " WHERE e.id > ? ORDER BY e.id LIMIT ?",
        (after_id, limit),
    )
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows]


async def last_event_id(store: Store) -> int:
    row = await store.fetchone("SELECT coalesce(max(id), 0) AS n FROM events")
    return row["n"]


async def agent_load(store: Store) -> list[dict[str, Any]]:
    """Open tickets per assignee, and how many of them have a customer waiting."""
    rows = await store.fetchall(
        f"SELECT t.assignee, count(*) AS open, sum({_WAITING}) AS waiting, min(CASE WHEN {_WAITING}"
        " THEN t.last_inbound_at END) AS oldest_waiting FROM tickets t"
        " WHERE t.assignee IS NOT NULL AND t.status != 'closed' GROUP BY t.assignee ORDER BY t.assignee"
    )
    return [dict(row) for row in rows]


async def last_message_id(store: Store) -> int:
    row = await store.fetchone("SELECT coalesce(max(id), 0) AS n FROM messages")
    return int(row["n"]) if row else 0


async def unindexed_messages(store: Store, *, limit: int = 2000) -> list[dict[str, Any]]:
    """Messages past the index's mark that it does not hold, oldest first."""
    rows = await store.fetchall(
        "SELECT m.id, m.subject, m.text, m.sender, m.sender_name FROM messages m"
        " WHERE m.id > (SELECT last_message_id FROM search_state WHERE id = 1)"
        " AND NOT EXISTS (SELECT 1 FROM search_index s WHERE s.rowid = m.id) ORDER BY m.id LIMIT ?",
        (limit,),
    )
    return [dict(row) for row in rows]


async def search_ticket_refs(
    store: Store, *, refs: list[str], identities: list[tuple[str, str]], match: str,
    queues: frozenset[str] | None, limit: int = 50,
) -> list[str]:
    """Tickets found by claim reference, by a contact identity, or by an FTS5 `match` over the
    Persian-normalised index (see ingest.search_index); most recently updated first."""
    visible, vparams = _queue_filter(queues)
    parts: list[str] = []
    params: list[Any] = []
    if refs:
        parts.append(f"SELECT t.id FROM tickets t WHERE t.ref IN ({','.join('?' * len(refs))})")
        params += refs
    for kind, value in identities:
        parts.append("SELECT t.id FROM tickets t JOIN identities i ON i.contact_id = t.contact_id"
                     " WHERE i.kind = ? AND i.value = ?")
        params += [kind, value]
    if match:
        parts.append("SELECT m.ticket_id FROM search_index s JOIN messages m ON m.id = s.rowid"
                     " WHERE search_index MATCH ?")
        params.append(match)
    if not parts:
        return []
    rows = await store.fetchall(
        f"SELECT t.ref FROM tickets t WHERE t.id IN ({' UNION '.join(parts)}) AND {visible}"
        " ORDER BY t.updated_at DESC LIMIT ?",
        (*params, *vparams, limit),
    )
    return [row["ref"] for row in rows]


async def messages_with_unfetched_files(store: Store) -> list[int]:
    """Messages with an attachment the channel only names, neither downloaded nor recorded as
    failed on the ticket's timeline: their download was cut short (a stop, a crash)."""
    rows = await store.fetchall(
        "SELECT DISTINCT a.message_id FROM attachments a JOIN messages m ON m.id = a.message_id"
        " WHERE a.sha256 IS NULL AND a.remote_ref != '' AND NOT EXISTS (SELECT 1 FROM events e"
        " WHERE e.ticket_id = m.ticket_id AND e.kind = 'attachment_fetch_failed'"
        " AND json_extract(e.data, '$.filename') = a.filename) ORDER BY a.message_id")
    return [row["message_id"] for row in rows]


async def ticket_ref_for_inbox(store: Store, inbox_id: int) -> str | None:
    """The reference of the ticket an accepted message was threaded on; None until processed."""
    row = await store.fetchone(
        "SELECT t.ref FROM inbox i JOIN messages m ON m.id = i.message_row JOIN tickets t ON t.id = m.ticket_id"
        " WHERE i.id = ?",
        (inbox_id,),
    )
    return row["ref"] if row else None


async def running_sla_clocks(store: Store, refs: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """ref -> (due, warn) of the ticket's earliest running SLA clock (not met, not paused)."""
    if not refs:
        return {}
    marks = ",".join("?" * len(refs))
    rows = await store.fetchall(
        f"SELECT t.ref, min(c.due_at) AS due_at, min(c.warn_at) AS warn_at FROM sla_clocks c"
        f" JOIN tickets t ON t.id = c.ticket_id WHERE t.ref IN ({marks}) AND c.met_at IS NULL"
        " AND c.due_at IS NOT NULL GROUP BY t.ref",
        tuple(refs),
    )
    return {row["ref"]: (row["due_at"], row["warn_at"]) for row in rows}
