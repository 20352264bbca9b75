"""Ingest benchmark: realistic mail through accept()+processing, and over real SMTP.

    python bench/ingest.py                 # N = 1,000 and 20,000
    python bench/ingest.py --sizes 5000

Prints, per N: messages/s through accept() to processed-and-threaded (in-process), messages/s
over SMTP from concurrent sessions (a sender process of their own, every mail encoded before the
clock starts), p50/p99 latency from the SMTP DATA command to the ticket being visible (committed
and threaded), and peak RSS; then the CPU time per message of
each daemon thread and of the normaliser process during the accept run (steadier than the rates on
a shared machine), and the ratio of per-message cost between the largest and smallest N (near 1
means cost does not grow with the store).
SQLite runs at synchronous=FULL, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from multiprocessing.synchronize import Event
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop  # noqa: E402

from benchconfig import add_event_loop_option, write_config  # noqa: E402

from config.logs import configure_logging  # noqa: E402
from connectors.registry import settings_schemas  # noqa: E402
from config.loader import load_settings  # noqa: E402
from ingest import event_loop  # noqa: E402
from ingest.daemon import Daemon, tune_garbage_collector  # noqa: E402
from ingest.email_payload import email_dedupe_key  # noqa: E402
from ingest.records import RawPayload  # noqa: E402

PERSIAN = ["خسارت", "تصادف", "بیمه‌نامه", "کارشناس", "بدنه", "شخص ثالث", "بیمارستان", "مدارک", "پرونده", "پیگیری"]
ENGLISH = ["claim", "accident", "policy", "adjuster", "damage", "hospital", "documents", "invoice", "follow-up"]


def make_mails(n: int, seed: int = 7) -> list[bytes]:
    """Mixed sizes, Persian and English, ~15 % with attachments, 30 % replies to earlier mail."""
    rng = random.Random(seed)
    mails: list[bytes] = []
    ids: list[tuple[str, str]] = []
    for i in range(n):
        msg = EmailMessage()
        sender = f"customer{rng.randrange(n // 3 + 1)}@example.com"
        words = PERSIAN if rng.random() < 0.6 else ENGLISH
        msg["From"] = sender
        msg["To"] = "claims@parvandeh.test"
        mid = f"bench-{seed}-{i}@example.com"
        msg["Message-ID"] = f"<{mid}>"
        if ids and rng.random() < 0.3:
            parent, subject = rng.choice(ids)
            msg["In-Reply-To"] = f"<{parent}>"
            msg["References"] = f"<{parent}>"
            msg["Subject"] = f"Re: {subject}"
        else:
            subject = " ".join(rng.choices(words, k=4))
            msg["Subject"] = subject
        body = " ".join(rng.choices(words, k=rng.choice([20, 80, 400, 1500])))
        msg.set_content(body)
        if rng.random() < 0.15:
            msg.add_attachment(rng.randbytes(rng.choice([2_000, 40_000, 200_000])), maintype="image",
                               subtype="jpeg", filename=f"photo-{i}.jpg")
        ids.append((mid, subject))
        mails.append(msg.as_bytes(policy=SMTP_POLICY))
    return mails


def config(tmp: Path) -> Path:
    return write_config(tmp, """
[ingest]
normaliser_processes = 1
[smtp]
port = 0
""")


def _cpu_by_thread() -> dict[str, float]:
    """CPU seconds so far of each of this process's threads (by Python name) and of its normaliser
    processes: steadier than wall-clock rates on a shared machine, and it says where time goes."""
    names = {t.native_id: t.name.split(" ")[0].split("_")[0] for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = {}

    def add(name: str, stat_path: str) -> None:
        try:
            fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread or process just ended
            return
        cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick

    for tid in os.listdir("/proc/self/task"):
        add(names.get(int(tid), "other threads"), f"/proc/self/task/{tid}/stat")
    for child in mp.active_children():
        add("normaliser process", f"/proc/{child.pid}/stat")
    return cpu


async def bench_accept(mails: list[bytes]) -> tuple[float, dict[str, float]]:
    """Messages per second through accept() to threaded, and CPU µs per message by thread."""
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(load_settings(config(Path(tmp)), environ={}, connector_schemas=settings_schemas()))
        await daemon.start()
        tune_garbage_collector()  # as `run.py serve` does
        before = _cpu_by_thread()
        start = time.perf_counter()
        sem = asyncio.Semaphore(64)  # as many concurrent senders as a busy listener sees

        async def one(raw: bytes) -> None:
            async with sem:
                await daemon.ingest.accept(RawPayload("email", "bench", email_dedupe_key(raw), "mime", raw,
                                                      datetime.now(UTC)))

        await asyncio.gather(*(one(m) for m in mails))
        await daemon.ingest.drained()
        elapsed = time.perf_counter() - start
        after = _cpu_by_thread()
        await daemon.stop()
    cpu_us = {name: (after[name] - before.get(name, 0.0)) / len(mails) * 1e6 for name in after}
    return len(mails) / elapsed, {name: us for name, us in sorted(cpu_us.items(), key=lambda kv: -kv[1]) if us >= 1}


def data_section(raw: bytes) -> bytes:
    """A mail as it travels after DATA: CRLF lines, leading dots doubled, ended by `.`."""
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", raw) + b".\r\n"


async def _reply(reader: asyncio.StreamReader, code: bytes) -> bytes:
    while (line := await reader.readline())[3:4] == b"-":  # the lines of a multi-line reply
        pass
    if not line.startswith(code):
        raise SystemExit(f"SMTP: expected {code.decode()}, got {line!r}")
    return line


async def _session(port: int, sections: list[bytes], sent: list[tuple[int, float]]) -> None:
    """One SMTP session sending its share, a transaction at a time as an MTA does (no pipelining)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _reply(reader, b"220")
    writer.write(b"EHLO bench.example.com\r\n")
    await _reply(reader, b"250")
    for section in sections:
        writer.write(b"MAIL FROM:<bench@example.com>\r\n")
        await _reply(reader, b"250")
        writer.write(b"RCPT TO:<claims@parvandeh.test>\r\n")
        await _reply(reader, b"250")
        started = time.monotonic()
        writer.write(b"DATA\r\n")
        await _reply(reader, b"354")
        writer.write(section)
        reply = await _reply(reader, b"250")
        sent.append((int(reply.split()[-1]), started))  # the listener's 250 names the inbox row
    writer.write(b"QUIT\r\n")
    await _reply(reader, b"221")
    writer.close()


