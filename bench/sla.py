"""Routing + SLA benchmark.

    python bench/sla.py                          # 1,000 vs 1,000,000 open tickets; 100,000 timers
    python bench/sla.py --sizes 1000 100000 --timers 20000

1. Cost per message of routing and SLA scheduling with N open tickets already in the store (each
   with running clocks and workflow timers, all pending in the scheduler's heap): new messages go
   through the real apply step (apply_inbound in the store's writer, with the SLA scheduler
   running); the time spent in the routing hooks (rules, assignment over agents with loads, SLA
   clocks, workflow timers) and in the scheduler's bookkeeping is measured per message, and the
   whole write per message for context. The ratio largest/smallest N should stay <= 1.5.
2. The scheduler with T pending timers whose due instants fall in the next 60 s: extra memory
   of loading them (tracemalloc), and how late each fired (timeline event time - due time).

Open tickets are inserted in bulk with SQL for setup speed. SQLite runs at synchronous=NORMAL.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.loader import load_settings  # noqa: E402
from config.logs import configure_logging  # noqa: E402
from config.policies import load_policies  # noqa: E402
from ingest.analysis import analyse  # noqa: E402
from ingest.apply import ApplyContext, apply_inbound  # noqa: E402
from ingest.records import Identity, InboundMessage  # noqa: E402
from ingest.routing_hooks import RoutingHooks  # noqa: E402
from ingest.sla_engine import SlaEngine  # noqa: E402
from ingest.store import Store, iso  # noqa: E402

AGENTS = 20
POLICIES = """
[[queues]]
name = "intake"
assignment = "round_robin"
[[queues]]
name = "auto"
assignment = "least_loaded"
[[queues]]
name = "health"
assignment = "least_loaded"

[[routing.rules]]
name = "vip"
when = { contact_tags = ["vip", "broker"] }
then = { queue = "auto", priority = "urgent" }
[[routing.rules]]
name = "after-hours-accident"
when = { business_hours = false, keywords = ["تصادف"] }
then = { queue = "auto", priority = "high", tags = ["after-hours"] }
[[routing.rules]]
name = "motor"
when = { keywords = ["تصادف", "خسارت", "accident"] }
then = { queue = "auto", priority = "high", skill = "motor" }
[[routing.rules]]
name = "hospital"
when = { keywords = ["بیمارستان", "hospital"] }
then = { queue = "health", skill = "health" }
[routing.default]
queue = "intake"

[[sla.policies]]
name = "standard"
first_response = 4
next_response = 8
resolution = 80
calendar = "business"
[[sla.policies]]
name = "fast"
priority = "high"
first_response = 2
resolution = 40
calendar = "24x7"
on_warning = ["notify"]

