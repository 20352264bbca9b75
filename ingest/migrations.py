"""Versioned schema migrations, applied in order at start-up (PRAGMA user_version)."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the foundation
    """
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        connector TEXT NOT NULL,
        dedupe_key TEXT NOT NULL UNIQUE,
        fmt TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        received_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        message_row INTEGER
    );
    CREATE INDEX inbox_pending ON inbox(id) WHERE state = 'pending';
    -- The raw payload apart from its state: updating a row rewrites the whole record, and a
    -- large body would be written again on every state change.
    CREATE TABLE inbox_raw (
        inbox_id INTEGER PRIMARY KEY REFERENCES inbox(id),
        size INTEGER NOT NULL,
        body BLOB NOT NULL
    );

    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        display_name TEXT NOT NULL DEFAULT '',
        organisation TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL DEFAULT 'policyholder',
        tags TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE identities (
        id INTEGER PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        UNIQUE (kind, value)
    );
    CREATE INDEX identities_contact ON identities(contact_id);

    CREATE TABLE claim_sequence (year INTEGER PRIMARY KEY, last INTEGER NOT NULL);

    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        ref TEXT NOT NULL UNIQUE,
        contact_id INTEGER REFERENCES contacts(id),
        subject TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'new',
        queue TEXT NOT NULL,
        priority TEXT NOT NULL DEFAULT 'normal',
        assignee TEXT,
        insurer TEXT NOT NULL DEFAULT '',
        line_of_business TEXT NOT NULL DEFAULT 'other',
        channel TEXT NOT NULL,
        conversation_key TEXT NOT NULL DEFAULT '',
        message_count INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_inbound_at TEXT,
        last_outbound_at TEXT,
        closed_at TEXT
    );
    CREATE INDEX tickets_conversation ON tickets(conversation_key, updated_at);
    CREATE INDEX tickets_contact ON tickets(contact_id, updated_at);
    CREATE INDEX tickets_queue_status ON tickets(queue, status, updated_at);

    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        inbox_id INTEGER REFERENCES inbox(id),
        direction TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'message',
        channel TEXT NOT NULL,
        connector TEXT NOT NULL DEFAULT '',
        channel_message_id TEXT NOT NULL DEFAULT '',
        sender TEXT NOT NULL DEFAULT '',
        sender_name TEXT NOT NULL DEFAULT '',
        recipients TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '',
        display_text TEXT NOT NULL DEFAULT '',
        html TEXT NOT NULL DEFAULT '',
        auto_reason TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT '',
        sent_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_ticket ON messages(ticket_id, id);

    CREATE TABLE attachments (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size INTEGER,
        sha256 TEXT,
        remote_ref TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX attachments_message ON attachments(message_id);

    CREATE TABLE email_message_ids (
        message_id TEXT PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id)
    ) WITHOUT ROWID;

    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        inbox_id INTEGER NOT NULL REFERENCES inbox(id),
        error TEXT NOT NULL,
        traceback TEXT NOT NULL,
        created_at TEXT NOT NULL,
        resolved_at TEXT
    );

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL DEFAULT 'system',
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_ticket ON events(ticket_id, id);

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER REFERENCES tickets(id),
        message_row INTEGER REFERENCES messages(id),
        channel TEXT NOT NULL,
        connector TEXT NOT NULL,
        recipient TEXT NOT NULL,
        payload TEXT NOT NULL,
        automatic INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE state IN ('pending', 'sending');
    CREATE INDEX outbox_recipient ON outbox(recipient, created_at);
    """,
    # 2: agents, their tokens (SHA-256 only), the audit trail, and Persian-normalised search
    """
    CREATE TABLE agents (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        queues TEXT NOT NULL DEFAULT '',
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    CREATE TABLE agent_tokens (
        id INTEGER PRIMARY KEY,
        agent_id INTEGER NOT NULL REFERENCES agents(id),
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        agent TEXT NOT NULL,
        action TEXT NOT NULL,
        ticket_ref TEXT NOT NULL DEFAULT '',
        allowed INTEGER NOT NULL DEFAULT 1,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_agent ON audit_log(agent, id);
    ALTER TABLE tickets ADD COLUMN merged_into TEXT;
    CREATE INDEX tickets_updated ON tickets(updated_at);
    -- Covers the agent API's queue overview, so counting 100,000 open tickets never reads the table.
    CREATE INDEX tickets_overview ON tickets(queue, status, priority, assignee, last_inbound_at, last_outbound_at);
    CREATE INDEX tickets_assignee ON tickets(assignee, status) WHERE assignee IS NOT NULL;

    -- Filled by the agent API's indexer from messages (normalize_for_matching runs in Python,
    -- so no trigger can do it); search_state remembers how far it got.
    CREATE VIRTUAL TABLE search_index USING fts5(body);  -- rowid = messages.id
    CREATE TABLE search_state (id INTEGER PRIMARY KEY CHECK (id = 1), last_message_id INTEGER NOT NULL);
    INSERT INTO search_state (id, last_message_id) VALUES (1, 0);
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; returns the resulting version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)
