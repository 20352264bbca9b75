"""Console benchmark: a store with 100,000 tickets and 1,000,000 messages, a real daemon and
agent API on loopback, and the Textual console driven headless.

    python bench/console.py [--tickets 100000] [--messages 1000000] [--store PATH] [--rounds 100]
                            [--loaded 3000]

Measures (targets from issue 5):
- console start to first list (connect, queues, first page shown) < 1 s
- opening a 500-message thread (request to the thread shown) < 300 ms
- a message committed to it showing in the open console, p99 < 250 ms
- with --loaded rows paged into the list, a ticket not loaded (written to by another agent)
  joining the top of the list: from the request to the row shown (no target; it redrew every
  loaded row before)

The daemon and agent API run in a child process, the console in this one, as in production.

The store is generated once with bulk SQL (the ingest pipeline would take hours for 1M
messages) and reused from --store; delete the file to regenerate. The search indexer is off so
it does not compete with the measurements (indexing throughput is a separate matter).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.loader import load_settings  # noqa: E402
from connectors.registry import settings_schemas  # noqa: E402
from console.app import ConsoleApp  # noqa: E402
from console.client import AgentClient  # noqa: E402
from console.main_screen import MainScreen  # noqa: E402
from console.render import Prefs  # noqa: E402
from console.ticket_list import TicketList  # noqa: E402
from console.ticket_screen import TicketScreen  # noqa: E402
from ingest import event_loop  # noqa: E402
from ingest.agents import create_agent, new_token  # noqa: E402
from ingest.daemon import Daemon, tune_garbage_collector  # noqa: E402
from ingest.migrations import migrate  # noqa: E402

QUEUES = ("intake", "motor", "property", "health")
CHANNELS = ("email", "sms", "whatsapp", "telegram", "webchat", "call")
BIG_THREAD = 500
WORDS = ("خسارت خودرو تصادف بیمه بدنه شخص ثالث کارشناس پلاک مدارک ارزیابی پرداخت"
         " claim policy garage windscreen photo invoice documents").split()


def generate(path: Path, tickets: int, messages: int) -> str:
    """Fill a fresh store; returns the reference of the 500-message ticket."""
    rng = random.Random(5)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    migrate(conn)
    now = datetime.now(UTC)
    conn.execute("BEGIN")
    contacts = tickets // 2
    conn.executemany("INSERT INTO contacts (id, display_name, created_at) VALUES (?, ?, ?)",
                     ((i, f"مشتری {i}", now.isoformat()) for i in range(1, contacts + 1)))
    conn.executemany("INSERT INTO identities (contact_id, kind, value, created_at) VALUES (?, ?, ?, ?)",
                     ((i, "phone", f"+98912{i:07d}", now.isoformat()) for i in range(1, contacts + 1)))
    per_ticket = [1] * tickets
    for _ in range(messages - tickets - (BIG_THREAD - 1)):
        per_ticket[rng.randrange(tickets)] += 1
    per_ticket[0] = BIG_THREAD
    ticket_rows, message_rows, event_rows = [], [], []
    message_id = 0
    for t in range(1, tickets + 1):
        updated = now - timedelta(minutes=rng.randrange(60 * 24 * 60))
        status = "closed" if rng.random() < 0.1 else rng.choice(("new", "assigned", "awaiting_documents"))
        count = per_ticket[t - 1]
        ticket_rows.append((t, f"PV-1404-{t:06d}", rng.randrange(1, contacts + 1), " ".join(rng.sample(WORDS, 4)),
                            status, rng.choice(QUEUES), rng.choice(("low", "normal", "high", "urgent")),
                            rng.choice(CHANNELS), count, (updated - timedelta(days=1)).isoformat(), updated.isoformat(),
                            updated.isoformat()))
        event_rows.append((t, updated.isoformat(), "ticket_created", "{}"))
        for n in range(count):
            message_id += 1
            at = (updated - timedelta(minutes=count - n)).isoformat()
            text = " ".join(rng.choices(WORDS, k=rng.randrange(5, 40)))
            message_rows.append((message_id, t, "in" if n % 3 != 1 else "out", rng.choice(CHANNELS),
                                 f"+98912{t:07d}", text, text, at))
            event_rows.append((t, at, "message_received", json.dumps({"message_row": message_id})))
        if len(message_rows) > 50_000:
            _flush(conn, ticket_rows, message_rows, event_rows)
    _flush(conn, ticket_rows, message_rows, event_rows)
    conn.execute("UPDATE search_state SET last_message_id = (SELECT max(id) FROM messages)")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return "PV-1404-000001"


def _flush(conn: sqlite3.Connection, tickets: list[tuple], messages: list[tuple], events: list[tuple]) -> None:
    conn.executemany(
        "INSERT INTO tickets (id, ref, contact_id, subject, status, queue, priority, channel, message_count,"
        " created_at, updated_at, last_inbound_at, conversation_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)", tickets)
    conn.executemany(
        "INSERT INTO messages (id, ticket_id, direction, channel, sender, text, display_text, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", messages)
    conn.executemany("INSERT INTO events (ticket_id, at, kind, data) VALUES (?, ?, ?, ?)", events)
    tickets.clear()
    messages.clear()
    events.clear()


async def until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark step did not complete")
        await asyncio.sleep(0.0005)


async def painted(app: ConsoleApp) -> None:
    """Wait for the next screen refresh: what was just set is laid out and drawn."""
    done = asyncio.Event()
    app.call_after_refresh(done.set)
    await done.wait()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def serve(store_path: Path, ready_file: Path) -> None:
    """The daemon side, in its own process as in production: daemon, agent API, one token."""
    work = Path(tempfile.mkdtemp(prefix="parvandeh-bench-"))
    config = work / "bench.toml"
    config.write_text(
        f'[store]\npath = "{store_path}"\nattachments_dir = "{work / "att"}"\nsynchronous = "NORMAL"\n'
        '[http]\nhost = "127.0.0.1"\nport = 0\n[smtp]\nhost = "127.0.0.1"\nport = 0\n'
        '[agent_api]\nport = 0\n', encoding="utf-8")
    settings = load_settings(config, environ={}, connector_schemas=settings_schemas())
    daemon = Daemon(settings)
    await daemon.start()
    tune_garbage_collector()  # as `run.py serve` does
    api = daemon.agent_api
    token = new_token()
    await daemon.store.write(create_agent(f"bench{time.time_ns()}", "supervisor", frozenset(), token))
    ready_file.write_text(json.dumps({"port": api.port, "token": token}))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await daemon.stop()


async def new_rows_on_top(app: ConsoleApp, url: str, token: str, loaded: int, rounds: int) -> Any:
    """Page `loaded` rows into the list, then have another agent write a note on each of
    `rounds` tickets below them: each joins the top as a new row."""
    screen = app.screen
    assert isinstance(screen, MainScreen)
    tickets = screen.tickets
    while len(tickets.order) < loaded and tickets.cursor is not None:
        await screen.on_ticket_list_need_more(TicketList.NeedMore())
    if tickets.cursor is None:
        return f"not measured: all {len(tickets.order)} open tickets are loaded (--loaded is too high)"
    writer = AgentClient(url, token, reconnect=False)
    await writer.connect()
    below = (await writer.request("list_tickets", cursor=tickets.cursor, limit=rounds))["tickets"]
    latencies = []
    for t in below:
        ref = t["reference"]
        sent = time.perf_counter()
        await writer.request("note", ref=ref, text="bench note")
        await until(lambda ref=ref: tickets.order[:1] == [ref], timeout=5)
        await painted(app)
        latencies.append((time.perf_counter() - sent) * 1000)
    await writer.close()
    return {"loaded": len(tickets.order) - len(latencies), "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "max": max(latencies)}


async def measure(url: str, token: str, big_ref: str, rounds: int, loaded: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    app = ConsoleApp(url, token, Prefs())
    started = time.perf_counter()
    async with app.run_test(size=(160, 45)) as pilot:
        await until(lambda: isinstance(app.screen, MainScreen) and app.screen.tickets.row_count > 0)
        results["start_to_first_list_ms"] = (time.perf_counter() - started) * 1000
        await pilot.pause(1.0)  # let the queue panel finish loading
        results["new_row_on_top_ms"] = await new_rows_on_top(app, url, token, loaded, rounds)

        opens = []
        for _ in range(10):
            begun = time.perf_counter()
            app.open_ticket(big_ref)
            await until(lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
            await painted(app)
            opens.append((time.perf_counter() - begun) * 1000)
            # The newest page is sent; the rest is counted in `earlier` and paged in on demand.
            assert len(app.screen.detail["messages"]) + app.screen.detail.get("earlier", 0) >= BIG_THREAD
            app.pop_screen()
            await pilot.pause()
        results["open_500_thread_ms"] = {"median": statistics.median(opens), "max": max(opens)}

        app.open_ticket(big_ref)
        await until(lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        screen = app.screen
        # A second agent writes notes; the time runs from sending the request (an upper bound on
        # the commit) to the note being in the open console's thread.
        writer = AgentClient(url, token, reconnect=False)
        await writer.connect()
        latencies = []
        for n in range(rounds):
            sent = time.perf_counter()
            row = (await writer.request("note", ref=big_ref, text=f"bench note {n}"))["message_row"]
            await until(lambda: f"m{row}" in screen.messages, timeout=5)
            await painted(app)
            latencies.append((time.perf_counter() - sent) * 1000)
        await writer.close()
        results["commit_to_visible_ms"] = {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                                           "max": max(latencies)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "parvandeh-console-bench.sqlite3")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--loaded", type=int, default=3000, help="rows paged into the list for the new-row figure")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the daemon-side process
    args = parser.parse_args()
    if args.serve:
        event_loop.run(serve(args.store, args.serve), "uvloop")  # as `run.py serve` by default
        return 0
    if not args.store.exists():
        began = time.perf_counter()
        generate(args.store, args.tickets, args.messages)
        print(f"generated {args.tickets} tickets / {args.messages} messages in {time.perf_counter() - began:.0f} s")
    ready = Path(tempfile.mkdtemp(prefix="parvandeh-bench-")) / "ready.json"
    server = subprocess.Popen([sys.executable, __file__, "--store", str(args.store), "--serve", str(ready)],
                              stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the benchmark daemon did not start")
            time.sleep(0.05)
        conf = json.loads(ready.read_text())
        results = asyncio.run(measure(f"ws://127.0.0.1:{conf['port']}", conf["token"], "PV-1404-000001", args.rounds,
                                      args.loaded))
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
