"""Telegram and Bale bots: python-telegram-bot's real client against a local Bot API stand-in
over HTTP, inside a real daemon; the pure parts (normaliser, error mapping) table-tested."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import smtplib
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from telegram import Bot
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut

from config.loader import ConfigError
from connectors.base import ConnectorContext, StoreUnavailable
from connectors.telegram import TelegramConnector
from connectors.telegram.delivery import failure_result, split_text
from connectors.telegram.normalise import deep_link, normalise_update, update_payload
from connectors.telegram.poller import Backoff, UpdatePoller
from connectors.telegram.settings import TelegramSettings
from connectors.telegram.webhook import SECRET_HEADER
from ingest import queries
from ingest.apply import agent_reply, resolve_contact
from ingest.daemon import Daemon
from ingest.persian import persian_digits
from ingest.records import AcceptOutcome, Identity, RawPayload, SignedRef
from router.deeplink import SIGNATURE_CHARS, split_start_parameter, start_parameter, verify
from tests.kit.contract import ConnectorContract
from tests.mailgen import mail
from connectors.standins.smtp_sink import SmtpSink
from connectors.standins.bot_api import BotApiStandIn, StandInBot
from tests.peers.corpus import corpus_updates

# PTB 22's own RetryAfter constructor reads its deprecated int `retry_after`; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Deprecated since version v22.2:telegram.warnings.PTBDeprecationWarning")

TG_TOKEN = "123456:TEST-telegram"
BALE_TOKEN = "654321:TEST-bale"
TG_ENV = "PARVANDEH_TEST_TG_TOKEN"
BALE_ENV = "PARVANDEH_TEST_BALE_TOKEN"
SECRET_ENV = "PARVANDEH_TEST_TG_WEBHOOK_SECRET"
SECRET = "s3cret-Webhook_token"
TIMEOUT = 10.0


# -- helpers --------------------------------------------------------------------------------------


def bot_table(api: BotApiStandIn, *, name: str = "telegram", channel: str = "telegram", token_env: str = TG_ENV,
              mode: str = "polling", extra: str = "") -> str:
    return f"""
[[telegram]]
name = "{name}"
channel = "{channel}"
token_env = "{token_env}"
base_url = "{api.base_url}"
base_file_url = "{api.base_file_url}"
mode = "{mode}"
poll_timeout_seconds = 5
retry_initial_seconds = 0.02
retry_max_seconds = 0.1
{extra}
"""


def text_update(text: str, *, user_id: int = 1111111, first_name: str = "Ali", message_id: int = 1,
                **fields: Any) -> dict[str, Any]:
    """A private-chat message as the Bot API sends it (update_id is set by the stand-in)."""
    user = {"id": user_id, "is_bot": False, "first_name": first_name, "username": f"user{user_id}"}
    message = {"message_id": message_id, "date": 1760000000, "from": user,
               "chat": {"id": user_id, "type": "private", "first_name": first_name}, **fields}
    if text:
        message["text"] = text
    return {"update_id": 0, "message": message}


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll `check` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def committed(daemon: Daemon, bot: StandInBot, update_id: int) -> None:
    """The Bot API was told the update is done, and the daemon has threaded it."""
    await bot.wait_confirmed(update_id, TIMEOUT)
    await daemon.ingest.drained()


async def only_ticket(daemon: Daemon) -> dict[str, Any]:
    (ticket,) = await queries.list_tickets(daemon.store)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    assert detail is not None
    return detail


async def inbox_states(daemon: Daemon) -> list[str]:
    return [row["state"] for row in await daemon.store.fetchall("SELECT state FROM inbox ORDER BY id")]


async def timeline_event(daemon: Daemon, ref: str, kind: str) -> dict[str, Any] | None:
    detail = await queries.ticket_detail(daemon.store, ref)
    assert detail is not None
    return next((e for e in detail["timeline"] if e["kind"] == kind), None)


def payload_of(update: dict[str, Any], channel: str = "telegram") -> RawPayload:
    return update_payload(json.dumps(update).encode(), update["update_id"], channel=channel, connector=channel,
                          bot_id="123456", received_at=datetime.now(UTC))


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    stand_in = await BotApiStandIn([TG_TOKEN]).start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def bale_api() -> AsyncIterator[BotApiStandIn]:
    """A second Bot API server, as Bale's is: only the bale token is known there."""
    stand_in = await BotApiStandIn([BALE_TOKEN]).start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TG_ENV, TG_TOKEN)
    monkeypatch.setenv(BALE_ENV, BALE_TOKEN)
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
async def telegram_daemon(api: BotApiStandIn, tokens: None, make_daemon: Any) -> Daemon:
    return await make_daemon(bot_table(api))


# -- the connector contract, by polling and by webhook ---------------------------------------------


class TestTelegramPollingContract(ConnectorContract):
    """Acknowledged = the Bot API was asked for an offset past the update. (Telegram never serves
    a confirmed update again, so the kit's second delivery of one is dropped by the stand-in;
    the real redelivery, after a restart before confirmation, is tested below.)"""

    channel = "telegram"

    @pytest.fixture(autouse=True)
    async def _stand_in(self, api: BotApiStandIn, tokens: None) -> AsyncIterator[None]:
        self.api = api
        self.daemons: list[Daemon] = []
        yield
        # The kit closes the store under a running daemon; stop its poller before the stand-in goes.
        for daemon in self.daemons:
            if not daemon.store.is_open:
                for connector in daemon.connectors.values():
                    await connector.stop()

    async def start(self, make_daemon: Any) -> Daemon:
        daemon = await make_daemon(bot_table(self.api))
        self.daemons.append(daemon)
        return daemon

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        bot = self.api.bot(TG_TOKEN)
        update_id = zlib.crc32(key.encode())
        asked = len(bot.offsets)
        bot.push(text_update(f"message {key}", message_id=update_id % 100_000), update_id=update_id)
        # Settled when confirmed, or when the same offset has been asked again and again.
        await bot.wait(lambda: bot.confirmed(update_id) or len(bot.offsets) - asked >= 4, TIMEOUT,
                       f"update {update_id} confirmed or refetched")
        return bot.confirmed(update_id)


