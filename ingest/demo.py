"""`python run.py demo`: the product working in one command, on one machine.

A throwaway daemon (SQLite store and config in a temp directory, every port on loopback and
ephemeral) with every connector that needs no outside account switched on, its outside world
played by the stand-ins in `connectors.standins` (SMTP relay, Twilio Messages API, Kavenegar's
REST API, Telegram Bot API: nothing leaves the machine), and simulated customers writing in
Persian and English on every channel through the real protocols, every few seconds, for as long
as it runs. A supervisor agent "demo" is created and the console opens logged in as it;
`--no-console` prints the agent API URL and token instead and runs until Ctrl-C (or `--duration`).

The customers learn their claim reference the way real ones do, from the acknowledgement the
desk sends back on their channel, and quote it (in Persian digits) in their follow-ups.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import structlog
from aiohttp import ClientSession

from config.loader import load_settings
from config.logs import configure_logging
from connectors.kavenegar.outbound import receptor
from connectors.registry import settings_schemas
from connectors.standins.bot_api import BotApiStandIn
from connectors.standins.customers import ChannelRefused, ChatVisitor, Customers, DaemonAddresses, TelegramUser, poll
from connectors.standins.kavenegar_api import KavenegarApiStandIn, post_kavenegar_sms
from connectors.standins.smtp_sink import SmtpSink
from connectors.standins.twilio_api import TwilioApiStandIn
from connectors.twilio.webhook import TOKEN_ENV as TWILIO_TOKEN_ENV
from ingest.agents import create_agent, new_token
from ingest.daemon import Daemon
from ingest.persian import persian_digits
from router.claimref import find_claim_refs

log = structlog.get_logger(__name__)

AGENT_NAME = "demo"
CLAIMS_ADDRESS = "claims@parvandeh.demo"
SMS_NUMBER = "+982188776655"
WHATSAPP_NUMBER = "whatsapp:+982188776656"
PBX_LINE = "02188776600"
CALLS_SECRET_ENV = "PARVANDEH_DEMO_CALLS_SECRET"
TELEGRAM_TOKEN_ENV = "PARVANDEH_DEMO_TELEGRAM_TOKEN"
KAVENEGAR_LINE = "10004346"
KAVENEGAR_KEY_ENV = "PARVANDEH_DEMO_KAVENEGAR_API_KEY"
KAVENEGAR_SECRET_ENV = "PARVANDEH_DEMO_KAVENEGAR_SECRET"
PREFIX = "PV"

Report = Callable[[str], None]


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoSecrets:
    """Fresh per run: the demo's daemon and its customers share them through the environment."""

    twilio_account_sid: str
    twilio_token: str
    calls_secret: str
    telegram_token: str
    kavenegar_api_key: str
    kavenegar_secret: str

    @classmethod
    def generate(cls) -> DemoSecrets:
        return cls(twilio_account_sid="AC" + secrets.token_hex(16), twilio_token=secrets.token_hex(16),
                   calls_secret=secrets.token_urlsafe(24), telegram_token=f"7000001:{secrets.token_urlsafe(24)}",
                   kavenegar_api_key=secrets.token_hex(16), kavenegar_secret=secrets.token_urlsafe(24))

    def environ(self) -> dict[str, str]:
        return {TWILIO_TOKEN_ENV: self.twilio_token, CALLS_SECRET_ENV: self.calls_secret,
                TELEGRAM_TOKEN_ENV: self.telegram_token, KAVENEGAR_KEY_ENV: self.kavenegar_api_key,
                KAVENEGAR_SECRET_ENV: self.kavenegar_secret}