def _clients(port: int, mails: list[bytes], sessions: int, ready: Event, go: Event, out: mp.Queue) -> None:
    """The sending MTAs, in a process of their own (forked: the mail is shared, not copied):
    concurrent sessions on one uvloop loop, every mail encoded before the clock starts. smtplib
    took ~0.7 ms of CPU a mail on the daemon's two cores; this ~0.2 ms."""
    shares = [[data_section(m) for m in mails[i::sessions]] for i in range(sessions)]
    sent: list[tuple[int, float]] = []

    async def run() -> None:
        await asyncio.gather(*(_session(port, share, sent) for share in shares))

    ready.set()
    go.wait()
    cpu = time.process_time()
    uvloop.run(run())
    out.put((sent, time.process_time() - cpu))


async def bench_smtp(mails: list[bytes], clients: int) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(load_settings(config(Path(tmp)), environ={}, connector_schemas=settings_schemas()))
        visible: dict[int, float] = {}
        daemon.ingest.on_applied.append(lambda inbox_id, applied: visible.__setitem__(inbox_id, time.monotonic()))
        await daemon.start()
        tune_garbage_collector()  # as `run.py serve` does
        port = daemon.connectors["smtp"].port  # type: ignore[attr-defined]
        ctx = mp.get_context("fork")
        out: mp.Queue = ctx.Queue()
        ready, go = ctx.Event(), ctx.Event()
        sender = ctx.Process(target=_clients, args=(port, mails, clients, ready, go, out))
        sender.start()
        await asyncio.to_thread(ready.wait)
        start = time.perf_counter()
        go.set()
        sent, client_cpu = await asyncio.to_thread(out.get)
        await asyncio.to_thread(sender.join)
        await daemon.ingest.drained()
        elapsed = time.perf_counter() - start
        await daemon.stop()
    latencies = sorted(visible[i] - t0 for i, t0 in sent)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return len(mails) / elapsed, p50, p99, client_cpu / len(mails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 20_000])
    parser.add_argument("--clients", type=int, default=8)
    add_event_loop_option(parser)
    args = parser.parse_args()
    configure_logging(level="warning")
    per_message: dict[int, float] = {}
    threads: list[str] = []
    print(f"ingest: SQLite synchronous=FULL, {os.cpu_count()} CPUs, {args.clients} SMTP clients, {args.event_loop}")
    print(f"{'N':>7} {'accept msg/s':>13} {'SMTP msg/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS MB':>12}")
    for n in args.sizes:
        mails = make_mails(n)
        rate, cpu_us = event_loop.run(bench_accept(mails), args.event_loop)
        smtp_rate, p50, p99, client_cpu = event_loop.run(bench_smtp(mails, args.clients), args.event_loop)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        per_message[n] = 1 / rate
        print(f"{n:>7} {rate:>13,.0f} {smtp_rate:>11,.0f} {p50:>8.1f} {p99:>8.1f} {rss:>12,.0f}")
        threads.append(f"{n:>7}  CPU µs per message in the accept run: {sum(cpu_us.values()):,.0f} = "
                       + ", ".join(f"{name} {us:,.0f}" for name, us in cpu_us.items())
                       + f"; the SMTP clients' CPU µs per message {client_cpu * 1e6:,.0f}")
    print("\n".join(threads))
    if len(per_message) > 1:
        small, large = min(per_message), max(per_message)
        print(f"cost per message N={large:,} / N={small:,}: {per_message[large] / per_message[small]:.2f}")


if __name__ == "__main__":
    main()
