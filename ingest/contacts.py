"""The CRM view of a customer: one profile across channels (identities, organisation and role,
claims, interactions, notes, tags), merging two contacts and undoing it, splitting an identity
off, and suggestions of contacts that are probably the same person.

Every change is a write operation with an audit-trail row in the same transaction. A merge
records exactly which identities, tickets and notes moved, so undo puts back those and only
those (what arrived on the kept contact since stays there).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ingest.agents import write_audit
from ingest.refusal import Refusal
from ingest.store import Store, Tx
from router.identity import normalize_email, normalize_national_id, normalize_phone

ROLES = ("policyholder", "claimant", "insurer", "broker", "reinsurer", "garage", "hospital", "witness", "other")


class ContactError(Refusal, ValueError):
    """A contact operation that cannot be done as asked (unknown contact, undo of an undo...)."""


# -- reads --------------------------------------------------------------------------------------


def _tags(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


async def contact_profile(store: Store, contact_id: int, *, interactions: int = 100,
                          queues: frozenset[str] | None = None) -> dict[str, Any] | None:
    """`queues`: the interactions are the last ones on claims in these queues (None: any), so a
    busy claim elsewhere does not push an agent's own claims out of the window."""
    contact = await store.fetchone(
        "SELECT id, display_name, organisation, role, tags, merged_into, created_at FROM contacts WHERE id = ?",
        (contact_id,))
    if contact is None:
        return None
    identities = await store.fetchall(
        "SELECT id, kind, value, display_name, created_at FROM identities WHERE contact_id = ? ORDER BY kind, id",
        (contact_id,))
    claims = await store.fetchall(
        "SELECT ref, status, queue, insurer, line_of_business, subject, channel, created_at, updated_at, closed_at"
        " FROM tickets WHERE contact_id = ? ORDER BY created_at DESC", (contact_id,))
    in_queues = "" if queues is None else f" AND t.queue IN ({','.join('?' * len(queues))})"
    messages = await store.fetchall(
        "SELECT t.ref, m.id, m.direction, m.kind, m.channel, m.sender, m.subject, m.display_text, m.created_at"
        f" FROM tickets t JOIN messages m ON m.ticket_id = t.id WHERE t.contact_id = ? AND m.kind != 'note'{in_queues}"
        " ORDER BY m.id DESC LIMIT ?", (contact_id, *sorted(queues or ()), interactions))
    notes = await store.fetchall(
        "SELECT id, author, text, created_at FROM contact_notes WHERE contact_id = ? ORDER BY id", (contact_id,))
    merges = await store.fetchall(
        "SELECT id, at, actor, kept_id, merged_id, undone_at FROM contact_merges WHERE kept_id = ? OR merged_id = ?"
        " ORDER BY id", (contact_id, contact_id))
    channels: dict[str, int] = defaultdict(int)
    for m in messages:
        channels[m["channel"]] += 1
    return {
        **{k: contact[k] for k in ("id", "display_name", "organisation", "role", "merged_into", "created_at")},
        "tags": _tags(contact["tags"]),
        "identities": [dict(i) for i in identities],
        "claims": [dict(c) for c in claims],
        "interactions": [dict(m) for m in messages],
        "channels": dict(channels),
        "notes": [dict(n) for n in notes],
        "merges": [dict(m) for m in merges],
    }


_REASONS = {"national_id": "same national id", "phone": "same phone in another format",
            "email": "same email with different case"}


def _match_key(kind: str, value: str) -> tuple[str, str] | None:
    """The canonical form two identities share when they are the same national id, phone or
    e-mail written differently."""
    if kind == "national_id":
        canonical = normalize_national_id(value)
    elif kind == "phone":
        canonical = normalize_phone(value)
    elif kind == "email":
        canonical = normalize_email(value) or value.strip().lower()
    else:
        return None
    return (kind, canonical) if canonical else None


