"""Web chat benchmark: many concurrent visitors on loopback, message → ack latency.

    python bench/webchat.py                              # 500 clients, 1,000 msg/s, 20 s
    python bench/webchat.py --clients 200 --rate 400 --duration 10 --log-level warning
    python bench/webchat.py --null-sink                  # the chat server alone

The daemon runs in its own process (SQLite synchronous=FULL, logging at info as JSON to
/dev/null); the visitors in this one. Every client opens a websocket, says hello, and then sends
on a fixed schedule (rate / clients messages per second each, start times spread evenly), so the
offered load does not slow down when the server does (open loop). The server acknowledges a
message only after its inbox row committed, so send → ack is message → commit (→ ack). The
first message of each visitor opens a ticket whose acknowledgement is pushed back live, as in
production. Prints messages/s acknowledged, p50/p90/p99/max latency (also measured inside the
daemon, accept() → commit, without the visitors' process), errors, and the daemon's CPU time per
message; --null-sink acknowledges without storing, to tell the chat server's own cost
from the store's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchconfig import add_event_loop_option, write_config  # noqa: E402

import uvloop  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

WORDS = ["خسارت", "تصادف", "بیمه‌نامه", "کارشناس", "بدنه", "شخص ثالث", "مدارک", "پرونده", "پیگیری", "سلام"]


def config(tmp: Path) -> Path:
    return write_config(tmp, """