[[workflow.rules]]
name = "documents-reminder"
when = { event = "no_customer_reply", days = 3 }
if = { status = "awaiting_documents" }
then = [{ action = "send_template", template = "documents_reminder" }]
[[workflow.rules]]
name = "documents-timeout"
when = { event = "no_customer_reply", days = 14 }
if = { status = "awaiting_documents" }
then = [{ action = "send_template", template = "documents_final_notice" }, { action = "set_status", status = "closed" }]
"""
TEXTS = [
    ("تصادف خودرو", "سلام، ماشینم در تصادف آسیب دید. لطفاً خسارت را بررسی کنید."),
    ("بیمارستان", "هزینه بستری در بیمارستان را چطور بگیرم؟"),
    ("Policy question", "When does my policy renew? Regards"),
    ("خسارت", "مدارک خسارت را فرستادم، پیگیری کنید."),
]


class TimedHooks(RoutingHooks):
    """Accumulates the time spent in the routing hooks."""

    spent = 0.0

    def route(self, *a: Any, **k: Any) -> Any:
        return self._timed(super().route, a, k)

    def ticket_created(self, *a: Any, **k: Any) -> Any:
        return self._timed(super().ticket_created, a, k)

    def customer_message(self, *a: Any, **k: Any) -> Any:
        return self._timed(super().customer_message, a, k)

    def _timed(self, fn: Any, a: Any, k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            self.spent += time.perf_counter() - t


class TimedEngine(SlaEngine):
    spent = 0.0

    def _on_event(self, event: Any) -> None:
        t = time.perf_counter()
        super()._on_event(event)
        self.spent += time.perf_counter() - t


def policies(tmp: Path):
    path = tmp / "bench.toml"
    path.write_text(POLICIES, encoding="utf-8")
    return load_policies(load_settings(path, environ={}))


def bulk_open_tickets(db: Path, n: int, now: datetime, due_within: timedelta, *, rng: random.Random,
                      assigned: int = 0) -> None:
    """N open tickets with first-response and resolution clocks and two workflow timers each; the
    first `assigned` go to the agents (so loads are real), the rest wait in their queues."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    queues = ["intake", "auto", "health"]
    chunk = 50_000
    for base in range(0, n, chunk):
        tickets, clocks, timers = [], [], []
        for i in range(base, min(n, base + chunk)):
            tid = i + 1
            created = now - timedelta(seconds=rng.uniform(0, 3600))
            assignee = f"agent{i % AGENTS}" if i < assigned else None
            tickets.append((tid, f"BULK-{tid}", "assigned" if assignee else "new", queues[i % 3], "normal",
                            assignee, "email", f"bulk:{tid}", iso(created), iso(created), iso(created),
                            iso(created), "standard"))
            warn = now + timedelta(seconds=rng.uniform(0, due_within.total_seconds()))
            due = warn + (warn - created) / 3
            clocks.append((tid, "first_response", iso(created), 4 * 3600, iso(due), iso(warn), iso(warn)))
            late = due + timedelta(days=10)
            clocks.append((tid, "resolution", iso(created), 80 * 3600, iso(late), iso(late - timedelta(days=2)),
                           iso(late - timedelta(days=2))))
            timers.append((tid, 3, iso(late + timedelta(days=3))))
            timers.append((tid, 14, iso(late + timedelta(days=14))))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO tickets (id, ref, status, queue, priority, assignee, channel, conversation_key, created_at,"
            " updated_at, conversation_at, last_inbound_at, status_since, sla_policy)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13)",
            tickets)
        conn.executemany(
            "INSERT INTO sla_clocks (ticket_id, kind, policy, calendar, started_at, target_seconds, warn_fraction,"
            " due_at, warn_at, next_at) VALUES (?, ?, 'standard', '24x7', ?, ?, 0.75, ?, ?, ?)", clocks)
        conn.executemany("INSERT INTO workflow_timers (ticket_id, days, fire_at) VALUES (?, ?, ?)", timers)
        conn.execute("COMMIT")
    conn.close()


def agents_sql(db: Path, now: datetime) -> None:
    conn = sqlite3.connect(db)
    for i in range(AGENTS):
        skills = ["motor", "health", "motor,health"][i % 3]
        conn.execute("INSERT INTO agents (name, role, queues, created_at, skills, load_cap, status)"
                     " VALUES (?, 'agent', 'intake,auto,health', ?, ?, 100, ?)",
                     (f"agent{i}", iso(now), skills, "available" if i % 4 else "away"))
    conn.commit()
    conn.close()


def message(i: int, rng: random.Random) -> InboundMessage:
    subject, text = rng.choice(TEXTS)
    return InboundMessage(channel="email", channel_message_id=f"<m{i}@bench>", sender=Identity("email", f"new{i}@example.com"),
                          text=text, subject=subject, message_id=f"<m{i}@bench>")


async def per_message_cost(n: int, messages: int, tmp: Path) -> dict[str, float]:
    db = tmp / f"routing-{n}.sqlite3"
    now = datetime.now(UTC)
    rng = random.Random(n)
    store = Store(db, synchronous="NORMAL")
    await store.open()
    await store.close()
    t = time.perf_counter()
    agents_sql(db, now)
    bulk_open_tickets(db, n, now, timedelta(days=30), rng=rng, assigned=min(n, AGENTS * 40))
    setup = time.perf_counter() - t

    hooks = TimedHooks(policies(tmp))
    ctx = ApplyContext(reference_prefix="PV", continuity_window=timedelta(0), default_queue="intake",
                       acknowledge=False, ack_hourly_limit=0, own_addresses=frozenset(), mail_domain="bench",
                       from_address="claims@bench", routing=hooks)
    store = Store(db, synchronous="NORMAL")
    store.context = ctx
    await store.open()
    engine = TimedEngine(store, ctx)

    def inbound(msg: InboundMessage) -> Any:
        return apply_inbound(None, "smtp", msg, [], ctx, analyse(msg, "PV"))  # type: ignore[arg-type]

    t = time.perf_counter()
    await engine.start()
    load = time.perf_counter() - t
    pending = engine.pending
    # Warm up (statement cache, holiday tables), then measure in bursts of 50 concurrent writes.
    for i in range(100):
        await store.write(inbound(message(-i - 1, rng)))
    hooks.spent = engine.spent = 0.0
    t = time.perf_counter()
    for base in range(0, messages, 50):
        await asyncio.gather(*(store.submit(inbound(message(i, rng)))
                               for i in range(base, min(messages, base + 50))))
        await engine.fire_due()  # let the scheduler take the re-arming events
    wall = time.perf_counter() - t
    await engine.stop()
    await store.close()
    return {"n": n, "setup_s": setup, "heap_load_s": load, "pending": pending,
            "hooks_us": hooks.spent / messages * 1e6, "scheduler_us": engine.spent / messages * 1e6,
            "write_us": wall / messages * 1e6}


