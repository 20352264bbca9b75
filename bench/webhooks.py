"""Webhook benchmark: signed Twilio SMS webhooks at concurrency 50 against a daemon on loopback.

    python bench/webhooks.py                     # N = 20,000, concurrency 50
    python bench/webhooks.py -n 5000 -c 100 --log-level warning

The daemon runs in its own process (SQLite synchronous=FULL, logging at info as JSON to
/dev/null, as in production but without the disk); the load generator in this one: every
request signed and written out before the clock starts, then sent over 50 keep-alive connections
by a bare asyncio protocol on uvloop, so that it takes as little of the two cores as it can. Each webhook is answered 200 only after its inbox row
committed, so the client-side time is request → commit (→ response). Prints webhooks/s, p50/p90/
p99/max latency, the daemon's CPU time per webhook (steadier than wall-clock figures on a shared
machine), and how long threading (contact, ticket, message) took to catch up.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchconfig import add_event_loop_option, write_config  # noqa: E402

import uvloop  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

ACCOUNT_SID = "AC" + "be" * 16
TOKEN = "bench-auth-token"
OUR_NUMBER = "+982191001234"
WORDS = ["خسارت", "تصادف", "بیمه‌نامه", "کارشناس", "بدنه", "شخص ثالث", "مدارک", "پرونده", "پیگیری", "سلام"]


def config(tmp: Path) -> Path:
    return write_config(tmp, f"""