def demo_config(directory: Path, *, smtp_sink_port: int, twilio_api_url: str, bot_api_url: str,
                bot_file_url: str, account_sid: str, kavenegar_api_url: str) -> str:
    """The demo daemon's TOML: store in `directory`, all listeners on loopback port 0, replies
    to the stand-ins, and a little routing so tickets land in more than one queue."""
    return f"""\
[store]
path = "{directory / 'demo.sqlite3'}"
attachments_dir = "{directory / 'attachments'}"
synchronous = "NORMAL"

[claims]
reference_prefix = "{PREFIX}"
own_addresses = ["{CLAIMS_ADDRESS}"]

[http]
host = "127.0.0.1"
port = 0

[agent_api]
host = "127.0.0.1"
port = 0

[smtp]
host = "127.0.0.1"
port = 0
hostname = "parvandeh.demo"

[outbound_smtp]
host = "127.0.0.1"
port = {smtp_sink_port}
from_address = "{CLAIMS_ADDRESS}"
from_name = "Parvandeh demo desk"

[twilio]
account_sid = "{account_sid}"
from_number = "{SMS_NUMBER}"
whatsapp_from = "{WHATSAPP_NUMBER}"
api_base_url = "{twilio_api_url}"
status_callback = false

[kavenegar]
sender = "{KAVENEGAR_LINE}"
api_base_url = "{kavenegar_api_url}"
api_key_env = "{KAVENEGAR_KEY_ENV}"
webhook_secret_env = "{KAVENEGAR_SECRET_ENV}"

[calls]
secret_env = "{CALLS_SECRET_ENV}"

[telegram]
token_env = "{TELEGRAM_TOKEN_ENV}"
base_url = "{bot_api_url}"
base_file_url = "{bot_file_url}"
poll_timeout_seconds = 10

[webchat]
host = "127.0.0.1"
port = 0
# Every simulated visitor comes from loopback: the per-address abuse limits would soon stop them.
new_sessions_per_ip_per_minute = 0
forms_per_ip_per_hour = 0

[insurer_api]

[[queues]]
name = "intake"
assignment = "none"

[[queues]]
name = "auto"
assignment = "none"

[[queues]]
name = "health"
assignment = "none"

[[routing.rules]]
name = "motor-accident"
when = {{ keywords = ["تصادف", "accident", "rear-ended", "بدنه"] }}
then = {{ queue = "auto", priority = "high" }}

[[routing.rules]]
name = "hospital"
when = {{ keywords = ["بیمارستان", "hospital", "surgery"] }}
then = {{ queue = "health", priority = "normal" }}

[routing.default]
queue = "intake"
priority = "normal"
"""


# -- the customers' scripts -----------------------------------------------------------------------


@dataclass
class KavenegarTexters:
    """Customers texting our Kavenegar line, as Kavenegar brings them: its calls to the receive
    URL (a received SMS) and the delivery URL (a reply reached the phone)."""

    http: ClientSession
    url: str  # the receive URL, secret included
    api: KavenegarApiStandIn
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5_000_001))

    async def sms(self, phone: str, text: str) -> None:
        await self._call("", {"messageid": str(next(self._ids)), "from": receptor(phone), "to": KAVENEGAR_LINE,
                              "message": text})

    def texts_to(self, phone: str) -> list[tuple[str, str]]:
        """(Kavenegar message id, text) of what our line sent the phone."""
        return [(mid, form["message"]) for mid, form in zip(self.api.sent_ids, self.api.sent, strict=True)
                if form["receptor"] == receptor(phone)]

    async def delivered(self, message_id: str) -> None:
        await self._call("/delivery", {"messageid": message_id, "status": "10"})

    async def _call(self, path: str, fields: dict[str, str]) -> None:
        status, answer = await post_kavenegar_sms(self.http, self.url + path, fields)
        if status != 200:
            raise ChannelRefused(f"Kavenegar webhook answered {status}: {answer[:200]}")


@dataclass
class Scene:
    """What a scenario plays with: the customers' channels, a pace, and a place to say what happened."""

    customers: Customers
    kavenegar: KavenegarTexters
    interval: float
    report: Report
    ack_timeout: float = 15.0

    async def pause(self, beats: float = 1.0) -> None:
        await asyncio.sleep(self.interval * beats)

    async def reference(self, received: Callable[[], Iterable[str]]) -> str | None:
        """The claim reference from the first acknowledgement the customer got back, if any came."""
        def find() -> str | None:
            return next((refs[0] for text in received() if (refs := find_claim_refs(text, PREFIX))), None)

        ref = await poll(find, self.ack_timeout)
        if ref is None:
            self.report("a customer got no acknowledgement in time; skipping their follow-up")
        return ref


def phone(round_no: int, slot: int) -> str:
    """A distinct Iranian mobile number (E.164) per round and scenario."""
    return f"+98912{round_no % 1000:03d}{slot:04d}"


