"""The floor under bench/ingest.py's accept()+processing rate: CPU a mail of the least any
Python pipeline does with its mail mix, set against what a target rate leaves on this machine.

    python bench/floor.py                  # 3,000 mails of bench/ingest.py's mix
    python bench/floor.py --n 5000 --rate 2000

Each figure is CPU time (best of `--repeat`), single-threaded, so the machine's other load
moves it less than a wall-clock rate:
- our MIME parser alone (`ingest.mime.parse_email`, the normaliser's first step), and the whole
  normaliser work (`prepare_many_in_worker`: parse, Persian analysis, attachment files);
- a bare store at synchronous=FULL: the raw payload committed (the acknowledgement), then one
  ticket and one message row committed, 25 mails a transaction; and the same with the message's
  full-text row. No lookups, no contacts, no timeline, no SLA clock: less than threading needs.
The budget is what the target rate leaves: CPU seconds the machine has in a second, shared by
every mail of that second.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import make_mails  # noqa: E402
from ingest.email_payload import email_dedupe_key  # noqa: E402
from ingest.mime import parse_email  # noqa: E402
from ingest.records import RawPayload  # noqa: E402
from ingest.service import prepare_many_in_worker  # noqa: E402

BATCH = 25  # mails a transaction: what the writer's group commit gathers under this load

BARE_SCHEMA = """
CREATE TABLE inbox (id INTEGER PRIMARY KEY, dedupe_key TEXT UNIQUE, body BLOB);
CREATE TABLE tickets (id INTEGER PRIMARY KEY, ref TEXT UNIQUE, updated_at TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY, ticket_id INTEGER, message_id TEXT, subject TEXT,
                       text TEXT, created_at TEXT);
CREATE INDEX messages_ticket ON messages (ticket_id, id);
CREATE VIRTUAL TABLE search_index USING fts5(body);
"""


def best_cpu_us(work: Callable[[], object], count: int, repeat: int) -> float:
    """Best CPU µs per item of `repeat` runs of `work` over `count` items."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best / count * 1e6


def bare_store(mails: list[bytes], texts: list[tuple[str, str, str]], *, full_text: bool) -> float:
    """CPU µs a mail of the bare store's writes and commits (a fresh database each call)."""
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        conn = sqlite3.connect(Path(tmp) / "bare.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(BARE_SCHEMA)
        start = time.process_time()
        for first in range(0, len(mails), BATCH):
            batch = range(first, min(first + BATCH, len(mails)))
            conn.execute("BEGIN")
            for i in batch:
                conn.execute("INSERT INTO inbox (dedupe_key, body) VALUES (?, ?)", (str(i), mails[i]))
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            for i in batch:
                message_id, subject, text = texts[i]
                ticket = conn.execute("INSERT INTO tickets (ref, updated_at) VALUES (?, ?)", (f"PV-{i}", "now")).lastrowid
                row = conn.execute("INSERT INTO messages (ticket_id, message_id, subject, text, created_at)"
                                   " VALUES (?, ?, ?, ?, ?)", (ticket, message_id, subject, text, "now")).lastrowid
                if full_text:
                    conn.execute("INSERT INTO search_index (rowid, body) VALUES (?, ?)", (row, f"{subject} {text}"))
            conn.execute("COMMIT")
        cpu = time.process_time() - start
        conn.close()
    return cpu / len(mails) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rate", type=int, default=2000, help="the target, messages a second")
    args = parser.parse_args()
    mails = make_mails(args.n)
    payloads = [RawPayload("email", "bench", email_dedupe_key(m), "mime", m, datetime.now(UTC)) for m in mails]
    parsed = [parse_email(m) for m in mails]
    texts = [(p.message_id, p.subject, p.text) for p in parsed]

    parse_us = best_cpu_us(lambda: [parse_email(m) for m in mails], len(mails), args.repeat)

    def normalise() -> None:
        with tempfile.TemporaryDirectory() as files:  # fresh: attachment files are written each run
            for first in range(0, len(payloads), 16):
                prepare_many_in_worker(payloads[first:first + 16], "PV", files, 25 * 2**20)

    prepare_many_in_worker(None)  # the registry loaded before the clock starts
    normalise_us = best_cpu_us(normalise, len(mails), args.repeat)
    store_us = min(bare_store(mails, texts, full_text=False) for _ in range(args.repeat))
    store_fts_us = min(bare_store(mails, texts, full_text=True) for _ in range(args.repeat))

    cores = os.cpu_count() or 1
    budget = cores / args.rate * 1e6
    print(f"floor: {len(mails):,} mails of bench/ingest.py's mix, CPU µs a mail, best of {args.repeat}")
    print(f"  MIME parse alone (ingest.mime.parse_email)             {parse_us:7.0f}")
    print(f"  the whole normaliser work (prepare_many_in_worker)      {normalise_us:7.0f}")
    print(f"  bare store: raw + ticket + message, synchronous=FULL     {store_us:7.0f}")
    print(f"  bare store with the message's full-text row              {store_fts_us:7.0f}")
    print(f"  sum: normaliser + bare store with full text              {normalise_us + store_fts_us:7.0f}")
    print(f"budget at {args.rate:,} msg/s on {cores} CPUs: {budget:,.0f} µs a mail, for all of the above"
          " and threading, contacts, timeline, SLA clocks, the event loop and the hand-over between processes")


if __name__ == "__main__":
    main()
