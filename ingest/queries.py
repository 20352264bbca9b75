"""Read models over the store: what the CLI, the agent API and reports show."""

from __future__ import annotations

import json
from typing import Any

from ingest.store import Store

TICKET_COLUMNS = (
    "t.id, t.ref, t.status, t.queue, t.priority, t.assignee, t.subject, t.channel, t.message_count,"
    " t.created_at, t.updated_at, t.last_inbound_at, t.last_outbound_at, t.closed_at, t.insurer,"
    " t.line_of_business, t.contact_id, c.display_name AS contact_name,"
    " (SELECT value FROM identities i WHERE i.contact_id = t.contact_id ORDER BY i.id LIMIT 1) AS contact"
)


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


async def ticket_detail(store: Store, ref: str) -> dict[str, Any] | None:
    row = await store.fetchone(
        f"SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN contacts c ON c.id = t.contact_id WHERE t.ref = ?", (ref,)
    )
    if row is None:
        return None
    messages = await store.fetchall(
        "SELECT id, direction, kind, channel, connector, channel_message_id, sender, sender_name, recipients,"
        " subject, text, display_text, auto_reason, author, sent_at, created_at FROM messages"
        " WHERE ticket_id = ? ORDER BY id",
        (row["id"],),
    )
    attachments = await store.fetchall(
        "SELECT a.message_id, a.filename, a.content_type, a.size, a.sha256, a.remote_ref FROM attachments a"
        " JOIN messages m ON m.id = a.message_id WHERE m.ticket_id = ? ORDER BY a.id",
        (row["id"],),
    )
    by_message: dict[int, list[dict[str, Any]]] = {}
    for att in attachments:
        by_message.setdefault(att["message_id"], []).append(
            {"filename": att["filename"], "content_type": att["content_type"], "size": att["size"],
             "sha256": att["sha256"], "remote_ref": att["remote_ref"] or None}
        )
    events = await store.fetchall(
        "SELECT at, kind, actor, data FROM events WHERE ticket_id = ? ORDER BY id", (row["id"],)
    )
    detail = _ticket(row, sorted({m["channel"] for m in messages}))
    detail["messages"] = [
        {
            "id": m["id"], "direction": m["direction"], "kind": m["kind"], "channel": m["channel"],
            "connector": m["connector"], "channel_message_id": m["channel_message_id"], "sender": m["sender"],
            "sender_name": m["sender_name"], "recipients": json.loads(m["recipients"] or "[]"),
            "subject": m["subject"], "text": m["text"], "display_text": m["display_text"],
            "auto_reason": m["auto_reason"] or None, "author": m["author"] or None,
            "sent_at": m["sent_at"], "created_at": m["created_at"],
            "attachments": by_message.get(m["id"], []),
        }
        for m in messages
    ]
    detail["timeline"] = [
        {"at": e["at"], "kind": e["kind"], "actor": e["actor"], **json.loads(e["data"])} for e in events
    ]
    return detail


async def list_quarantine(store: Store, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    rows = await store.fetchall(
        "SELECT q.id, q.inbox_id, q.error, q.traceback, q.created_at, q.resolved_at, i.channel, i.connector,"
        " i.dedupe_key, length(i.body) AS size FROM quarantine q JOIN inbox i ON i.id = q.inbox_id"
        + ("" if include_resolved else " WHERE q.resolved_at IS NULL") + " ORDER BY q.id"
    )
    return [dict(row) for row in rows]


async def list_unthreaded(store: Store) -> list[dict[str, Any]]:
    rows = await store.fetchall(
        "SELECT id AS inbox_id, channel, connector, dedupe_key, received_at FROM inbox WHERE state = 'unthreaded'"
        " ORDER BY id"
    )
    return [dict(row) for row in rows]


async def conversation_history(store: Store, conversation_key: str, limit: int = 50) -> list[dict[str, Any]]:
    """The latest messages of the ticket this conversation is on (customer and agent side), oldest
    first, without internal notes: what a web-chat visitor sees after a reload."""
    ticket = await store.fetchone(
        "SELECT id FROM tickets WHERE conversation_key = ? ORDER BY updated_at DESC LIMIT 1", (conversation_key,)
    )
    if ticket is None:
        return []
    rows = await store.fetchall(
        "SELECT id, direction, channel, channel_message_id, display_text, created_at FROM messages"
        " WHERE ticket_id = ? AND kind != 'note' ORDER BY id DESC LIMIT ?",
        (ticket["id"], limit),
    )
    return [dict(row) for row in reversed(rows)]