[twilio]
account_sid = "{ACCOUNT_SID}"
from_number = "{OUR_NUMBER}"
api_base_url = "http://127.0.0.1:9"
status_callback = false
""")


def serve(conn: Connection, tmp: str, log_level: str, loop: str) -> None:
    """The daemon process: reports its HTTP port, then answers "drain" with the time it took."""
    os.environ["PARVANDEH_TWILIO_AUTH_TOKEN"] = TOKEN
    from config.loader import load_settings
    from config.logs import configure_logging
    from connectors.registry import settings_schemas
    from ingest import event_loop
    from ingest.daemon import Daemon, tune_garbage_collector

    configure_logging(log_level, "json", stream=open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115

    async def main() -> None:
        daemon = Daemon(load_settings(config(Path(tmp)), environ={}, connector_schemas=settings_schemas()))
        await daemon.start()
        tune_garbage_collector()  # as `run.py serve` does
        conn.send(daemon.http_port)
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, conn.recv)) != "stop":
            if command == "cpu":  # the process's, and the event loop thread's (this one's)
                conn.send((time.process_time(), time.thread_time(), daemon.ingest.processed))
                continue
            started = time.perf_counter()
            await daemon.ingest.drained()
            tickets = await daemon.store.fetchone("SELECT count(*) AS n FROM tickets")
            conn.send((time.perf_counter() - started, tickets["n"], daemon.ingest.processed, time.process_time()))
        await daemon.stop()
        conn.send("stopped")

    event_loop.run(main(), loop)  # type: ignore[arg-type]


def signed_requests(url: str, n: int, seed: int = 11) -> list[bytes]:
    """n SMS webhooks from ~n/10 customers, bodies of 5–60 Persian words, each signed for `url`,
    as the HTTP/1.1 requests Twilio would send."""
    rng = random.Random(seed)
    validator = RequestValidator(TOKEN)
    target = urlsplit(url)
    requests = []
    for i in range(n):
        params = {
            "MessageSid": f"SM{i:032x}", "SmsSid": f"SM{i:032x}", "AccountSid": ACCOUNT_SID,
            "From": f"+98912{rng.randrange(max(n // 10, 1)):07d}", "To": OUR_NUMBER,
            "Body": " ".join(rng.choices(WORDS, k=rng.choice([5, 15, 60]))), "NumMedia": "0",
            "NumSegments": "1", "ApiVersion": "2010-04-01",
        }
        body = urlencode(params).encode()
        head = (f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\n"
                f"X-Twilio-Signature: {validator.compute_signature(url, params)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        requests.append(head.encode() + body)
    return requests


class KeepAliveClient(asyncio.Protocol):
    """One keep-alive connection sending ready-made requests one after another and timing each
    until its whole response is in. A few µs a request: aiohttp's client took ~0.4 ms, a third of
    what the daemon spends, on the same two cores (Twilio's senders are not on our machine)."""

    def __init__(self, requests: Iterator[bytes], latencies: list[float], failures: list[str]) -> None:
        self.requests = requests
        self.latencies = latencies
        self.failures = failures
        self.finished = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.started = 0.0
        self.done = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send_next()

    def send_next(self) -> None:
        assert self.transport is not None
        request = next(self.requests, None)
        if request is None:
            self.done = True
            self.transport.close()
            return
        self.buffer = b""
        self.started = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.failures.append("a response without Content-Length")
            self.done = True
            self.transport.close()  # type: ignore[union-attr]
            return
        length = int(head[at + 17:].split(b"\r\n", 1)[0])
        if len(self.buffer) < head_end + 4 + length:
            return
        self.latencies.append(time.perf_counter() - self.started)
        if self.buffer[9:12] != b"200":
            self.failures.append(self.buffer[9:12].decode())
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.failures.append(f"connection lost: {exc}")
        self.finished.set_result(None)


async def load(url: str, requests: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    failures: list[str] = []
    pending = iter(requests)
    target = urlsplit(url)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    clients = [
        (await loop.create_connection(lambda: KeepAliveClient(pending, latencies, failures),
                                      target.hostname, target.port))[1]
        for _ in range(concurrency)
    ]
    await asyncio.gather(*(client.finished for client in clients))
    elapsed = time.perf_counter() - started
    if failures or len(latencies) != len(requests):
        raise SystemExit(f"{len(requests) - len(latencies)} webhooks were not answered, {len(failures)} not "
                         f"accepted: {sorted(set(failures))}")
    return elapsed, latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="webhooks to send")
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_event_loop_option(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        # Not a daemonic process: the daemon under test starts worker processes of its own.
        daemon = ctx.Process(target=serve, args=(theirs, tmp, args.log_level, args.event_loop))
        daemon.start()
        theirs.close()  # so recv() fails instead of hanging when the daemon process dies
        try:
            port = ours.recv()
            url = f"http://127.0.0.1:{port}/webhooks/twilio/messages"
            requests = signed_requests(url, args.n)
            uvloop.run(load(url, requests[: min(500, args.n)], args.concurrency))  # warm-up, also stored
            ours.send("cpu")
            cpu_before, loop_before, _ = ours.recv()
            load_cpu = time.process_time()
            elapsed, latencies = uvloop.run(load(url, requests[min(500, args.n):], args.concurrency))
            load_cpu = time.process_time() - load_cpu
            ours.send("cpu")
            _, loop_after, threaded_during_load = ours.recv()
            ours.send("drain")
            drain_s, tickets, processed, cpu_after = ours.recv()
            ours.send("stop")
            ours.recv()
        except EOFError:
            raise SystemExit("the daemon process died; its error is above") from None
        finally:
            daemon.join(10)
            if daemon.is_alive():
                daemon.terminate()

    sent = len(latencies)
    print(f"webhooks: {sent} signed Twilio SMS, concurrency {args.concurrency}, SQLite synchronous=FULL, "
          f"{os.cpu_count()} CPUs, daemon log level {args.log_level}, {args.event_loop}")
    print(f"throughput: {sent / elapsed:,.0f} webhooks/s ({elapsed:.2f} s)")
    print(f"request→commit latency: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
          f"p90 {percentile(latencies, 90) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")
    print(f"daemon CPU: {(cpu_after - cpu_before) / sent * 1e6:.0f} µs per webhook, accepted and threaded "
          "(the daemon process's threads; not its normaliser worker processes, nor the load generator)")
    print(f"event loop thread CPU while sending: {(loop_after - loop_before) / sent * 1e6:.0f} µs per webhook "
          f"({threaded_during_load} messages threaded by then); load generator CPU: {load_cpu / sent * 1e6:.0f} µs")
    print(f"threading caught up {drain_s:.2f} s after the last 200 ({processed} messages into {tickets} tickets)")


if __name__ == "__main__":
    main()