def local_format(e164: str) -> str:
    """How Iranians write their own number: 0912…, in Persian digits."""
    return persian_digits("0" + e164.removeprefix("+98"))


Scenario = Callable[[Scene, int], Awaitable[None]]


async def car_accident_by_mail_then_sms(scene: Scene, n: int) -> None:
    """Emails the accident report (mobile in the signature), then SMSes from that mobile quoting
    the reference from the acknowledgement in Persian digits."""
    c, mobile, address = scene.customers, phone(n, 1), f"reza.ahmadi{n}@mail.example"
    await c.email(address, "رضا احمدی", "گزارش تصادف — پژو ۲۰۶", (
        "با سلام و احترام،\n\nامروز صبح ساعت ۸ در تقاطع ولیعصر و مطهری، یک پراید از پشت به خودروی من "
        "(پژو ۲۰۶، پلاک ۲۲ب۴۵۶ ایران ۷۷) زد. کروکی پلیس راهور گرفته شده و مقصر طرف مقابل است.\n"
        "لطفاً برای بازدید کارشناس وقت بدهید.\n\nبا تشکر\nرضا احمدی\n"
        f"تلفن همراه: {local_format(mobile)}"))
    scene.report(f"email  from {address}: car accident report (Persian)")
    ref = await scene.reference(lambda: [mail["Subject"] or "" for mail in c.mail_to(address)])
    if ref is None:
        return
    await scene.pause(2)
    await c.sms(mobile, f"سلام، پیرو پرونده {persian_digits(ref)} عکس‌های خودرو و کروکی را ایمیل کردم. احمدی")
    scene.report(f"sms    from {mobile}: follow-up quoting {persian_digits(ref)}")


async def hospital_bill_on_whatsapp(scene: Scene, n: int) -> None:
    c, mobile = scene.customers, phone(n, 2)
    await c.whatsapp(mobile, "سلام. پدرم سه روز در بیمارستان بستری بود و صورتحساب بیمارستان ۴۸ میلیون تومان شده. "
                             "بیمه تکمیلی داریم؛ برای دریافت خسارت چه مدارکی لازم است؟", "مریم کریمی")
    scene.report(f"whatsapp from {mobile}: hospital bill (Persian)")
    ref = await scene.reference(lambda: c.texts_to(f"whatsapp:{mobile}"))
    if ref is None:
        return
    await scene.pause(2)
    await c.whatsapp(mobile, f"تصویر صورتحساب و نامه ترخیص برای پرونده {persian_digits(ref)} آماده است. کجا بفرستم؟",
                     "مریم کریمی")
    scene.report(f"whatsapp from {mobile}: follow-up quoting {persian_digits(ref)}")


async def telegram_user_shares_contact(scene: Scene, n: int) -> None:
    c = scene.customers
    user = TelegramUser(id=700_000_000 + n * 10 + 3, first_name="مهدی", last_name="رستمی")
    c.telegram(user, "سلام، دیشب خودروم در پارکینگ خسارت دیده (بدنه، در سمت راننده). چطور پرونده باز کنم؟")
    scene.report(f"telegram from user {user.id}: car body damage (Persian)")
    if await scene.reference(lambda: c.telegram_to(user)) is None:
        return
    await scene.pause(2)
    c.telegram(user, share_phone=phone(n, 3).removeprefix("+"))  # Telegram sends it without "+"
    scene.report(f"telegram from user {user.id}: shares their phone number")


async def missed_call_then_sms(scene: Scene, n: int) -> None:
    c, mobile = scene.customers, phone(n, 4)
    await c.call("0" + mobile.removeprefix("+98"), "NO ANSWER")
    scene.report(f"call   from {mobile}: missed")
    await scene.pause(2)
    await c.sms(mobile, "سلام، چند دقیقه پیش تماس گرفتم جواب ندادید. آب از طبقه بالا به منزل ما نشت کرده، "
                        "بیمه آتش‌سوزی داریم. لطفاً تماس بگیرید.")
    scene.report(f"sms    from {mobile}: after the missed call")