async def duplicate_suggestions(store: Store, *, limit: int = 200) -> list[dict[str, Any]]:
    """Groups of live contacts that share a national id, a phone number (in any spelling) or an
    e-mail address (in any case). Suggestions only: an agent decides and merges."""
    rows = await store.fetchall(
        "SELECT i.contact_id, i.kind, i.value FROM identities i JOIN contacts c ON c.id = i.contact_id"
        " WHERE c.merged_into IS NULL AND i.kind IN ('national_id', 'phone', 'email')")
    by_key: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for row in rows:
        key = _match_key(row["kind"], row["value"])
        if key:
            by_key[key].setdefault(row["contact_id"], row["value"])
    found = [
        {"reason": _REASONS[kind], "kind": kind, "value": canonical, "contact_ids": sorted(holders),
         "as_written": [holders[c] for c in sorted(holders)]}
        for (kind, canonical), holders in by_key.items() if len(holders) > 1
    ]
    order = list(_REASONS)
    found.sort(key=lambda s: (order.index(s["kind"]), s["contact_ids"]))
    return found[:limit]


# -- writes -------------------------------------------------------------------------------------


def _live_contact(tx: Tx, contact_id: int) -> Any:
    row = tx.one("SELECT id, display_name, tags, merged_into FROM contacts WHERE id = ?", (contact_id,))
    if row is None:
        raise ContactError(f"no contact {contact_id}", "no_contact", contact=contact_id)
    if row["merged_into"]:
        raise ContactError(f"contact {contact_id} was merged into {row['merged_into']}", "contact_merged",
                           contact=contact_id, into=row["merged_into"])
    return row


def add_contact_note(contact_id: int, text: str, author: str) -> Callable[[Tx], int]:
    if not text.strip():
        raise ContactError("a note needs some text")

    def op(tx: Tx) -> int:
        _live_contact(tx, contact_id)
        note_id = tx.execute("INSERT INTO contact_notes (contact_id, author, text, created_at) VALUES (?, ?, ?, ?)",
                             (contact_id, author, text, tx.stamp)).lastrowid
        write_audit(tx, author, "contact_note", detail={"contact": contact_id, "note": note_id})
        return note_id

    return op