[webchat]
host = "127.0.0.1"
port = 0
rate_limit_per_minute = 0
new_sessions_per_ip_per_minute = 0
""", acknowledge=True)


def serve(conn: Connection, tmp: str, log_level: str, null_sink: bool, loop: str) -> None:
    """The daemon process: reports its ports; "mark" starts its CPU clock; "drain" answers with the
    time threading took to catch up, the CPU seconds used since the mark, and what was stored."""
    from config.loader import load_settings
    from config.logs import configure_logging
    from connectors.registry import settings_schemas
    from ingest import event_loop
    from ingest.daemon import Daemon, tune_garbage_collector
    from ingest.records import AcceptOutcome, RawPayload

    configure_logging(log_level, "json", stream=open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115

    async def main() -> None:
        daemon = Daemon(load_settings(config(Path(tmp)), environ={}, connector_schemas=settings_schemas()))
        accepted: list[RawPayload] = []
        if null_sink:
            # The chat server alone: every message "committed" at once, nothing stored.
            async def accept(payload: RawPayload) -> AcceptOutcome:
                accepted.append(payload)
                return AcceptOutcome(len(accepted), False)

            daemon.ingest.accept = accept  # type: ignore[method-assign]
        # Inside the daemon, accept() → commit: the latency without the visitors' own process.
        in_daemon: list[float] = []
        accept_and_commit = daemon.ingest.accept

        async def timed_accept(payload: RawPayload) -> AcceptOutcome:
            started = time.perf_counter()
            try:
                return await accept_and_commit(payload)
            finally:
                in_daemon.append(time.perf_counter() - started)

        daemon.ingest.accept = timed_accept  # type: ignore[method-assign]
        await daemon.start()
        tune_garbage_collector()  # as `run.py serve` does
        conn.send((daemon.http_port, daemon.connectors["webchat"].port))
        loop = asyncio.get_running_loop()
        cpu_mark = time.process_time()
        while (command := await loop.run_in_executor(None, conn.recv)) != "stop":
            if command == "mark":
                cpu_mark = time.process_time()
                continue
            started = time.perf_counter()
            await daemon.ingest.drained()
            stats = await daemon.store.fetchone(
                "SELECT (SELECT count(*) FROM tickets) AS tickets, (SELECT count(*) FROM messages"
                " WHERE direction = 'in') AS messages")
            conn.send((time.perf_counter() - started, time.process_time() - cpu_mark, stats["tickets"],
                       len(accepted) if null_sink else stats["messages"], sorted(in_daemon)))
        await daemon.stop()
        conn.send("stopped")

    event_loop.run(main(), loop)  # type: ignore[arg-type]


class Visitor:
    def __init__(self, ws: ClientConnection, index: int) -> None:
        self.ws = ws
        self.index = index
        self.sent: dict[str, float] = {}
        self.latencies: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.replies = 0

    async def read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame["type"] == "ack":
                started = self.sent.pop(frame["client_id"], None)
                if started is not None:
                    self.latencies.append((frame["client_id"], time.perf_counter() - started))
            elif frame["type"] == "error":
                self.errors.append(frame["code"])
            elif frame["type"] == "reply":
                self.replies += 1

    async def write(self, start: float, interval: float, count: int, rng: random.Random) -> None:
        for k in range(count):
            delay = start + k * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            client_id = f"v{self.index}-{k}"
            text = " ".join(rng.choices(WORDS, k=rng.choice([3, 10, 40])))
            self.sent[client_id] = time.perf_counter()
            await self.ws.send(json.dumps({"type": "message", "client_id": client_id, "text": text},
                                          ensure_ascii=False))


async def open_visitor(url: str, origin: str, index: int) -> Visitor:
    ws = await connect(url, origin=origin, compression=None, max_queue=None, open_timeout=60)
    await ws.send(json.dumps({"type": "hello", "session": None, "lang": "fa"}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return Visitor(ws, index)


async def load(http_port: int, ws_port: int, clients: int, rate: float, duration: float,
               mark: Callable[[], None]) -> dict[str, object]:
    url, origin = f"ws://127.0.0.1:{ws_port}/", f"http://127.0.0.1:{http_port}"
    visitors: list[Visitor] = []
    for batch in range(0, clients, 50):  # connect in batches: no SYN flood on the listen backlog
        visitors += await asyncio.gather(*(open_visitor(url, origin, i) for i in range(batch, min(clients, batch + 50))))
    readers = [asyncio.create_task(v.read()) for v in visitors]
    interval = clients / rate
    per_client = int(duration / interval)
    rng = random.Random(5)
    mark()
    begin = time.perf_counter() + 0.5
    await asyncio.gather(*(
        v.write(begin + interval * i / clients, interval, per_client, random.Random(rng.random()))
        for i, v in enumerate(visitors)
    ))
    sent_at_end = time.perf_counter()
    deadline = sent_at_end + 10
    while any(v.sent for v in visitors) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    elapsed = max(time.perf_counter(), sent_at_end) - begin
    for v in visitors:
        await v.ws.close()
    await asyncio.gather(*readers, return_exceptions=True)
    latencies = [x for v in visitors for _, x in v.latencies]
    # A visitor's first message opens a ticket (and its acknowledgement): the heavier kind.
    later = [x for v in visitors for client_id, x in v.latencies if not client_id.endswith("-0")]
    return {
        "sent": clients * per_client,
        "acked": len(latencies),
        "unacked": sum(len(v.sent) for v in visitors),
        "errors": sorted({e for v in visitors for e in v.errors}),
        "replies": sum(v.replies for v in visitors),
        "elapsed": elapsed,
        "latencies": latencies,
        "later": later,
    }


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second, all clients together")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--null-sink", action="store_true",
                        help="acknowledge without storing: the chat server's own cost, without the store's")
    add_event_loop_option(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="parvandeh-bench-") as tmp:
        parent, child = mp.Pipe()
        daemon = mp.get_context("spawn").Process(target=serve, args=(child, tmp, args.log_level, args.null_sink, args.event_loop))
        daemon.start()
        http_port, ws_port = parent.recv()
        try:
            result = uvloop.run(load(http_port, ws_port, args.clients, args.rate, args.duration,
                                      lambda: parent.send("mark")))
            parent.send("drain")
            drain, cpu, tickets, messages, in_daemon = parent.recv()
        finally:
            parent.send("stop")
            parent.recv()
            daemon.join()

    lat = sorted(result["latencies"])  # type: ignore[arg-type]
    ms = 1000
    store = "--null-sink: nothing stored" if args.null_sink else "SQLite synchronous=FULL"
    print(f"web chat: {args.clients} concurrent websocket clients, offered {args.rate:,.0f} msg/s for "
          f"{args.duration:g} s ({store}, daemon logging at {args.log_level}, {args.event_loop}, {os.cpu_count()} CPUs)")
    print(f"  sent {result['sent']:,}  acknowledged {result['acked']:,}  unacknowledged {result['unacked']:,}"
          f"  errors {result['errors'] or 'none'}  live replies {result['replies']:,}")
    print(f"  throughput      {result['acked'] / result['elapsed']:,.0f} msg/s acknowledged")  # type: ignore[operator]
    for label, values in (("message → ack  ", lat), ("  not the first", sorted(result["later"])),  # type: ignore[arg-type]
                          ("  in the daemon", in_daemon)):
        if values:
            print(f"  {label} p50 {statistics.median(values) * ms:.1f} ms   p90 {percentile(values, 90) * ms:.1f} ms"
                  f"   p99 {percentile(values, 99) * ms:.1f} ms   max {values[-1] * ms:.1f} ms")
    print(f"  daemon CPU      {cpu * 1e6 / max(messages, 1):,.0f} µs per message (all threads, connections"
          f" excluded): one free core would take ~{messages / max(cpu, 1e-9):,.0f} msg/s")
    print(f"  threading caught up {drain * ms:.0f} ms after the last ack; {tickets:,} tickets, "
          f"{messages:,} inbound messages accepted")


if __name__ == "__main__":
    main()