async def web_chat_visitor(scene: Scene, n: int) -> None:
    visitor: ChatVisitor = await scene.customers.open_chat("سارا", "fa")
    try:
        await visitor.say("سلام وقت بخیر. دیروز در اتوبان همت تصادف کردم؛ برای بیمه بدنه چه مدارکی لازم است؟")
        scene.report(f"webchat visitor {visitor.session[:8]}…: accident question (Persian)")
        if await scene.reference(lambda: visitor.replies) is None:
            return
        await scene.pause(2)
        await visitor.say("شماره بیمه‌نامه من ۱۴۰۳/۵۵۲۱۸ است. منتظر تماس شما هستم.")
        scene.report(f"webchat visitor {visitor.session[:8]}…: gives the policy number")
        await scene.pause(4)  # stays on the page a while: an agent's answer is pushed live
    finally:
        await visitor.close()


async def english_sms_accident(scene: Scene, n: int) -> None:
    mobile = phone(n, 5)
    await scene.customers.sms(mobile, "Hi, my car was rear-ended at a red light on Valiasr St this morning. "
                                      "Plate 22B456 Iran 77. What should I do next?")
    scene.report(f"sms    from {mobile}: rear-end accident (English)")


async def english_hospital_mail_and_reply(scene: Scene, n: int) -> None:
    """An English email, then an answer to the acknowledgement (threaded by In-Reply-To)."""
    c, address = scene.customers, f"sara.moradi{n}@mail.example"
    await c.email(address, "Sara Moradi", "Hospital bill for my son's surgery", (
        "Hello,\n\nMy son had an appendix surgery at Milad Hospital last week. The hospital bill is "
        "62,000,000 rials and we have supplementary health cover through my employer.\n"
        "How do I file the claim?\n\nRegards,\nSara Moradi"))
    scene.report(f"email  from {address}: hospital bill (English)")
    ack = await poll(lambda: next(iter(c.mail_to(address)), None), scene.ack_timeout)
    if ack is None:
        scene.report("a customer got no acknowledgement in time; skipping their follow-up")
        return
    await scene.pause(2)
    await c.email(address, "Sara Moradi", f"Re: {ack['Subject']}",
                  "Thank you. I have the itemised invoice and the discharge letter ready; shall I send them here?",
                  in_reply_to=(ack["Message-ID"] or "").strip().strip("<>"))
    scene.report(f"email  from {address}: replies to the acknowledgement")


async def theft_by_sms_on_kavenegar(scene: Scene, n: int) -> None:
    """Texts our Kavenegar line; the acknowledgement comes back from that line, Kavenegar reports
    it delivered, and the follow-up quotes its reference."""
    k, mobile = scene.kavenegar, phone(n, 6)
    await k.sms(mobile, "سلام، دیشب ضبط و آینه‌های خودروی من را دزدیدند. بیمه بدنه دارم؛ چه باید بکنم؟")
    scene.report(f"sms    from {mobile} to the Kavenegar line: theft from a car (Persian)")
    ref = await scene.reference(lambda: [text for _, text in k.texts_to(mobile)])
    if ref is None:
        return
    await scene.pause(2)  # the report comes a while after the send, as the phone's network answers
    await k.delivered(k.texts_to(mobile)[0][0])
    await k.sms(mobile, f"گزارش کلانتری برای پرونده {persian_digits(ref)} آماده است.")
    scene.report(f"sms    from {mobile} to the Kavenegar line: follow-up quoting {persian_digits(ref)}")


SCENARIOS: tuple[Scenario, ...] = (
    car_accident_by_mail_then_sms, telegram_user_shares_contact, hospital_bill_on_whatsapp,
    missed_call_then_sms, web_chat_visitor, english_sms_accident, english_hospital_mail_and_reply,
    theft_by_sms_on_kavenegar,
)


