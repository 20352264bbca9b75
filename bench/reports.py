"""Report speed on a large store: 100,000 tickets over a year with 1,000,000 messages (and their
timeline events and SLA clocks), bulk-inserted with SQL; then a one-month report, overall and by
each dimension, timed. Target: a monthly report in under 2 s.

    python bench/reports.py [--tickets 100000] [--messages-per-ticket 10] [--store PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.migrations import migrate  # noqa: E402
from ingest.reports import DIMENSIONS, build_report, parse_day, period_bounds, render_html  # noqa: E402
from ingest.store import Store, iso  # noqa: E402

YEAR_START = datetime(2025, 3, 21, tzinfo=UTC)  # 1404/01/01
INSURERS = ["asia", "dana", "iran", "parsian", "saman", ""]
QUEUES = ["intake", "motor", "health", "property"]
AGENTS = [None, "ali", "maryam", "reza", "sara", "nima"]
CHANNELS = ["email", "sms", "whatsapp", "telegram", "webchat", "call", "api"]
PATH = ["new", "assigned", "awaiting_documents", "assessed", "closed"]


def populate(path: Path, tickets: int, per_ticket: int, seed: int = 7) -> tuple[int, int]:
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    migrate(conn)
    conn.execute("BEGIN")
    span = 365 * 86400
    ticket_rows, message_rows, event_rows, clock_rows = [], [], [], []
    now = YEAR_START + timedelta(days=365)
    message_id = 0
    for tid in range(1, tickets + 1):
        created = YEAR_START + timedelta(seconds=rng.randrange(span))
        channel = rng.choice(CHANNELS)
        # Status walk: each step a few hours to days later; most tickets end closed.
        steps = rng.choice([1, 2, 3, 4, 4, 4])
        at, moves = created, []
        for old, new in zip(PATH, PATH[1:steps + 1] if steps < 4 else PATH[1:]):
            at += timedelta(hours=rng.expovariate(1 / 20))
            if at < now:
                moves.append((at, old, new))
        status = moves[-1][2] if moves else "new"
        closed_at = moves[-1][0] if status == "closed" else None
        last = closed_at or min(now, created + timedelta(days=10))
        queue = rng.choice(QUEUES)
        assignee = rng.choice(AGENTS) if status != "new" else None
        ticket_rows.append((tid, f"PV-1404-{tid:06d}", tid % 50_000 + 1, "claim", status, queue,
                            "normal", assignee, rng.choice(INSURERS),
                            rng.choice(["auto", "health", "other"]), channel, per_ticket, iso(created), iso(last),
                            iso(closed_at)))
        event_rows.append((tid, iso(created), "ticket_created", "{}"))
        for at, old, new in moves:
            event_rows.append((tid, iso(at), "status_changed", json.dumps({"old": old, "new": new})))
        if assignee:  # the assignment history the per-agent SLA figures read
            event_rows.append((tid, iso(moves[0][0]), "assigned", json.dumps({"old": None, "new": assignee})))
        for n in range(per_ticket):
            message_id += 1
            m_at = created + (last - created) * (n / per_ticket)
            inbound = n % 3 != 1
            author = "" if inbound else ("system" if n == 1 and rng.random() < 0.3 else rng.choice(AGENTS[1:]))
            message_rows.append((message_id, tid, "in" if inbound else "out",
                                 channel if inbound or rng.random() < 0.8 else "email",
                                 "x@example.com", "text", author or "", iso(m_at)))
            event_rows.append((tid, iso(m_at), "message_received" if inbound else "outbound_queued", "{}"))
        breached = rng.random() < 0.15
        clock_rows.append((tid, iso(created), iso(created + timedelta(hours=8)),
                           iso(created + timedelta(hours=8)) if breached else None,
                           "breached" if breached else "met"))
    conn.executemany("INSERT INTO contacts (id, display_name, created_at) VALUES (?, 'c', ?)",
                     [(i, iso(YEAR_START)) for i in range(1, 50_001)])
    conn.executemany(
        "INSERT INTO tickets (id, ref, contact_id, subject, status, queue, priority, assignee, insurer,"
        " line_of_business, channel, message_count, created_at, updated_at, closed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ticket_rows)
    conn.executemany(
        "INSERT INTO messages (id, ticket_id, direction, channel, sender, text, author, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", message_rows)
    conn.executemany("INSERT INTO events (ticket_id, at, kind, data) VALUES (?, ?, ?, ?)", event_rows)
    conn.executemany(
        "INSERT INTO sla_clocks (ticket_id, kind, policy, calendar, started_at, target_seconds, warn_fraction,"
        " due_at, breached_at, state) VALUES (?, 'first_response', 'default', 'default', ?, 28800, 0.75, ?, ?, ?)",
        clock_rows)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return len(message_rows), len(event_rows)


async def measure(path: Path) -> None:
    store = Store(path, synchronous="OFF")
    await store.open()
    try:
        start, end = period_bounds(parse_day("1404-07-01"), parse_day("1404-07-30"))
        for by in [None, *DIMENSIONS]:
            began = time.perf_counter()
            report = await build_report(store, start, end, by)
            elapsed = time.perf_counter() - began
            t = report.total
            print(f"monthly report by {by or '-':<17} {elapsed:6.3f} s  opened {t.opened}  closed {t.closed}"
                  f"  backlog {t.backlog}  1st resp med/p90 {t.first_response_median_h}/{t.first_response_p90_h} h"
                  f" (business {t.first_response_median_business_h}/{t.first_response_p90_business_h} h)"
                  f"  resol med/p90 {t.resolution_median_h}/{t.resolution_p90_h} h"
                  f" (business {t.resolution_median_business_h}/{t.resolution_p90_business_h} h)  SLA {t.sla_compliance_pct}%"
                  f"  reopen {t.reopen_rate_pct}%  groups {len(report.groups)}")
        began = time.perf_counter()
        html = render_html(await build_report(store, start, end, "insurer"))
        print(f"html report by insurer: {time.perf_counter() - began:.3f} s, {len(html):,} bytes")
        print(f"time in status (h): {report.total.status_hours}")
        print(f"channel mix: {report.total.channel_mix}")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages-per-ticket", type=int, default=10)
    parser.add_argument("--store", type=Path, default=None, help="reuse (or create) this store file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "bench.sqlite3"
        if not path.exists():
            began = time.perf_counter()
            messages, events = populate(path, args.tickets, args.messages_per_ticket)
            print(f"populated {args.tickets:,} tickets, {messages:,} messages, {events:,} events"
                  f" in {time.perf_counter() - began:.1f} s")
        asyncio.run(measure(path))


if __name__ == "__main__":
    main()
