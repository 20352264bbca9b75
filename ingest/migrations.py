"""Versioned schema migrations, applied in order at start-up (PRAGMA user_version)."""

from __future__ import annotations

import sqlite3

from ingest.persian import claim_number_key

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
    # 3: routing, assignment, SLA clocks and workflow timers (owned by ingest/routing_hooks.py and
    # ingest/sla_engine.py)
    """
    ALTER TABLE agents ADD COLUMN status TEXT NOT NULL DEFAULT 'available';
    ALTER TABLE agents ADD COLUMN skills TEXT NOT NULL DEFAULT '';
    ALTER TABLE agents ADD COLUMN load_cap INTEGER NOT NULL DEFAULT 25;
    ALTER TABLE tickets ADD COLUMN skill TEXT;
    ALTER TABLE tickets ADD COLUMN sla_policy TEXT;
    ALTER TABLE tickets ADD COLUMN tags TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN status_since TEXT;
    -- Round-robin position per queue, so turns survive restarts.
    CREATE TABLE assignment_cursor (queue TEXT PRIMARY KEY, last_agent TEXT NOT NULL);
    -- One clock per ticket and target. due_at/warn_at are as computed at the clock's last change
    -- (NULL while paused or met); next_at is the next instant the scheduler must act on.
    CREATE TABLE sla_clocks (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        kind TEXT NOT NULL,
        policy TEXT NOT NULL,
        calendar TEXT NOT NULL,
        started_at TEXT NOT NULL,
        target_seconds REAL NOT NULL,
        warn_fraction REAL NOT NULL,
        pauses TEXT NOT NULL DEFAULT '[]',
        due_at TEXT,
        warn_at TEXT,
        met_at TEXT,
        warned_at TEXT,
        breached_at TEXT,
        state TEXT NOT NULL DEFAULT 'ok',
        next_at TEXT,
        PRIMARY KEY (ticket_id, kind)
    ) WITHOUT ROWID;
    CREATE INDEX sla_clocks_next ON sla_clocks(next_at) WHERE next_at IS NOT NULL;
    -- "No customer reply for N business days" timers of the workflow rules.
    CREATE TABLE workflow_timers (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        days INTEGER NOT NULL,
        fire_at TEXT NOT NULL,
        PRIMARY KEY (ticket_id, days)
    ) WITHOUT ROWID;
    CREATE INDEX workflow_timers_fire ON workflow_timers(fire_at);
    """,
    # 4: the insurer B2B API (clients with hashed keys, filed claims, idempotency keys, webhook
    # cursor and delivery log), CRM notes and the merge log, and the indexes reports need
    """
    CREATE TABLE insurer_clients (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL DEFAULT '',
        api_key_sha256 TEXT NOT NULL UNIQUE,
        webhook_url TEXT NOT NULL DEFAULT '',
        webhook_secret TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    CREATE TABLE insurer_claims (
        ticket_id INTEGER PRIMARY KEY REFERENCES tickets(id),
        insurer TEXT NOT NULL,
        claim_number TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        UNIQUE (insurer, claim_number)
    );
    CREATE TABLE api_idempotency (
        insurer TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        result TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (insurer, key)
    ) WITHOUT ROWID;
    CREATE TABLE insurer_webhook_cursor (connector TEXT PRIMARY KEY, last_event_id INTEGER NOT NULL);
    CREATE TABLE insurer_webhook_log (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL,
        insurer TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        status_code INTEGER,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX insurer_webhook_log_outbox ON insurer_webhook_log(outbox_id, id);
    CREATE INDEX tickets_insurer ON tickets(insurer, updated_at);

    CREATE TABLE contact_notes (
        id INTEGER PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX contact_notes_contact ON contact_notes(contact_id, id);
    -- What a merge moved (identity, ticket and note ids), so undo can put each back.
    CREATE TABLE contact_merges (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        kept_id INTEGER NOT NULL REFERENCES contacts(id),
        merged_id INTEGER NOT NULL REFERENCES contacts(id),
        moved TEXT NOT NULL,
        undone_at TEXT
    );
    ALTER TABLE contacts ADD COLUMN merged_into INTEGER REFERENCES contacts(id);

    -- Reports: tickets opened / closed in a period, messages per period and channel, and the
    -- first agent answer of a ticket read from the index alone.
    CREATE INDEX tickets_created ON tickets(created_at);
    CREATE INDEX tickets_closed ON tickets(closed_at) WHERE closed_at IS NOT NULL;
    CREATE INDEX messages_created ON messages(created_at, direction, channel, ticket_id);
    CREATE INDEX messages_response ON messages(ticket_id, direction, author, created_at);
    -- Status changes apart (and covering), so time-in-status never reads the events table.
    CREATE INDEX events_status ON events(ticket_id, id, at, data) WHERE kind = 'status_changed';
    CREATE INDEX tickets_open ON tickets(created_at) WHERE closed_at IS NULL;
    CREATE INDEX sla_clocks_breached ON sla_clocks(breached_at) WHERE breached_at IS NOT NULL;
    """,
    # 5: SLA clock history, and report figures read from the status changes rather than from
    # `closed_at` (which a reopen clears)
    """
    -- A clock a new one of the same ticket and kind replaces (the next response after the
    -- customer writes again, the resolution after a reopen), so its outcome still counts in
    -- reports; sla_clocks keeps the live clock of each kind.
    CREATE TABLE sla_clock_history (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        kind TEXT NOT NULL,
        policy TEXT NOT NULL,
        calendar TEXT NOT NULL,
        started_at TEXT NOT NULL,
        target_seconds REAL NOT NULL,
        warn_fraction REAL NOT NULL,
        pauses TEXT NOT NULL,
        due_at TEXT,
        warn_at TEXT,
        met_at TEXT,
        warned_at TEXT,
        breached_at TEXT,
        state TEXT NOT NULL,
        replaced_at TEXT NOT NULL
    );
    CREATE INDEX sla_clock_history_ticket ON sla_clock_history(ticket_id);
    CREATE INDEX sla_clock_history_breached ON sla_clock_history(breached_at) WHERE breached_at IS NOT NULL;
    -- Closings in a period, for reports.
    CREATE INDEX events_closing ON events(at, ticket_id)
        WHERE kind = 'status_changed' AND json_extract(data, '$.new') = 'closed';
    -- Merges used to close the source with no status change (and move its status history to the
    -- target, past separating): give each merged ticket its closing, at the merge. Insurer
    -- webhook cursors that were caught up skip these rows: the merge was news when it happened.
    CREATE TEMP TABLE migration_5 AS SELECT coalesce(max(id), 0) AS last FROM events;
    INSERT INTO events (ticket_id, at, kind, actor, data)
        SELECT ticket_id, at, 'status_changed', actor,
               json_object('old', json_extract(data, '$.old_status'), 'new', 'closed',
                           'merged_into', json_extract(data, '$.target'))
        FROM events WHERE kind = 'merged_into' ORDER BY id;
    UPDATE insurer_webhook_cursor SET last_event_id = (SELECT coalesce(max(id), 0) FROM events)
        WHERE last_event_id >= (SELECT last FROM temp.migration_5);
    DROP TABLE temp.migration_5;
    """,
    # 6: the kind of identity a message's sender is (a Telegram and a Bale user may have the same
    # number), and keys the store generates for itself (the signature of bot deep links)
    """
    ALTER TABLE messages ADD COLUMN sender_kind TEXT NOT NULL DEFAULT '';
    -- Every channel before this version: its sender's kind follows from the channel (a web form
    -- names a phone, or an address when it had no phone).
    UPDATE messages SET sender_kind = CASE
        WHEN channel = 'email' THEN 'email'
        WHEN channel IN ('sms', 'whatsapp', 'call') THEN 'phone'
        WHEN channel = 'webform' THEN CASE WHEN sender LIKE '%@%' THEN 'email' ELSE 'phone' END
        WHEN channel = 'api' THEN 'insurer'
        ELSE channel END
    WHERE direction = 'in';
    CREATE TABLE store_keys (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 7: when each claim last changed in a way its insurer sees (the insurer API's `updated_at`,
    # which `updated_since` and the list's cursor read), and the assignment history reports read
    """
    -- Status, team, priority, the thread, merges and the public timeline (SLA warnings and
    -- breaches among it): every such change records one of these events, so a trigger on the
    -- timeline moves the instant in the write that makes the change, whichever module makes it.
    -- Not `updated_at`: an SLA event must not stretch the continuity window, which reads it.
    -- The kinds are the insurer view's (ingest/insurers.py, _PUBLIC_EVENTS) and queue_changed.
    ALTER TABLE tickets ADD COLUMN insurer_changed_at TEXT NOT NULL DEFAULT '';
    -- Never earlier than `updated_at`: a client's last `updated_since`, or a cursor, taken before
    -- the upgrade misses nothing it would have found (nor a breach it did not).
    UPDATE tickets SET insurer_changed_at = max(updated_at, coalesce((SELECT max(e.at) FROM events e
        WHERE e.ticket_id = tickets.id AND (e.kind IN ('ticket_created', 'claim_filed', 'status_changed',
        'queue_changed', 'priority_changed', 'message_received', 'outbound_queued', 'merged_from', 'merged_into')
        OR e.kind LIKE 'sla\\_%' ESCAPE '\\')), ''));
    DROP INDEX tickets_insurer;  -- the list's index, now on the changed instant
    CREATE INDEX tickets_insurer_changed ON tickets(insurer, insurer_changed_at);
    CREATE TRIGGER events_insurer_changed AFTER INSERT ON events
    WHEN NEW.kind IN ('ticket_created', 'claim_filed', 'status_changed', 'queue_changed', 'priority_changed',
                      'message_received', 'outbound_queued', 'merged_from', 'merged_into')
         OR NEW.kind LIKE 'sla\\_%' ESCAPE '\\'
    BEGIN
        UPDATE tickets SET insurer_changed_at = NEW.at WHERE id = NEW.ticket_id AND insurer_changed_at < NEW.at;
    END;
    -- Who held a ticket at an instant (reports charge an SLA breach to its holder then).
    CREATE INDEX events_assignment ON events(ticket_id, at) WHERE kind IN ('assigned', 'unassigned');
    """,
    # 8: an insurer's claim number is matched by its key (ingest/persian.py, claim_number_key), so
    # "۱۴۰۵/۱۲۳۴" and "1405/1234" name one claim; `claim_number` keeps the number as written
    """
    ALTER TABLE insurer_claims ADD COLUMN claim_key TEXT;
    UPDATE insurer_claims SET claim_key = claim_number_key(claim_number);
    -- One number filed under two spellings before this version is two claims, and both stay:
    -- the oldest keeps the key, the others have none (each is still found by its reference and
    -- by its own spelling). Failing the upgrade would stop the daemon over an insurer's data.
    UPDATE insurer_claims SET claim_key = NULL
        WHERE ticket_id NOT IN (SELECT min(ticket_id) FROM insurer_claims GROUP BY insurer, claim_key);
    -- NULLs are distinct to a unique index: every claim filed from now on has a key, unique.
    CREATE UNIQUE INDEX insurer_claims_key ON insurer_claims(insurer, claim_key);
    """,
    # 9: every id a channel gave a message we sent (a long SMS leaves in parts, each with its own),
    # with how far each part has got; and delivery reports that came before the id was recorded
    """
    -- A report finds its message here, by the id of any of its parts (messages.channel_message_id
    -- keeps the first, as shown, and has no index: each report scanned every message).
    CREATE TABLE outbound_message_ids (
        channel TEXT NOT NULL,
        channel_message_id TEXT NOT NULL,
        message_row INTEGER NOT NULL REFERENCES messages(id),
        part INTEGER NOT NULL,          -- 0 for the first part
        status TEXT NOT NULL DEFAULT '',  -- the furthest stage reported for this part
        PRIMARY KEY (channel, channel_message_id)
    ) WITHOUT ROWID;
    CREATE INDEX outbound_message_ids_message ON outbound_message_ids(message_row, part);
    -- Messages sent before this version: their one recorded id, as yet unreported (a report
    -- already on the timeline still counts there: a repeat of it adds nothing).
    INSERT OR IGNORE INTO outbound_message_ids (channel, channel_message_id, message_row, part)
        SELECT channel, channel_message_id, id, 0 FROM messages WHERE direction != 'in' AND channel_message_id != '';
    -- A report on an id no message has yet: the gateway called back before our write of the id
    -- it had just answered with committed. Claimed by that write (ingest/apply.py).
    CREATE TABLE pending_delivery_reports (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        channel_message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL
    );
    CREATE INDEX pending_delivery_reports_message ON pending_delivery_reports(channel, channel_message_id);
    CREATE INDEX pending_delivery_reports_received ON pending_delivery_reports(received_at);
    """,
    # 10: the continuity window counts from the conversation's last word (the customer's message,
    # or an answer to them), not from `updated_at`, which also moves on an assignment, a priority
    # an SLA breach raised, a supervisor's internal notice or an auto-reply
    """
    ALTER TABLE tickets ADD COLUMN conversation_at TEXT;
    UPDATE tickets SET conversation_at = max(
        coalesce(last_inbound_at, created_at), created_at, coalesce(last_outbound_at, ''));
    DROP INDEX tickets_conversation;
    CREATE INDEX tickets_conversation ON tickets(conversation_key, conversation_at);
    CREATE INDEX tickets_contact_conversation ON tickets(contact_id, conversation_at);
    """,
]


def register_functions(conn: sqlite3.Connection) -> None:
    """The Python functions migrations call from SQL (a backfill of what only Python computes).
    A migration calls the function as it is today: a change to what one computes needs a new
    migration that recomputes its column."""
    conn.create_function("claim_number_key", 1, claim_number_key, deterministic=True)


def _statements(script: str) -> list[str]:
    """A script's statements, one by one (`executescript` would commit the transaction first)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    return statements


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; returns the resulting version.

    The version is read inside the migration's own write transaction: a process started at the
    same moment (the daemon and a `run.py` command during an upgrade) may have migrated the
    store between our read and our lock, and each migration must run once."""
    register_functions(conn)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= len(MIGRATIONS):
                conn.execute("COMMIT")
                return len(MIGRATIONS)
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