class Simulator:
    """Starts one scenario every `interval` seconds, round after round with fresh customers;
    each plays out on its own (follow-ups come a few beats later)."""

    def __init__(self, scene: Scene, scenarios: Iterable[Scenario] = SCENARIOS, rounds: int | None = None) -> None:
        self.scene = scene
        self.scenarios = tuple(scenarios)
        self.rounds = rounds
        self._runner: asyncio.Task[None] | None = None
        self._plays: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="demo-simulator")

    async def stop(self) -> None:
        tasks = [t for t in (self._runner, *self._plays) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        rounds = itertools.count() if self.rounds is None else range(self.rounds)
        for n in rounds:
            for scenario in self.scenarios:
                play = asyncio.create_task(self._play(scenario, n), name=f"demo-{scenario.__name__}-{n}")
                self._plays.add(play)
                play.add_done_callback(self._plays.discard)
                await self.scene.pause()

    async def _play(self, scenario: Scenario, n: int) -> None:
        try:
            await scenario(self.scene, n)
        except Exception as exc:  # one customer's trouble must not end the demo
            self.scene.report(f"{scenario.__name__} (round {n}) failed: {type(exc).__name__}: {exc}")
            log.warning("demo_scenario_failed", scenario=scenario.__name__, round=n, error=str(exc))


# -- orchestration --------------------------------------------------------------------------------


class Demo:
    """Stand-ins, daemon, demo agent and customers, started and stopped in the order that loses
    nothing: customers stop first, the daemon before the stand-ins it still talks to."""

    def __init__(self, directory: Path, *, interval: float = 4.0, report: Report = lambda line: None,
                 rounds: int | None = None, scenarios: Iterable[Scenario] = SCENARIOS) -> None:
        self.directory = directory
        self.config_path = directory / "parvandeh-demo.toml"
        self.interval = interval
        self.report = report
        self.rounds = rounds
        self.scenarios = tuple(scenarios)
        self.secrets = DemoSecrets.generate()
        self.token = new_token()
        self.daemon: Daemon | None = None
        self.sink = SmtpSink()
        self.twilio = TwilioApiStandIn(self.secrets.twilio_account_sid, self.secrets.twilio_token)
        self.bot_api = BotApiStandIn([self.secrets.telegram_token])
        self.kavenegar = KavenegarApiStandIn(self.secrets.kavenegar_api_key)
        self._saved_env: dict[str, str | None] = {}
        self._http: ClientSession | None = None
        self._simulator: Simulator | None = None

    @property
    def agent_api_url(self) -> str:
        assert self.daemon is not None
        return f"ws://127.0.0.1:{self.daemon.agent_api.port}"

    @property
    def http_base_url(self) -> str:
        assert self.daemon is not None
        return f"http://127.0.0.1:{self.daemon.http_port}"

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        # The daemon's connectors read their secrets from the environment (never from files).
        for name, value in self.secrets.environ().items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        await asyncio.gather(self.sink.start(), self.twilio.start(), self.bot_api.start(), self.kavenegar.start())
        self.config_path.write_text(demo_config(
            self.directory, smtp_sink_port=self.sink.port, twilio_api_url=self.twilio.base_url,
            bot_api_url=self.bot_api.base_url, bot_file_url=self.bot_api.base_file_url,
            account_sid=self.secrets.twilio_account_sid, kavenegar_api_url=self.kavenegar.base_url), encoding="utf-8")
        # The user's PARVANDEH__* overrides are for their own daemon, not this throwaway one.
        settings = load_settings(self.config_path, environ={}, connector_schemas=settings_schemas())
        self.daemon = Daemon(settings)
        await self.daemon.start()
        await self.daemon.store.write(create_agent(AGENT_NAME, "supervisor", frozenset(), self.token))
        self._http = ClientSession()
        customers = Customers(self._addresses(), self._http, self.sink, self.twilio,
                              self.bot_api.bot(self.secrets.telegram_token))
        texters = KavenegarTexters(self._http, f"{self.http_base_url}/webhooks/kavenegar/{self.secrets.kavenegar_secret}",
                                   self.kavenegar)
        self._simulator = Simulator(Scene(customers, texters, self.interval, self.report), self.scenarios,
                                    rounds=self.rounds)
        self._simulator.start()
        log.info("demo_started", directory=str(self.directory), agent_api=self.agent_api_url)

    def _addresses(self) -> DaemonAddresses:
        assert self.daemon is not None
        return DaemonAddresses(
            smtp_port=self.daemon.connectors["smtp"].port,  # type: ignore[attr-defined]
            http_base_url=self.http_base_url,
            webchat_url=f"ws://127.0.0.1:{self.daemon.connectors['webchat'].port}",  # type: ignore[attr-defined]
            claims_address=CLAIMS_ADDRESS, sms_number=SMS_NUMBER, whatsapp_number=WHATSAPP_NUMBER,
            our_line=PBX_LINE, twilio_token=self.secrets.twilio_token, calls_secret=self.secrets.calls_secret,
        )

    async def stop(self) -> None:
        if self._simulator is not None:
            await self._simulator.stop()
        if self._http is not None:
            await self._http.close()
        if self.daemon is not None and self.daemon.store.is_open:
            await self.daemon.stop()
        await asyncio.gather(self.bot_api.stop(), self.twilio.stop(), self.sink.stop(), self.kavenegar.stop(),
                             return_exceptions=True)
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()


class DemoThread:
    """The demo on its own event loop in a background thread, while the console (which runs
    its own loop) has the main thread."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="parvandeh-demo", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            await self.demo.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.demo.stop()


# -- command line ---------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    # Here, not at the top: the daemon's modules load without the console's.
    from console.render import LANGUAGES

    parser.add_argument("--no-console", action="store_true",
                        help="no console: print the agent API URL and token, run until Ctrl-C")
    parser.add_argument("--duration", type=float, default=None, help="with --no-console: stop after this many seconds")
    parser.add_argument("--interval", type=float, default=4.0,
                        help="seconds between simulated customers' messages (default 4)")
    parser.add_argument("--gregorian", action="store_true", help="console: Gregorian dates instead of Jalali")
    parser.add_argument("--latin-digits", action="store_true", help="console: Latin digits instead of Persian")
    parser.add_argument("--no-bidi", action="store_true", help="console: leave right-to-left lines to the terminal")
    parser.add_argument("--lang", choices=LANGUAGES, default=None,
                        help="console: its own labels in Persian or English (default: [console] language)")


def cli_demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="parvandeh-demo-") as tmp:
        directory = Path(tmp)
        if args.no_console:
            configure_logging("warning")
            return asyncio.run(_headless(directory, args))
        with (directory / "demo.log").open("a", encoding="utf-8") as log_file:
            # The console owns the terminal: everything else writes to the log file.
            configure_logging("warning", "json", stream=log_file)
            logging.basicConfig(stream=log_file, level=logging.WARNING, force=True)
            return _with_console(directory, args, log_file)


def _banner(demo: Demo, out: TextIO) -> None:
    assert demo.daemon is not None
    chat = demo.daemon.connectors["webchat"].port  # type: ignore[attr-defined]
    print(f"Parvandeh demo — throwaway store in {demo.directory}\n"
          f"  agent API : {demo.agent_api_url}\n"
          f"  token     : {demo.token}   (agent {AGENT_NAME!r}, supervisor)\n"
          f"  console   : python run.py console --url {demo.agent_api_url} --token {demo.token}\n"
          f"  web chat  : {demo.http_base_url}/webchat/?lang=en  (chat socket on port {chat})\n"
          f"  web form  : {demo.http_base_url}/webform\n"
          f"  insurer API: {demo.http_base_url}/api/v1\n"
          f"  config    : {demo.config_path}  (for run.py tickets/insurer/report --config)",
          file=out, flush=True)


async def _headless(directory: Path, args: argparse.Namespace) -> int:
    demo = Demo(directory, interval=args.interval, report=lambda line: print(f"  · {line}", flush=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await demo.start()
    try:
        _banner(demo, sys.stdout)
        print("Simulated customers are writing; Ctrl-C stops everything.", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except TimeoutError:
            pass
    finally:
        await demo.stop()
    print("demo stopped", flush=True)
    return 0


def _with_console(directory: Path, args: argparse.Namespace, log_file: TextIO) -> int:
    from console.__main__ import configured_prefs
    from console.app import run_console

    # Read before anything starts: a bad --config is refused without a daemon to stop.
    prefs = configured_prefs(args, args.config)

    def report(line: str) -> None:
        print(f"customer: {line}", file=log_file, flush=True)

    runner = DemoThread(Demo(directory, interval=args.interval, report=report))
    runner.start()
    _banner(runner.demo, sys.stdout)
    _banner(runner.demo, log_file)
    try:
        return run_console(runner.demo.agent_api_url, runner.demo.token, prefs)
    finally:
        runner.stop()
