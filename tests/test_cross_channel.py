"""One customer across channels: an email opens the claim; an SMS from the phone number on that
claim, then Telegram messages after sharing that contact, land on the same contact and, within the
continuity window, the same claim thread."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

import pytest

from ingest import queries
from ingest.apply import agent_reply
from ingest.daemon import Daemon
from connectors.standins.bot_api import BotApiStandIn
from tests.mailgen import mail
from tests.test_telegram import TG_ENV, TG_TOKEN, bot_table, committed, text_update
from tests.test_twilio import CUSTOMER, QUIET, TOKEN, post, sms, twilio_table

EMAIL = "ali@example.com"


@pytest.fixture(autouse=True)
def twilio_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARVANDEH_TWILIO_AUTH_TOKEN", TOKEN)


async def email(daemon: Daemon, subject: str, body: str) -> None:
    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", daemon.connectors["smtp"].port, timeout=10) as client:  # type: ignore[attr-defined]
            client.send_message(mail(sender=f"Ali Rezaei <{EMAIL}>", subject=subject, body=body))

    await asyncio.to_thread(deliver)


async def claims(daemon: Daemon) -> list[dict[str, Any]]:
    await daemon.ingest.drained()
    return [await queries.ticket_detail(daemon.store, t["reference"]) for t in await queries.list_tickets(daemon.store)]


async def contacts_of(daemon: Daemon, *values: str) -> set[int]:
    await daemon.ingest.drained()
    marks = ",".join("?" * len(values))
    rows = await daemon.store.fetchall(f"SELECT contact_id FROM identities WHERE value IN ({marks})", values)
    return {row["contact_id"] for row in rows}


async def test_sms_quoting_the_emailed_claim_joins_its_thread(make_daemon: Any) -> None:
    daemon = await make_daemon(twilio_table(), environ=QUIET)
    await email(daemon, "خسارت تصادف", "سلام، خودروی من دیروز تصادف کرد.")
    (claim,) = await claims(daemon)
    ref = claim["reference"]
    assert (await post(daemon, sms("SM1", body=f"عکس‌های خسارت پرونده {ref} را فرستادم")))[0] == 200
    (claim,) = await claims(daemon)
    assert [(m["channel"], m["sender"]) for m in claim["messages"]] == [("email", EMAIL), ("sms", CUSTOMER)]


async def test_a_reply_on_sms_to_an_emailed_claim_carries_no_subject(make_daemon: Any) -> None:
    daemon = await make_daemon(twilio_table(), environ=QUIET)
    await email(daemon, "خسارت تصادف", "سلام، خودروی من تصادف کرد.\n\nعلی رضایی\nشماره همراه: ۰۹۱۲۱۲۳۴۵۶۷")
    await post(daemon, sms("SM1", body="عکس‌ها را فرستادم"))  # from that mobile: the claim's contact
    (claim,) = await claims(daemon)
    ref = claim["reference"]
    await daemon.store.write(agent_reply(ref, "دریافت شد", "maryam", daemon.ingest.context))  # on SMS, the last word's channel
    await daemon.store.write(agent_reply(ref, "دریافت شد", "maryam", daemon.ingest.context, channel="email"))
    (claim,) = await claims(daemon)
    sent = [(m["channel"], m["subject"]) for m in claim["messages"] if m["direction"] == "out"]
    assert sent == [("sms", ""), ("email", "خسارت تصادف")]


async def test_email_then_sms_then_telegram_is_one_contact_and_one_claim_thread(
    make_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot_api = await BotApiStandIn([TG_TOKEN]).start()
    try:
        monkeypatch.setenv(TG_ENV, TG_TOKEN)
        daemon = await make_daemon(twilio_table() + bot_table(bot_api), environ=QUIET)
        # 1. An email whose signature gives the customer's mobile opens the claim.
        await email(daemon, "خسارت تصادف", "سلام، خودروی من دیروز تصادف کرد.\n\nعلی رضایی\nشماره همراه: ۰۹۱۲۱۲۳۴۵۶۷")
        # 2. An SMS from that mobile.
        await post(daemon, sms("SM2", body="سلام، کارشناس کی می‌آید؟"))
        # 3. On Telegram the customer shares their contact card, then writes.
        (bot,) = bot_api.bots.values()
        shared = bot.push(text_update("", user_id=7001, contact={"phone_number": "+989121234567",
                                                                 "first_name": "Ali", "user_id": 7001}))
        await committed(daemon, bot, shared)
        written = bot.push(text_update("مدارک را فردا می‌فرستم", user_id=7001, message_id=2))
        await committed(daemon, bot, written)

        assert len(await contacts_of(daemon, EMAIL, CUSTOMER, "7001")) == 1
        (claim,) = await claims(daemon)
        inbound = [m["channel"] for m in claim["messages"] if m["direction"] == "in"]
        assert inbound == ["email", "sms", "telegram", "telegram"]
    finally:
        await bot_api.stop()