async def scheduler_timers(count: int, tmp: Path, window: float = 60.0) -> dict[str, float]:
    db = tmp / "timers.sqlite3"
    store = Store(db, synchronous="NORMAL")
    await store.open()
    await store.close()
    base = datetime.now(UTC)
    bulk_open_tickets(db, count, base + timedelta(seconds=5), timedelta(seconds=window), rng=random.Random(1))
    # Run the store and scheduler on a clock that reads `base` now, so the due instants written
    # above start 5 s after loading however long the setup took; it runs at real speed.
    offset = datetime.now(UTC) - base

    def clock() -> datetime:
        return datetime.now(UTC) - offset

    hooks = RoutingHooks(policies(tmp))
    ctx = ApplyContext(reference_prefix="PV", continuity_window=timedelta(0), default_queue="intake",
                       acknowledge=False, ack_hourly_limit=0, own_addresses=frozenset(), mail_domain="bench",
                       from_address="claims@bench", routing=hooks)
    store = Store(db, synchronous="NORMAL", clock=clock)
    store.context = ctx
    await store.open()
    engine = SlaEngine(store, ctx, clock=clock)
    # Warning instants as armed: an escalation that raises the priority moves the ticket to
    # another policy, which re-targets its clocks after the warning fired.
    armed = {row["ticket_id"]: row["warn_at"] for row in await store.fetchall(
        "SELECT ticket_id, warn_at FROM sla_clocks WHERE kind = 'first_response'")}
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await engine.start()
    extra = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    pending = engine.pending
    if clock() > base + timedelta(seconds=5):
        print(f"  (loading overran the first due time by {(clock() - base).total_seconds() - 5:.1f} s)")
    # Every warning falls due by base + 5 s + window; give the last ones a couple of seconds.
    await asyncio.sleep(max(0.0, (base + timedelta(seconds=7 + window) - clock()).total_seconds()))
    await engine.stop()
    rows = await store.fetchall(
        "SELECT ticket_id, at FROM events WHERE kind = 'sla_warning' AND json_extract(data, '$.clock') = 'first_response'")
    await store.close()
    late = sorted((datetime.fromisoformat(at) - datetime.fromisoformat(armed[ticket_id])).total_seconds()
                  for ticket_id, at in rows)
    return {"pending": pending, "extra_mb": extra / 2**20, "fired": len(late),
            "late_p50": statistics.median(late) if late else float("nan"),
            "late_p99": late[int(len(late) * 0.99) - 1] if late else float("nan"),
            "late_max": late[-1] if late else float("nan"), "early": sum(1 for x in late if x < 0)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--timers", type=int, default=100_000)
    args = parser.parse_args()
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="parvandeh-bench-sla-") as tmpdir:
        tmp = Path(tmpdir)
        results = []
        for n in args.sizes:
            r = await per_message_cost(n, args.messages, tmp)
            results.append(r)
            print(f"open tickets {n:>9,}: setup {r['setup_s']:.1f} s, scheduler loaded {r['pending']:,} pending in "
                  f"{r['heap_load_s']:.2f} s; per message: routing+SLA hooks {r['hooks_us']:.0f} µs, scheduler "
                  f"{r['scheduler_us']:.1f} µs, whole apply write {r['write_us']:.0f} µs")
            (tmp / f"routing-{n}.sqlite3").unlink()
        if len(results) > 1:
            first, last = results[0], results[-1]
            hooks_ratio = (last["hooks_us"] + last["scheduler_us"]) / (first["hooks_us"] + first["scheduler_us"])
            print(f"ratio {last['n']:,} / {first['n']:,}: routing+SLA {hooks_ratio:.2f}, "
                  f"whole write {last['write_us'] / first['write_us']:.2f}  (target <= 1.5)")
        if args.timers:
            r = await scheduler_timers(args.timers, tmp)
            print(f"scheduler with {r['pending']:,} pending timers: extra memory {r['extra_mb']:.1f} MB (target < 50); "
                  f"fired {r['fired']:,}; lateness p50 {r['late_p50'] * 1000:.0f} ms, p99 {r['late_p99'] * 1000:.0f} ms,"
                  f" max {r['late_max'] * 1000:.0f} ms (target each < 1 s); early {r['early']}")


if __name__ == "__main__":
    asyncio.run(main())