class TestTelegramWebhookContract(ConnectorContract):
    channel = "telegram"

    @pytest.fixture(autouse=True)
    async def _stand_in(self, api: BotApiStandIn, tokens: None) -> None:
        self.api = api

    async def start(self, make_daemon: Any) -> Daemon:
        return await make_daemon(bot_table(self.api, mode="webhook", extra=f'webhook_secret_env = "{SECRET_ENV}"'))

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        update = text_update(f"message {key}") | {"update_id": zlib.crc32(key.encode())}
        status, _ = await post_webhook(daemon, update)
        return status == 200


async def post_webhook(daemon: Daemon, body: dict[str, Any] | bytes, secret: str | None = SECRET,
                       name: str = "telegram") -> tuple[int, dict[str, Any]]:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{daemon.http_port}/webhooks/telegram/{name}", data=data,
                                headers={"Content-Type": "application/json", **headers}) as response:
            return response.status, await response.json()


# -- inbound through the daemon --------------------------------------------------------------------


async def test_every_corpus_update_is_committed_and_threaded_or_quarantined(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    samples = corpus_updates()
    assert len(samples) >= 13
    ids = [bot.push(update) for update in samples.values()]
    await committed(telegram_daemon, bot, ids[-1])
    states = await inbox_states(telegram_daemon)
    assert len(states) == len(samples), "every update is in the inbox, none lost"
    assert set(states) <= {"done", "unthreaded", "quarantined"}
    assert await queries.list_quarantine(telegram_daemon.store) == []
    ticket = await only_ticket(telegram_daemon)  # one customer, one private chat: one thread
    inbound = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert len(inbound) == len(samples)
    assert {m["channel"] for m in inbound} == {"telegram"}
    texts = {m["text"] for m in inbound}
    assert "عکس صحنه تصادف — پلاک ۱۲ب۳۴۵" in texts
    assert "📍 35.6892,51.389" in texts
    assert "Data from button callback" in texts
    edited = next(m for m in inbound if m["text"] == "Edited text")
    assert edited["display_text"] == "(edited) Edited text"
    photo = next(m for m in inbound if m["text"].startswith("عکس"))
    assert photo["attachments"] == [{"filename": "photo_AQADx.jpg", "content_type": "image/jpeg", "size": 154321,
                                     "sha256": None, "remote_ref": "AgACAgQAAxkBAAK"}]
    # The new claim was acknowledged in the customer's chat.
    (ack,) = await bot.wait_sent(1)
    assert ack["chat_id"] == "1111111" and ticket["reference"] in ack["text"]


async def test_persian_digits_claim_reference_in_a_message_joins_that_claim(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    first = bot.push(text_update("سلام، ماشینم تصادف کرده", user_id=501))
    await committed(telegram_daemon, bot, first)
    ref = (await only_ticket(telegram_daemon))["reference"]
    # Someone else (the policy holder's son, on his own account) writes about the same claim.
    second = bot.push(text_update(f"پیگیری پرونده {persian_digits(ref)} لطفا", user_id=502))
    await committed(telegram_daemon, bot, second)
    ticket = await only_ticket(telegram_daemon)
    assert [m["sender"] for m in ticket["messages"] if m["direction"] == "in"] == ["501", "502"]
    received = [e for e in ticket["timeline"] if e["kind"] == "message_received"]
    assert received[-1]["matched_by"] == "claim_reference"


async def test_start_deep_link_with_claim_reference_joins_that_claim(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    first = bot.push(text_update("خسارت بدنه", user_id=601))
    await committed(telegram_daemon, bot, first)
    ref = (await only_ticket(telegram_daemon))["reference"]
    opened = bot.push(text_update(f"/start {ref.replace('-', '_')}", user_id=602))
    await committed(telegram_daemon, bot, opened)
    ticket = await only_ticket(telegram_daemon)
    assert ticket["reference"] == ref
    assert [m["sender"] for m in ticket["messages"] if m["direction"] == "in"] == ["601", "602"]


async def test_shared_contact_links_the_telegram_user_to_the_contact_with_that_phone(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    # The customer is already known by phone (an SMS, a call): one contact with that number.
    contact_id = await telegram_daemon.store.write(
        lambda tx: resolve_contact(tx, [Identity("phone", "+989121234567", "Ali Rezaei")]))
    bot = api.bot(TG_TOKEN)
    shared = bot.push(corpus_updates()["schema_contact"])  # shares their own number
    await committed(telegram_daemon, bot, shared)
    rows = await telegram_daemon.store.fetchall("SELECT kind, value, contact_id FROM identities ORDER BY id")
    assert {(r["kind"], r["value"]): r["contact_id"] for r in rows} == {
        ("phone", "+989121234567"): contact_id,
        ("telegram", "1111111"): contact_id,
    }


async def test_own_contact_shared_after_the_first_message_merges_the_two_contacts(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    # Known by phone (an SMS); on Telegram they write /start first (a contact of its own), then
    # share their number with Telegram's button: one person, so one contact.
    phone_contact = await telegram_daemon.store.write(
        lambda tx: resolve_contact(tx, [Identity("phone", "+989121234567", "Ali Rezaei")]))
    bot = api.bot(TG_TOKEN)
    await committed(telegram_daemon, bot, bot.push(text_update("/start", user_id=1111111)))
    card = {"phone_number": "989121234567", "first_name": "Ali", "user_id": 1111111}
    await committed(telegram_daemon, bot, bot.push(text_update("", user_id=1111111, message_id=2, contact=card)))
    rows = await telegram_daemon.store.fetchall("SELECT kind, value, contact_id FROM identities ORDER BY id")
    assert {(r["kind"], r["value"]): r["contact_id"] for r in rows} == {
        ("phone", "+989121234567"): phone_contact,
        ("telegram", "1111111"): phone_contact,
    }
    (ticket,) = await queries.list_tickets(telegram_daemon.store)
    assert ticket["contact"]["id"] == phone_contact, "the Telegram claim moved to the known contact"
    (merge,) = await telegram_daemon.store.fetchall("SELECT kept_id, actor FROM contact_merges")
    assert (merge["kept_id"], merge["actor"]) == (phone_contact, "system"), "recorded, and can be undone"


async def test_forwarded_contact_card_of_someone_else_links_nothing(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    card = {"phone_number": "989351112233", "first_name": "Reza", "user_id": 999}
    update_id = bot.push(text_update("", user_id=701, contact=card))
    await committed(telegram_daemon, bot, update_id)
    rows = await telegram_daemon.store.fetchall("SELECT kind, value FROM identities")
    assert [(r["kind"], r["value"]) for r in rows] == [("telegram", "701")]
    assert "989351112233" in (await only_ticket(telegram_daemon))["messages"][0]["text"]


async def test_offset_stays_on_an_update_while_the_store_is_closed(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    first = bot.push(text_update("اول"))
    await committed(telegram_daemon, bot, first)
    await telegram_daemon.store.close()
    second = bot.push(text_update("دوم", message_id=2))
    await bot.wait_offset_asked(first + 1, times=4)
    assert not bot.confirmed(second), "an update that was never committed was confirmed"
    assert [u["update_id"] for u in bot.queue] == [second]
    await telegram_daemon.stop()


async def test_update_redelivered_after_a_restart_before_confirmation_is_stored_once(
        api: BotApiStandIn, tokens: None, make_daemon: Any) -> None:
    bot = api.bot(TG_TOKEN)
    bot.break_after_batch = True  # the getUpdates that would confirm it fails, as in a crash
    first = await make_daemon(bot_table(api))
    update_id = bot.push(text_update("تصادف در اتوبان"))
    await eventually(lambda: inbox_states(first), "the update committed")
    await bot.wait(lambda: len(bot.offsets) >= 3, TIMEOUT, "the confirming getUpdates failing")
    await first.stop()
    assert not bot.confirmed(update_id)
    bot.updates_broken = bot.break_after_batch = False
    second = await make_daemon(bot_table(api))  # same store: a restart
    await committed(second, bot, update_id)
    assert len(await inbox_states(second)) == 1
    inbound = [m for m in (await only_ticket(second))["messages"] if m["direction"] == "in"]
    assert [m["text"] for m in inbound] == ["تصادف در اتوبان"]


async def test_polling_resumes_after_network_errors(api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    bot.updates_broken = True
    update_id = bot.push(text_update("سلام"))
    await bot.wait(lambda: len(bot.offsets) >= 4, TIMEOUT, "getUpdates retried after 502s")
    bot.updates_broken = False
    await committed(telegram_daemon, bot, update_id)
    assert await inbox_states(telegram_daemon) == ["done"]


async def test_unparseable_update_is_quarantined_and_later_updates_still_flow(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    with pytest.warns(UserWarning, match="getUpdates"):  # PTB's note on the raw fallback request
        bot.push({"update_id": 0, "message": {"message_id": 1, "date": 1, "chat": "not an object"}})
        good = bot.push(text_update("بعدی"))
        await committed(telegram_daemon, bot, good)
    assert await inbox_states(telegram_daemon) == ["quarantined", "done"]
    (problem,) = await queries.list_quarantine(telegram_daemon.store)
    assert problem["channel"] == "telegram"


# -- webhook mode --------------------------------------------------------------------------------


async def test_webhook_refuses_a_wrong_or_missing_secret_and_stores_nothing(
        api: BotApiStandIn, tokens: None, make_daemon: Any) -> None:
    daemon = await make_daemon(bot_table(api, mode="webhook", extra=f'webhook_secret_env = "{SECRET_ENV}"'))
    update = text_update("سلام") | {"update_id": 42}
    assert (await post_webhook(daemon, update, secret="wrong"))[0] == 403
    assert (await post_webhook(daemon, update, secret=None))[0] == 403
    assert (await post_webhook(daemon, b"{not json"))[0] == 400
    assert (await post_webhook(daemon, {"message": {}}))[0] == 400
    assert await inbox_states(daemon) == []
    assert (await post_webhook(daemon, update))[0] == 200
    await daemon.ingest.drained()
    assert await inbox_states(daemon) == ["done"]
    assert (await only_ticket(daemon))["messages"][0]["text"] == "سلام"


async def test_webhook_is_registered_with_the_public_url_and_secret(
        api: BotApiStandIn, tokens: None, make_daemon: Any) -> None:
    await make_daemon(bot_table(api, name="claims_bot", mode="webhook", extra=f'webhook_secret_env = "{SECRET_ENV}"'),
                      environ={"PARVANDEH__HTTP__PUBLIC_BASE_URL": "https://claims.example.ir/"})
    bot = api.bot(TG_TOKEN)
    await bot.wait(lambda: bool(bot.webhooks), TIMEOUT, "setWebhook")
    assert bot.webhooks[0]["url"] == "https://claims.example.ir/webhooks/telegram/claims_bot"
    assert bot.webhooks[0]["secret_token"] == SECRET


# -- outbound ------------------------------------------------------------------------------------


async def open_claim(daemon: Daemon, bot: StandInBot, user_id: int = 1111111) -> str:
    """A customer writes; the claim is acknowledged in their chat. Returns the reference."""
    acknowledgements = len(bot.sent) + 1
    update_id = bot.push(text_update("ماشینم تصادف کرده", user_id=user_id))
    await committed(daemon, bot, update_id)
    await bot.wait_sent(acknowledgements)
    return (await queries.list_tickets(daemon.store))[0]["reference"]


async def reply(daemon: Daemon, ref: str, text: str) -> None:
    await daemon.store.write(agent_reply(ref, text, "agent.maryam", daemon.ingest.context))


async def test_agent_reply_reaches_the_customers_chat(api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    ref = await open_claim(telegram_daemon, bot, user_id=808)
    await reply(telegram_daemon, ref, "کارشناس فردا تماس می‌گیرد.")
    sent = await bot.wait_sent(2)
    assert sent[-1]["chat_id"] == "808" and sent[-1]["text"] == "کارشناس فردا تماس می‌گیرد."
    done = await eventually(lambda: timeline_event(telegram_daemon, ref, "delivery_sent"), "delivery_sent")
    assert done["channel_message_id"] == f"808:{sent[0]['message_id']}"  # the acknowledgement's


async def test_long_reply_with_emoji_is_sent_in_pieces_the_bot_api_accepts(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    ref = await open_claim(telegram_daemon, bot)
    text = " ".join(["تصادف 🚗"] * 1200)  # 9,599 characters, 10,799 UTF-16 units
    await reply(telegram_daemon, ref, text)

    async def settled() -> dict[str, Any] | None:
        (row,) = await telegram_daemon.store.fetchall("SELECT state, last_error FROM outbox WHERE automatic = 0")
        return dict(row) if row["state"] in ("sent", "failed") else None

    outcome = await eventually(settled, "the reply sent or failed")
    assert outcome["state"] == "sent", outcome["last_error"]
    pieces = [sent["text"] for sent in bot.sent[1:]]  # after the acknowledgement
    assert " ".join(pieces) == text and len(pieces) == 3


async def test_stand_in_refuses_texts_over_4096_utf16_units_as_the_bot_api_does(api: BotApiStandIn) -> None:
    async with Bot(TG_TOKEN, base_url=api.base_url) as bot:
        await bot.send_message(chat_id=1, text="🚗" * 2048)
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(chat_id=1, text="🚗" * 2048 + "a")


async def test_blocked_user_is_a_permanent_failure_on_the_timeline(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    ref = await open_claim(telegram_daemon, bot)
    bot.fail_next_send("blocked")
    await reply(telegram_daemon, ref, "لطفا مدارک را بفرستید")
    failed = await eventually(lambda: timeline_event(telegram_daemon, ref, "delivery_failed"), "delivery_failed")
    assert "blocked the bot" in failed["detail"]
    (row,) = await telegram_daemon.store.fetchall("SELECT state, attempts FROM outbox WHERE automatic = 0")
    assert (row["state"], row["attempts"]) == ("failed", 1)


async def test_flood_wait_is_retried_after_the_time_the_bot_api_asked(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    ref = await open_claim(telegram_daemon, bot)
    bot.fail_next_send("retry_after")
    await reply(telegram_daemon, ref, "پیام دوم")
    sent = await bot.wait_sent(2)
    assert sent[-1]["text"] == "پیام دوم"
    retrying = await timeline_event(telegram_daemon, ref, "delivery_retrying")
    assert retrying is not None and "retry after 1" in retrying["detail"]


# -- Bale beside Telegram ------------------------------------------------------------------------


async def test_bale_instance_runs_beside_telegram_and_answers_on_bale(
        api: BotApiStandIn, bale_api: BotApiStandIn, tokens: None, make_daemon: Any) -> None:
    daemon = await make_daemon(bot_table(api, name="telegram_bot")
                               + bot_table(bale_api, name="bale_bot", channel="bale", token_env=BALE_ENV))
    tg, bale = api.bot(TG_TOKEN), bale_api.bot(BALE_TOKEN)
    tg_id = tg.push(text_update("از تلگرام", user_id=11))
    bale_id = bale.push(text_update("از بله", user_id=22))
    await committed(daemon, tg, tg_id)
    await committed(daemon, bale, bale_id)
    tickets = {t["channels"][0]: t for t in await queries.list_tickets(daemon.store)}
    assert set(tickets) == {"telegram", "bale"}
    identities = await daemon.store.fetchall("SELECT kind, value FROM identities ORDER BY kind")
    assert [(r["kind"], r["value"]) for r in identities] == [("bale", "22"), ("telegram", "11")]
    # Each acknowledgement left through its own bot and its own Bot API.
    assert (await tg.wait_sent(1))[0]["chat_id"] == "11"
    assert (await bale.wait_sent(1))[0]["chat_id"] == "22"
    await reply(daemon, tickets["bale"]["reference"], "پاسخ در بله")
    assert (await bale.wait_sent(2))[-1] == {"chat_id": "22", "text": "پاسخ در بله", "message_id": 2}
    assert len(tg.sent) == 1


# -- signed deep links in the acknowledgement -----------------------------------------------------

LINK = re.compile(r"https://(t\.me|ble\.ir)/(\w+)\?start=([A-Za-z0-9_-]+)")


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    relay = await SmtpSink().start()
    yield relay
    await relay.stop()


async def bots_linked(daemon: Daemon, count: int) -> None:
    """The connectors have learnt their bots' usernames (getMe, just after the start)."""
    async def known() -> bool:
        return len(daemon.ingest.context.bot_links.bots) >= count
    await eventually(known, f"{count} bots' deep links")


async def emailed_claim(daemon: Daemon, sink: SmtpSink, sender: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """A customer mails a new claim. Returns its reference and the links of the acknowledgement
    mailed back: {host: (bot username, start parameter)}."""
    acknowledged = len(sink.received) + 1

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", daemon.connectors["smtp"].port, timeout=10) as client:  # type: ignore[attr-defined]
            client.send_message(mail(sender=sender, subject="خسارت تصادف", body="سلام، خودروی من دیروز تصادف کرد."))

    await asyncio.to_thread(deliver)
    ack = (await sink.wait_for(acknowledged))[-1]
    assert ack["To"] == sender.rpartition("<")[2].rstrip(">")
    ref = re.search(r"PV-\d{4}-\d{6}", ack["Subject"])[0]  # type: ignore[index]
    return ref, {host: (bot, parameter) for host, bot, parameter in LINK.findall(ack.get_body().get_content())}


async def joined(daemon: Daemon, kind: str, value: str, email: str) -> bool:
    rows = await daemon.store.fetchall(
        "SELECT kind, contact_id FROM identities WHERE (kind = ? AND value = ?) OR (kind = 'email' AND value = ?)",
        (kind, value, email))
    return len({r["contact_id"] for r in rows}) == 1 and len(rows) == 2


async def test_signed_link_in_the_mailed_acknowledgement_joins_the_claim_and_is_answered_on_telegram(
        api: BotApiStandIn, tokens: None, sink: SmtpSink, make_daemon: Any) -> None:
    daemon = await make_daemon(bot_table(api), outbound_port=sink.port)
    await bots_linked(daemon, 1)
    ref, links = await emailed_claim(daemon, sink, "Ali Rezaei <ali@example.com>")
    bot_name, parameter = links["t.me"]
    assert bot_name == "parvandeh_test_bot" and parameter.startswith(f"{ref}_") and len(parameter) <= 64
    bot = api.bot(TG_TOKEN)
    await committed(daemon, bot, bot.push(text_update(f"/start {parameter}", user_id=901)))
    assert await joined(daemon, "telegram", "901", "ali@example.com")
    detail = await queries.ticket_detail(daemon.store, ref)
    assert [e.get("signed_link") for e in detail["timeline"] if e["kind"] == "message_received"] == [None, True]
    await reply(daemon, ref, "کارشناس فردا تماس می‌گیرد.")
    assert (await bot.wait_sent(1))[0] == {"chat_id": "901", "text": "کارشناس فردا تماس می‌گیرد.", "message_id": 1}


@pytest.mark.parametrize("forge", ["made_up", "one_character_changed", "another_claims_signature"])
async def test_a_forged_or_tampered_signature_threads_but_is_never_answered(
        forge: str, api: BotApiStandIn, tokens: None, sink: SmtpSink, make_daemon: Any) -> None:
    daemon = await make_daemon(bot_table(api), outbound_port=sink.port)
    await bots_linked(daemon, 1)
    own_ref, own_links = await emailed_claim(daemon, sink, "Reza <reza@example.com>")  # the forger's own claim
    ref, _ = await emailed_claim(daemon, sink, "Ali Rezaei <ali@example.com>")
    signature = split_start_parameter(own_links["t.me"][1])[1]
    parameter = {
        "made_up": f"{ref}_{'A' * SIGNATURE_CHARS}",
        "one_character_changed": f"{own_ref}_{signature[:-1]}{'B' if signature[-1] == 'A' else 'A'}",
        "another_claims_signature": f"{ref}_{signature}",
    }[forge]
    target = own_ref if forge == "one_character_changed" else ref
    bot = api.bot(TG_TOKEN)
    await committed(daemon, bot, bot.push(text_update(f"/start {parameter}", user_id=902)))
    detail = await queries.ticket_detail(daemon.store, target)
    assert [(m["channel"], m["sender"]) for m in detail["messages"] if m["direction"] == "in"][-1] == (
        "telegram", "902"), "it still threads onto the claim it names"
    rows = await daemon.store.fetchall("SELECT contact_id FROM identities WHERE kind = 'telegram'")
    emails = await daemon.store.fetchall("SELECT contact_id FROM identities WHERE kind = 'email'")
    assert rows[0]["contact_id"] not in {r["contact_id"] for r in emails}, "the Telegram user joined no one"
    await reply(daemon, target, "پاسخ کارشناس")
    answer = (await sink.wait_for(3))[-1]
    assert answer["To"] == ("reza@example.com" if target == own_ref else "ali@example.com")
    assert bot.sent == []


async def test_bale_links_vouch_on_bale_and_a_telegram_link_does_not_vouch_there(
        api: BotApiStandIn, bale_api: BotApiStandIn, tokens: None, sink: SmtpSink, make_daemon: Any) -> None:
    daemon = await make_daemon(bot_table(api) + bot_table(bale_api, name="bale", channel="bale", token_env=BALE_ENV),
                               outbound_port=sink.port)
    await bots_linked(daemon, 2)
    ref, links = await emailed_claim(daemon, sink, "Ali Rezaei <ali@example.com>")
    assert set(links) == {"t.me", "ble.ir"}
    bale = bale_api.bot(BALE_TOKEN)
    # The Telegram link's signature is for the Telegram bot: handed in to the Bale bot, it threads only.
    await committed(daemon, bale, bale.push(text_update(f"/start {links['t.me'][1]}", user_id=31)))
    assert not await joined(daemon, "bale", "31", "ali@example.com")
    await committed(daemon, bale, bale.push(text_update(f"/start {links['ble.ir'][1]}", user_id=32)))
    assert await joined(daemon, "bale", "32", "ali@example.com")
    await reply(daemon, ref, "پاسخ در بله")
    assert (await bale.wait_sent(1))[-1]["chat_id"] == "32"
    assert api.bot(TG_TOKEN).sent == []


# -- files ---------------------------------------------------------------------------------------


async def test_photo_is_downloaded_through_the_bot_api_by_its_file_id(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    bot.add_file("AgACAgQAAxkBAAK", b"\xff\xd8\xff\xe0 jpeg bytes", "photos/file_7.jpg")
    update_id = bot.push(corpus_updates()["schema_photo_caption_fa"])
    await committed(telegram_daemon, bot, update_id)
    async def downloaded() -> dict[str, Any] | None:
        (attachment,) = (await only_ticket(telegram_daemon))["messages"][0]["attachments"]
        return attachment if attachment["sha256"] else None

    # The daemon fetched it into the content-addressed store after the message was committed.
    attachment = await eventually(downloaded, "the photo to be downloaded")
    assert telegram_daemon.blobs.get(attachment["sha256"]) == b"\xff\xd8\xff\xe0 jpeg bytes"
    connector = telegram_daemon.connectors["telegram"]
    assert isinstance(connector, TelegramConnector)
    assert await connector.fetch_file(attachment["remote_ref"]) == b"\xff\xd8\xff\xe0 jpeg bytes"
    with pytest.raises(BadRequest):
        await connector.fetch_file("no-such-file")


# -- the poll loop on its own --------------------------------------------------------------------


class FlakySink:
    """Accepts into a list; raises StoreUnavailable while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.refused = 0
        self.accepted: list[str] = []

    async def accept(self, payload: RawPayload) -> AcceptOutcome:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("disk full")
        self.accepted.append(payload.dedupe_key)
        return AcceptOutcome(len(self.accepted), duplicate=False)


async def test_poller_never_moves_the_offset_past_an_update_the_sink_refused(api: BotApiStandIn) -> None:
    bot_api = api.bot(TG_TOKEN)
    bot = Bot(TG_TOKEN, base_url=api.base_url, base_file_url=api.base_file_url)
    sink = FlakySink()
    poller = UpdatePoller(bot, sink, lambda body, uid: payload_of(json.loads(body)), timeout=2,
                          backoff=Backoff(0.01, 0.05))
    task = asyncio.create_task(poller.run())
    try:
        first = bot_api.push(text_update("one"))
        await bot_api.wait_confirmed(first)
        sink.down = True
        second = bot_api.push(text_update("two", message_id=2))
        await bot_api.wait_offset_asked(first + 1, times=4)
        assert sink.refused >= 3
        assert not bot_api.confirmed(second) and poller.next_offset == first + 1
        sink.down = False
        await bot_api.wait_confirmed(second)
        assert sink.accepted == [f"123456:{first}", f"123456:{second}"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bot.shutdown()


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    backoff = Backoff(1, 5)
    assert [backoff.next() for _ in range(5)] == [1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next() == 1


# -- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("sample", "text", "attachments"), [
    ("doc_text", "/start", []),
    ("schema_text_fa_digits", "شماره پرونده ۱۴۰۳۰۷۱۵-۰۰۴۲ تاریخ ۱۴۰۳/۰۷/۱۵", []),
    ("schema_photo_caption_fa", "عکس صحنه تصادف — پلاک ۱۲ب۳۴۵", [("photo_AQADx.jpg", "image/jpeg", "AgACAgQAAxkBAAK")]),
    ("doc_document", "", [("Testfile.pdf", "application/pdf", "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX")]),
    ("doc_voice", "", [("voice_u2.ogg", "audio/ogg", "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX")]),
    ("doc_audio", "", [("audio_u1.mp3", "audio/mpeg", "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX")]),
    ("schema_location", "📍 35.6892,51.389", []),
    ("schema_contact", "📇 علی رضایی +989121234567", []),
    ("doc_callback_query", "Data from button callback", []),
    ("doc_edited", "Edited text", []),
])
def test_normaliser_reads_each_kind_of_update(sample: str, text: str, attachments: list[tuple[str, str, str]]) -> None:
    msg = normalise_update(payload_of(corpus_updates()[sample]))
    assert msg.channel == "telegram"
    assert msg.sender == Identity("telegram", "1111111", "Test Firstname Test Lastname")
    assert msg.conversation_key == "telegram:1111111"
    assert msg.text == text
    assert [(a.filename, a.content_type, a.remote_ref) for a in msg.attachments] == attachments
    assert msg.opens_ticket


def test_edited_message_is_a_distinct_record_marked_as_edited() -> None:
    samples = corpus_updates()
    original = normalise_update(payload_of(samples["doc_text"]))
    edited = normalise_update(payload_of(samples["doc_edited"]))
    assert original.channel_message_id == "1111111:1365"
    assert edited.channel_message_id == "1111111:1365:edited:1441646600"
    assert edited.display_text == "(edited) Edited text" and ("edited", "true") in edited.meta


def test_a_documents_name_is_cleaned_as_mail_attachment_names_are() -> None:
    update = copy.deepcopy(corpus_updates()["doc_document"])
    update["message"]["document"]["file_name"] = "../../\u202egpj.exe\x00"
    (attachment,) = normalise_update(payload_of(update)).attachments
    name = attachment.filename
    assert name.endswith("gpj.exe") and not {"/", "\u202e", "\x00"} & set(name) and not name.startswith(".")
    update["message"]["document"]["file_name"] = "../.."
    (attachment,) = normalise_update(payload_of(update)).attachments
    assert attachment.filename.startswith("document_")  # nothing usable left: the made-up name


def test_attachment_only_message_says_what_it_is() -> None:
    msg = normalise_update(payload_of(corpus_updates()["doc_voice"]))
    assert msg.display_text == "📎 voice_u2.ogg"


def test_own_shared_contact_becomes_a_phone_identity() -> None:
    msg = normalise_update(payload_of(corpus_updates()["schema_contact"]))
    assert msg.proven_identities == (Identity("phone", "+989121234567", "علی رضایی"),)
    without_plus = text_update("", user_id=5, contact={"phone_number": "989121234567", "first_name": "A", "user_id": 5})
    assert normalise_update(payload_of(without_plus | {"update_id": 1})).proven_identities[0].value == "+989121234567"


def test_bale_payload_is_shown_as_bale() -> None:
    msg = normalise_update(payload_of(text_update("سلام", user_id=9) | {"update_id": 3}, channel="bale"))
    assert (msg.channel, msg.sender.kind, msg.conversation_key) == ("bale", "bale", "bale:9")


def test_membership_change_is_kept_but_opens_no_ticket() -> None:
    user = {"id": 31, "is_bot": False, "first_name": "Sara"}
    update = {"update_id": 7, "my_chat_member": {
        "chat": {"id": 31, "type": "private", "first_name": "Sara"}, "from": user, "date": 1760000000,
        "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True, "first_name": "Bot"}},
        "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": True, "first_name": "Bot"},
                            "until_date": 0}}}
    msg = normalise_update(payload_of(update))
    assert not msg.opens_ticket
    assert msg.text == "bot membership: member → kicked"
    assert msg.conversation_key == "telegram:31" and msg.channel_message_id == "update:7"


@pytest.mark.parametrize(("text", "ref"), [
    ("/start PV-1405-000123", "PV-1405-000123"),
    ("/start pv_1405_123", "PV-1405-000123"),
    ("/start@parvandeh_bot PV1405000123", "PV-1405-000123"),
    ("/start PV-۱۴۰۵-۰۰۰۱۲۳", "PV-1405-000123"),
    ("/start ABC-1404-000007", "ABC-1404-000007"),
    ("/start", ""),
    ("/start hello", ""),
    ("PV-1405-000123", ""),  # not a deep link; the core finds references in text itself
])
def test_deep_link_claim_reference(text: str, ref: str) -> None:
    assert deep_link(text, "telegram:123456") == (ref, None)


SIGNATURE = "x" * SIGNATURE_CHARS


@pytest.mark.parametrize(("text", "signed"), [
    (f"/start PV-1405-000123_{SIGNATURE}", SignedRef("PV-1405-000123", "telegram:123456", SIGNATURE)),
    (f"/start pv_1405_123_{SIGNATURE}", SignedRef("PV-1405-000123", "telegram:123456", SIGNATURE)),
    (f"/start hello_{SIGNATURE}", None),
    (f"/start PV-1405-000123_{SIGNATURE}x", None),  # not a reference and a signature: nothing
])
def test_deep_link_signature_is_read_from_the_end_of_the_start_parameter(text: str, signed: SignedRef | None) -> None:
    assert deep_link(text, "telegram:123456")[1] == signed


def test_signed_start_parameter_fits_the_bot_apis_limit_and_vouches_only_as_signed() -> None:
    key, other_key = b"k" * 32, b"o" * 32
    parameter = start_parameter(key, "telegram:123456", "ABCDEF-1405-999999")  # the longest prefix allowed
    assert len(parameter) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", parameter)
    ref, given = split_start_parameter(parameter)
    assert ref == "ABCDEF-1405-999999" and verify(key, "telegram:123456", ref, given)
    assert not verify(other_key, "telegram:123456", ref, given)
    assert not verify(key, "bale:123456", ref, given), "a link for one bot vouches on that bot only"
    assert not verify(key, "telegram:123456", "ABCDEF-1405-999998", given)
    assert not verify(key, "telegram:123456", ref, given[:-1] + ("A" if given[-1] != "A" else "B"))
    assert not verify(key, "telegram:123456", ref, "ژ" * SIGNATURE_CHARS)  # typed by hand: refused, no error


@pytest.mark.parametrize(("make_error", "permanent", "retry_after", "detail"), [
    (lambda: Forbidden("Forbidden: bot was blocked by the user"), True, None, "blocked the bot"),
    (lambda: BadRequest("Chat not found"), True, None, "Chat not found"),
    (lambda: ChatMigrated(-100123), True, None, "-100123"),
    (lambda: RetryAfter(7), False, 7.0, "retry after 7"),
    (lambda: TimedOut(), False, None, "network error"),
    (lambda: NetworkError("Bad Gateway"), False, None, "Bad Gateway"),
])
def test_bot_api_errors_map_to_delivery_results(make_error: Callable[[], Exception], permanent: bool,
                                               retry_after: float | None, detail: str) -> None:
    result = failure_result(make_error())  # type: ignore[arg-type]
    assert not result.ok
    assert (result.permanent, result.retry_after) == (permanent, retry_after)
    assert detail in result.detail


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("word", ["کلمه", "تصادف 🚗"])  # an emoji outside the BMP is two UTF-16 units
def test_long_replies_are_split_at_word_boundaries_under_the_limit(word: str) -> None:
    text = " ".join([word] * 3000)
    pieces = split_text(text)
    assert len(pieces) > 1 and all(utf16_units(p) <= 4096 for p in pieces)
    assert " ".join(pieces) == text
    assert split_text("کوتاه") == ["کوتاه"]


FLAG, FAMILY, THUMB = "\U0001F1EE\U0001F1F7", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\U0001F44D\U0001F3FD"
KASRA, ZWNJ = "\u0650", "\u200c"


@pytest.mark.parametrize(("text", "first"), [
    # Each time the longest prefix within 4096 UTF-16 units ends inside the last cluster.
    ("ب" * 4094 + FLAG + "ب", "ب" * 4094),  # between the two regional indicators of a flag
    ("ب" * 4090 + FLAG + FLAG, "ب" * 4090 + FLAG),  # the second of two flags, by their parity
    ("ب" * 4093 + FAMILY, "ب" * 4093),  # just after a ZWJ
    ("ب" * 4089 + FAMILY, "ب" * 4089),  # just before a ZWJ
    ("ب" * 4094 + THUMB, "ب" * 4094),  # before the skin-tone modifier
    ("ب" * 4096 + KASRA, "ب" * 4095),  # between a letter and its combining mark
    ("ب" * 4096 + ZWNJ + "ها", "ب" * 4095),  # before a ZWNJ
])
def test_unbroken_replies_are_cut_between_grapheme_clusters(text: str, first: str) -> None:
    pieces = split_text(text)
    assert pieces[0] == first and "".join(pieces) == text


CLUSTERS = ["ب", "بِ", "ی" + ZWNJ, "🚗", FLAG, FAMILY, THUMB, "e\u0301", "\U0001F3F4\U000E0067\U000E0062\U000E007F"]


@settings(max_examples=200, deadline=None)
@given(st.integers(4060, 4096), st.lists(st.sampled_from(CLUSTERS), min_size=1, max_size=30))
def test_pieces_fit_and_every_cut_falls_between_grapheme_clusters(filler: int, clusters: list[str]) -> None:
    text = "ب" * filler + "".join(clusters)
    boundaries = set(range(filler + 1))
    for cluster in clusters:
        boundaries.add(max(boundaries) + len(cluster))
    pieces = split_text(text)
    assert "".join(pieces) == text and all(utf16_units(p) <= 4096 for p in pieces)
    cuts = [sum(len(p) for p in pieces[:n]) for n in range(1, len(pieces))]
    assert set(cuts) <= boundaries


def test_settings_default_to_each_channels_bot_api_and_webhook_needs_a_secret() -> None:
    bale = TelegramSettings(channel="bale")
    assert (bale.base_url, bale.base_file_url) == ("https://tapi.bale.ai/bot", "https://tapi.bale.ai/file/bot")
    assert TelegramSettings().base_url == "https://api.telegram.org/bot"
    with pytest.raises(ValidationError, match="webhook_secret_env"):
        TelegramSettings(mode="webhook")


async def test_file_download_can_be_turned_off() -> None:
    connector = TelegramConnector("telegram", TelegramSettings(download_files=False), ConnectorContext())
    with pytest.raises(PermissionError, match="download_files"):
        await connector.fetch_file("AgACAgQAAxkBAAK")


async def test_missing_token_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARVANDEH_TELEGRAM_TOKEN", raising=False)
    connector = TelegramConnector("telegram", TelegramSettings(), ConnectorContext())
    with pytest.raises(ConfigError, match="PARVANDEH_TELEGRAM_TOKEN"):
        await connector.start(FlakySink())


async def test_a_download_cut_short_by_a_stop_is_taken_up_again_at_the_next_start(
        api: BotApiStandIn, tokens: None, make_daemon: Any) -> None:
    bot = api.bot(TG_TOKEN)
    bot.add_file("AgACAgQAAxkBAAK", b"\xff\xd8\xff\xe0 the damaged bumper", "photos/file_9.jpg")
    bot.downloads_flowing.clear()  # the file server hangs: the download is under way at the stop
    first = await make_daemon(bot_table(api))
    update_id = bot.push(corpus_updates()["schema_photo_caption_fa"])
    await committed(first, bot, update_id)
    await bot.wait(lambda: bot.downloads_asked == 1, TIMEOUT, "the photo's download")
    await first.stop()
    bot.downloads_flowing.set()
    second = await make_daemon(bot_table(api))  # same store: a restart

    async def downloaded() -> dict[str, Any] | None:
        (attachment,) = (await only_ticket(second))["messages"][0]["attachments"]
        return attachment if attachment["sha256"] else None

    attachment = await eventually(downloaded, "the photo to be downloaded after the restart")
    assert second.blobs.get(attachment["sha256"]) == b"\xff\xd8\xff\xe0 the damaged bumper"
    assert bot.downloads_asked == 2


async def test_photo_the_bot_api_refuses_stays_a_link_and_the_timeline_says_why(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)  # no file registered: getFile fails
    update_id = bot.push(corpus_updates()["schema_photo_caption_fa"])
    await committed(telegram_daemon, bot, update_id)
    ref = (await only_ticket(telegram_daemon))["reference"]
    event = await eventually(lambda: timeline_event(telegram_daemon, ref, "attachment_fetch_failed"),
                             "the failed download on the timeline")
    assert event["filename"]
    (attachment,) = (await only_ticket(telegram_daemon))["messages"][0]["attachments"]
    assert attachment["sha256"] is None and attachment["remote_ref"]


async def test_a_photo_the_disk_had_no_room_for_is_downloaded_once_there_is_room(
        api: BotApiStandIn, telegram_daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import ingest.attachment_fetcher as fetcher

    monkeypatch.setattr(fetcher, "RETRY_SECONDS", 0.2, raising=False)
    bot = api.bot(TG_TOKEN)
    bot.add_file("AgACAgQAAxkBAAK", b"\xff\xd8\xff\xe0 the cracked windscreen", "photos/file_8.jpg")
    blobs = telegram_daemon.blobs
    real_put, full = blobs.put, [True]

    def put(data: bytes) -> str:
        if full[0]:
            full[0] = False  # room again right after
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(data)

    monkeypatch.setattr(blobs, "put", put)
    update_id = bot.push(corpus_updates()["schema_photo_caption_fa"])
    await committed(telegram_daemon, bot, update_id)

    async def downloaded() -> dict[str, Any] | None:
        (attachment,) = (await only_ticket(telegram_daemon))["messages"][0]["attachments"]
        return attachment if attachment["sha256"] else None

    attachment = await eventually(downloaded, "the photo to be downloaded once the disk has room")
    assert real_put.__self__.get(attachment["sha256"]) == b"\xff\xd8\xff\xe0 the cracked windscreen"
    ref = (await only_ticket(telegram_daemon))["reference"]
    assert await timeline_event(telegram_daemon, ref, "attachment_fetch_failed") is None
