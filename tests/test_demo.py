"""`python run.py demo`: simulated customers reach a throwaway daemon on every channel through the
real protocols (SMTP, signed Twilio and PBX webhooks, the chat websocket, the Bot API stand-in),
the desk's acknowledgements come back through the stand-ins, and the demo agent's token logs in."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from console.client import AgentClient
from ingest import queries
from ingest.demo import CALLS_SECRET_ENV, Demo, SMS_NUMBER
from ingest.persian import ascii_digits

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
CHANNELS = {"email", "sms", "whatsapp", "call", "telegram", "webchat"}


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        await asyncio.sleep(0.1)


def inbound(detail: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    return [m for m in detail["messages"] if m["direction"] == "in" and m["channel"] == channel]


async def test_customers_open_tickets_on_every_channel_and_follow_ups_join_them(tmp_path: Path) -> None:
    reports: list[str] = []
    demo = Demo(tmp_path, interval=0.3, report=reports.append, rounds=1)
    await demo.start()
    try:
        assert demo.daemon is not None
        store = demo.daemon.store

        async def details() -> list[dict[str, Any]] | None:
            tickets = await queries.list_tickets(store)
            found = [await queries.ticket_detail(store, t["reference"]) for t in tickets]
            # Every customer's first message and follow-up (Persian-digit reference, same phone,
            # reply to the acknowledgement, contact shared, chat) is threaded.
            threaded = [d for d in found if d and len([m for m in d["messages"] if m["direction"] == "in"]) >= 2]
            return found if len(threaded) >= 6 else None

        found = await eventually(details, 30, "six customers' follow-ups threaded onto their tickets")
        channels = {m["channel"] for d in found for m in d["messages"] if m["direction"] == "in"}
        assert channels == CHANNELS

        def ticket_with(*wanted: str) -> dict[str, Any]:
            return next(d for d in found if all(inbound(d, ch) for ch in wanted))

        accident = ticket_with("email", "sms")  # mailed, then SMSed quoting the ref in Persian digits
        assert accident["queue"] == "auto" and accident["priority"] == "high"
        assert accident["reference"] in ascii_digits(inbound(accident, "sms")[0]["text"])
        assert "۱۴۰" in inbound(accident, "sms")[0]["text"]
        hospital = ticket_with("whatsapp")
        assert hospital["queue"] == "health" and len(inbound(hospital, "whatsapp")) == 2
        assert ticket_with("call", "sms")  # a missed call, then an SMS from the same number
        assert len(inbound(ticket_with("telegram"), "telegram")) == 2  # a question, then their contact
        assert len(inbound(ticket_with("webchat"), "webchat")) == 2
        english = [d for d in found if len(inbound(d, "email")) == 2]  # a reply to our acknowledgement
        assert english and english[0]["queue"] == "health"

        # Acknowledgements left through the stand-ins, never the outside world.
        assert demo.sink.received and demo.bot_api.bot(demo.secrets.telegram_token).sent
        assert {form["From"] for form in demo.twilio.sent} >= {SMS_NUMBER}
        assert not [line for line in reports if "failed" in line], reports

        client = AgentClient(demo.agent_api_url, demo.token, reconnect=False)
        welcome = await client.connect()
        try:
            assert welcome["agent"]["name"] == "demo" and welcome["agent"]["role"] == "supervisor"
            page = await client.request("list_tickets", limit=50)
            assert {t["reference"] for t in page["tickets"]} == {d["reference"] for d in found}
        finally:
            await client.close()
    finally:
        await demo.stop()
    assert CALLS_SECRET_ENV not in os.environ  # the demo's secrets leave with it


CLI = (
    "import argparse, sys\n"
    "from ingest.demo import add_cli_arguments, cli_demo\n"
    "parser = argparse.ArgumentParser()\n"
    "add_cli_arguments(parser)\n"
    "sys.exit(cli_demo(parser.parse_args(sys.argv[1:])))\n"
)


async def test_headless_demo_prints_a_working_token_and_stops_cleanly_on_ctrl_c() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "--no-console", "--interval", "0.5", cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        printed: dict[str, str] = {}
        async with asyncio.timeout(20):
            while not {"agent API", "token"} <= printed.keys():
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                assert line, f"demo exited early: {(await proc.stderr.read()).decode()[-2000:]}"  # type: ignore[union-attr]
                key, _, value = line.partition(":")
                printed[key.strip()] = value.split()[0] if value.split() else ""

        client = AgentClient(printed["agent API"], printed["token"], reconnect=False)
        await client.connect()
        try:
            async def tickets() -> list[dict[str, Any]]:
                return (await client.request("list_tickets", limit=10))["tickets"]

            await eventually(tickets, 15, "a simulated customer's ticket through the agent API")
        finally:
            await client.close()

        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "demo stopped" in out.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_run_py_demo_takes_lang_like_the_console(tmp_path: Path) -> None:
    from console.__main__ import configured_prefs
    from run import build_parser

    def language(*argv: str) -> str:
        args = build_parser().parse_args(["demo", *argv])
        return configured_prefs(args, args.config).language

    english = tmp_path / "parvandeh.toml"
    english.write_text('[console]\nlanguage = "en"\n', encoding="utf-8")
    assert language() == "fa"  # the shipped [console] language
    assert language("--lang", "en") == "en"
    assert language("--config", str(english)) == "en"
    assert language("--config", str(english), "--lang", "fa") == "fa"  # --lang wins, as for `console`
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--lang", "de"])


@pytest.mark.skipif(sys.platform == "win32", reason="runs the console on a pseudo-terminal")
def test_demo_opens_the_console_in_the_language_asked() -> None:
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "run.py", "demo", "--lang", "en", "--interval", "0.5"], cwd=REPO,
                            stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    shown = b""

    def read(timeout: float) -> None:
        nonlocal shown
        if select.select([master], [], [], timeout)[0]:
            try:
                shown += os.read(master, 65536)
            except OSError:  # the console closed the terminal
                time.sleep(timeout)

    try:
        deadline = time.monotonic() + 30
        while b"Quit" not in shown:  # the key bar, in English
            assert proc.poll() is None and time.monotonic() < deadline, shown.decode(errors="replace")[-2000:]
            read(0.2)
        assert "خروج"[::-1] not in shown.decode(errors="replace")  # and not in Persian
        os.write(master, b"\x11")  # ctrl+q
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            read(0.2)  # the console must not block on a full terminal while it quits
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