def update_contact(contact_id: int, actor: str, *, display_name: str | None = None, organisation: str | None = None,
                   role: str | None = None, tags: list[str] | None = None) -> Callable[[Tx], None]:
    if role is not None and role not in ROLES:
        raise ContactError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    changes = {k: v for k, v in (("display_name", display_name), ("organisation", organisation), ("role", role),
                                  ("tags", None if tags is None else ",".join(dict.fromkeys(t.strip() for t in tags
                                                                                             if t.strip()))))
               if v is not None}

    def op(tx: Tx) -> None:
        _live_contact(tx, contact_id)
        if changes:
            tx.execute(f"UPDATE contacts SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                       (*changes.values(), contact_id))
            write_audit(tx, actor, "contact_update", detail={"contact": contact_id, **changes})

    return op


def merge_contacts(keep_id: int, merge_id: int, actor: str) -> Callable[[Tx], int]:
    """Fold contact `merge_id` into `keep_id`: its identities, claims and notes move over, its tags
    join the kept ones. Returns the merge-log id that `undo_merge` takes."""
    if keep_id == merge_id:
        raise ContactError("cannot merge a contact into itself", "contact_merge_into_itself", contact=keep_id)

    def op(tx: Tx) -> int:
        keep = _live_contact(tx, keep_id)
        merged = _live_contact(tx, merge_id)
        moved = {table: [r[0] for r in tx.execute(f"SELECT id FROM {table} WHERE contact_id = ?", (merge_id,))]
                 for table in ("identities", "tickets", "contact_notes")}
        for table in moved:
            tx.execute(f"UPDATE {table} SET contact_id = ? WHERE contact_id = ?", (keep_id, merge_id))
        moved["tags_before"] = keep["tags"]  # type: ignore[assignment]
        tags = ",".join(dict.fromkeys([*_tags(keep["tags"]), *_tags(merged["tags"])]))
        name = keep["display_name"] or merged["display_name"]
        tx.execute("UPDATE contacts SET tags = ?, display_name = ? WHERE id = ?", (tags, name, keep_id))
        tx.execute("UPDATE contacts SET merged_into = ? WHERE id = ?", (keep_id, merge_id))
        log_id = tx.execute(
            "INSERT INTO contact_merges (at, actor, kept_id, merged_id, moved) VALUES (?, ?, ?, ?, ?)",
            (tx.stamp, actor, keep_id, merge_id, json.dumps(moved)),
        ).lastrowid
        write_audit(tx, actor, "contact_merge", detail={"kept": keep_id, "merged": merge_id, "merge": log_id,
                                                       **{k: len(v) for k, v in moved.items() if k != "tags_before"}})
        tx.emit("contacts_merged", kept=keep_id, merged=merge_id)
        return log_id

    return op


def undo_merge(merge_log_id: int, actor: str) -> Callable[[Tx], int]:
    """Split a merge back: the merged contact lives again and takes back what the merge moved.
    Returns the restored contact's id."""

    def op(tx: Tx) -> int:
        log = tx.one("SELECT kept_id, merged_id, moved, undone_at FROM contact_merges WHERE id = ?", (merge_log_id,))
        if log is None:
            raise ContactError(f"no merge {merge_log_id}")
        if log["undone_at"]:
            raise ContactError(f"merge {merge_log_id} was already undone at {log['undone_at']}", "merge_already_undone",
                               merge=merge_log_id)
        moved = json.loads(log["moved"])
        for table in ("identities", "tickets", "contact_notes"):
            ids = moved[table]
            if ids:
                tx.execute(
                    f"UPDATE {table} SET contact_id = ? WHERE contact_id = ? AND id IN ({','.join('?' * len(ids))})",
                    (log["merged_id"], log["kept_id"], *ids))
        tx.execute("UPDATE contacts SET tags = ? WHERE id = ?", (moved["tags_before"], log["kept_id"]))
        tx.execute("UPDATE contacts SET merged_into = NULL WHERE id = ?", (log["merged_id"],))
        tx.execute("UPDATE contact_merges SET undone_at = ? WHERE id = ?", (tx.stamp, merge_log_id))
        write_audit(tx, actor, "contact_merge_undone", detail={"merge": merge_log_id, "restored": log["merged_id"]})
        tx.emit("contacts_unmerged", kept=log["kept_id"], restored=log["merged_id"])
        return log["merged_id"]

    return op


def split_identity(identity_id: int, actor: str, *, with_claims: bool = True) -> Callable[[Tx], int]:
    """Move one identity to a new contact of its own (a shared family phone, a wrong merge).
    With `with_claims`, the claims whose customer messages all came from that identity follow it.
    Returns the new contact's id."""

    def op(tx: Tx) -> int:
        ident = tx.one("SELECT id, contact_id, kind, value, display_name FROM identities WHERE id = ?", (identity_id,))
        if ident is None:
            raise ContactError(f"no identity {identity_id}")
        others = tx.one("SELECT count(*) AS n FROM identities WHERE contact_id = ? AND id != ?",
                        (ident["contact_id"], identity_id))["n"]
        if not others:
            raise ContactError(f"identity {identity_id} is the contact's only one; nothing to split it from",
                               "only_identity", identity=identity_id)
        new_id = tx.execute("INSERT INTO contacts (display_name, created_at) VALUES (?, ?)",
                            (ident["display_name"], tx.stamp)).lastrowid
        tx.execute("UPDATE identities SET contact_id = ? WHERE id = ?", (new_id, identity_id))
        claims: list[int] = []
        if with_claims:
            claims = [r[0] for r in tx.execute(
                "SELECT t.id FROM tickets t WHERE t.contact_id = ?"
                " AND EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in'"
                "  AND m.sender_kind = ? AND m.sender = ?)"
                " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in'"
                "  AND m.channel != 'api' AND (m.sender_kind != ? OR m.sender != ?))",
                (ident["contact_id"], *(ident["kind"], ident["value"]) * 2))]
            for ticket_id in claims:
                tx.execute("UPDATE tickets SET contact_id = ? WHERE id = ?", (new_id, ticket_id))
        write_audit(tx, actor, "contact_split", detail={"from": ident["contact_id"], "to": new_id,
                                                       "identity": f"{ident['kind']}:{ident['value']}",
                                                       "claims": len(claims)})
        return new_id

    return op
