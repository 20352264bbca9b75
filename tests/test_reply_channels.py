"""Where a reply can go is decided once (ingest/reply_routes.py): the agent API's `open_ticket`
lists exactly the channels a `reply` is sent on, and the console's composer offers those alone,
so an agent is never offered a channel the server then refuses (a stranger's SMS, a web form, a
phone call, an insurer's filing)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from textual.widgets import OptionList, Select

from connectors.standins.smtp_sink import SmtpSink
from console.app import ConsoleApp
from console.client import ApiRequestError
from console.composer import Composer
from console.labels import refusal, say, shown
from console.render import Prefs
from console.thread_view import ThreadView
from ingest import queries
from ingest.apply import ApplyContext
from ingest.insurers import create_insurer
from ingest.reply_routes import ReplyFacts, Written, no_route_reason, reply_routes
from tests.test_agent_api import Harness
from tests.test_console import SIZE, console, open_only_ticket, until
from tests.test_console_crm import notified
from tests.test_insurer_api import INSURER_API, filing
from tests.test_twilio import CUSTOMER, QUIET, TOKEN, post, sms, twilio_table
from tests.test_webchat import WEBCHAT, form_fields, multipart, post_form

ALI = {"channel": "email", "recipient": "ali@example.com", "default": True}


@pytest.fixture
async def harness(make_daemon: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """Email in and out, SMS and WhatsApp through Twilio, the web form and the insurer API; no
    acknowledgements, so the sink receives only the agents' replies."""
    monkeypatch.setenv("PARVANDEH_TWILIO_AUTH_TOKEN", TOKEN)
    sink = await SmtpSink().start()
    daemon = await make_daemon(WEBCHAT + INSURER_API + twilio_table(), outbound_port=sink.port, environ=QUIET)
    harness = Harness(daemon, daemon.agent_api, sink)
    yield harness
    for client in harness.clients:
        await client.close()
    await sink.stop()


async def stranger_sms(harness: Harness, ref: str) -> None:
    """Someone who is not the claim's contact texts, quoting the claim's reference."""
    assert (await post(harness.daemon, sms("SM1", body=f"وضعیت پرونده {ref} چه شد؟")))[0] == 200
    await harness.daemon.ingest.drained()


async def insurer_filing(harness: Harness, **overrides: Any) -> str:
    made = await harness.daemon.store.write(create_insurer("asia", ""))
    url = f"http://127.0.0.1:{harness.daemon.http_port}/api/v1/claims"
    async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {made.api_key}"}) as s,
                s.post(url, json=filing(**overrides)) as r):
        assert r.status == 201, await r.text()
        return (await r.json())["reference"]


async def test_an_email_thread_is_answered_by_email(harness: Harness) -> None:
    ref = await harness.mail(subject="تصادف", sender="ali@example.com")
    assert await harness.mail(subject=f"Re: [{ref}] تصادف", body="عکس‌ها پیوست شد", sender="ali@example.com") == ref
    sara = await harness.client(await harness.agent("sara"))
    detail = await sara.request("open_ticket", ref=ref)
    assert detail["reply_channels"] == [ALI] and detail["no_reply_reason"] is None
    await sara.request("reply", ref=ref, text="on our way")
    (sent,) = await harness.sink.wait_for(1)
    assert sent["To"] == "ali@example.com" and sent["In-Reply-To"]  # threads under Ali's latest mail


async def test_a_strangers_sms_naming_the_claim_is_not_offered(harness: Harness) -> None:
    ref = await harness.mail(subject="تصادف", sender="ali@example.com")
    await stranger_sms(harness, ref)
    sara = await harness.client(await harness.agent("sara"))
    detail = await sara.request("open_ticket", ref=ref)
    assert [(m["channel"], m["from_contact"]) for m in detail["messages"]] == [("email", True), ("sms", False)]
    assert detail["reply_channels"] == [ALI]  # Ali has no phone: no SMS to anyone
    with pytest.raises(ApiRequestError, match="cannot be answered on sms, only on email"):
        await sara.request("reply", ref=ref, text="x", channel="sms")
    assert await sara.request("reply_channels", ref=ref) == {"reply_channels": [ALI], "no_reply_reason": None,
                                                             "no_reply_code": None, "no_reply_params": None}


async def test_a_web_form_is_answered_on_the_email_and_phone_it_gave(harness: Harness) -> None:
    status, _ = await post_form(harness.daemon, multipart(form_fields()))  # Ali@Example.com, ۰۹۱۲ ۱۲۳ ۴۵۶۷
    assert status == 200
    await harness.daemon.ingest.drained()
    (claim,) = await queries.list_tickets(harness.daemon.store)
    ref = claim["reference"]
    sara = await harness.client(await harness.agent("sara"))
    detail = await sara.request("open_ticket", ref=ref)
    assert [m["channel"] for m in detail["messages"]] == ["webform"]
    assert detail["reply_channels"] == [
        ALI, {"channel": "sms", "recipient": CUSTOMER, "default": False},
        {"channel": "whatsapp", "recipient": CUSTOMER, "default": False}]
    with pytest.raises(ApiRequestError, match="cannot be answered on webform"):
        await sara.request("reply", ref=ref, text="x", channel="webform")
    await sara.request("reply", ref=ref, text="فرم شما رسید")
    (sent,) = await harness.sink.wait_for(1)
    assert sent["To"] == "ali@example.com"


async def test_an_insurer_filed_claim_is_answered_on_the_policyholders_own_email_and_phone(
        harness: Harness) -> None:
    ref = await insurer_filing(harness)
    sara = await harness.client(await harness.agent("sara"))
    detail = await sara.request("open_ticket", ref=ref)
    assert [m["channel"] for m in detail["messages"]] == ["api"]
    assert detail["reply_channels"] == [
        {"channel": "email", "recipient": "ali.rezaei@example.com", "default": True},
        {"channel": "sms", "recipient": CUSTOMER, "default": False},
        {"channel": "whatsapp", "recipient": CUSTOMER, "default": False}]
    with pytest.raises(ApiRequestError, match="cannot be answered on api"):
        await sara.request("reply", ref=ref, text="x", channel="api")


async def test_a_claim_with_no_way_to_the_customer_says_why(harness: Harness) -> None:
    ref = await insurer_filing(harness, claim_number="ASIA-2025-002", policyholder={"name": "رضا"})
    sara = await harness.client(await harness.agent("sara"))
    detail = await sara.request("open_ticket", ref=ref)
    assert detail["reply_channels"] == []
    assert detail["no_reply_reason"] == ("the claim's contact has not written on it, and they have no email or"
                                         " phone to write to: add one to the contact")
    # The same as a reason and values, for the console to say in the agent's language.
    assert (detail["no_reply_code"], detail["no_reply_params"]) == ("no_reply.not_written.no_address", {})
    with pytest.raises(ApiRequestError, match=re.escape(detail["no_reply_reason"])) as refused:
        await sara.request("reply", ref=ref, text="x")
    assert (refused.value.reason, refused.value.params) == ("no_reply.not_written.no_address", {"ref": ref})


def test_why_no_reply_can_go_names_the_channels_and_identities_it_found() -> None:
    facts = ReplyFacts((Written(3, "webform", "webchat", "", "tok", "Web form"),), (("phone", "+989121234567"),))
    why = no_route_reason(facts)
    assert why.text == ("the customer's webform message has no sender address to answer, and no connector writes"
                        " to their phone")
    assert (why.reason, why.params) == ("no_reply.no_sender.no_writer", {"channel": "webform", "kinds": ["phone"]})
    assert refusal(why.reason, why.params, why.text, Prefs()) == (
        "پیام فرم وب مشتری نشانی فرستنده‌ای برای پاسخ ندارد و هیچ درگاهی به تلفن او نمی‌نویسد")


def test_a_contact_who_last_used_a_form_is_answered_where_they_can_be() -> None:
    """The default is the channel the contact last wrote on; a form cannot be answered in kind,
    so it is their email, else their phone, else the latest channel that can be answered."""
    ctx = ApplyContext(reference_prefix="PV", continuity_window=timedelta(0), default_queue="intake",
                       acknowledge=False, ack_hourly_limit=3, own_addresses=frozenset(), mail_domain="x.test",
                       from_address="claims@x.test", reply_connectors={"telegram": "telegram", "sms": "twilio"})
    form = Written(3, "webform", "webchat", "+989121234567", "tok", "Web form")
    telegram = Written(2, "telegram", "telegram", "5501", "9", "")
    facts = ReplyFacts((form, telegram), ())
    assert [(r.channel, r.recipient, r.default) for r in reply_routes(facts, ctx)] == [("telegram", "5501", True)]
    facts = ReplyFacts((form, telegram), (("phone", "+989121234567"),))
    assert [(r.channel, r.default) for r in reply_routes(facts, ctx)] == [("telegram", False), ("sms", True)]


async def test_the_composer_offers_only_the_channels_a_reply_can_go_on(harness: Harness) -> None:
    ref = await harness.mail(subject="تصادف", sender="ali@example.com")
    await stranger_sms(harness, ref)
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        assert app.screen.query_one(ThreadView).highlighted_message()["channel"] == "sms"  # the stranger's
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Composer))
        select = app.screen.query_one("#channel", Select)
        choices = select.query_one(OptionList)
        assert [str(choices.get_option_at_index(i).prompt) for i in range(choices.option_count)] == [
            "email → ali@example.com"]
        assert select.value == "email"
        await pilot.press(*"on our way", "ctrl+s")
        (sent,) = await harness.sink.wait_for(1)
        assert sent["To"] == "ali@example.com" and "on our way" in sent.get_content()


async def test_the_composer_is_not_offered_when_no_reply_can_be_sent(harness: Harness) -> None:
    ref = await insurer_filing(harness, policyholder={"name": "رضا"})
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await pilot.press("r")
        await until(pilot, lambda: notified(app, "no channel to answer this claim on: the claim's contact has not written on it,"
                                                 " and they have no email or phone to write to: add one to the contact"))
        await pilot.pause(0.1)
        assert not isinstance(app.screen, Composer)


async def test_a_persian_agent_is_told_in_persian_why_no_reply_can_be_sent(harness: Harness) -> None:
    ref = await insurer_filing(harness, policyholder={"name": "رضا"})
    app = ConsoleApp(harness.url, await harness.agent("sara"), Prefs())
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await pilot.press("r")
        why = say("error.no_reply.not_written.no_address", Prefs())
        assert why == ("مخاطب پرونده در آن چیزی ننوشته است و ایمیل یا تلفنی برای نوشتن به او نیست:"
                       " یکی به مخاطب بیفزایید")
        await until(pilot, lambda: notified(app, shown("no_reply_channel", Prefs(), reason=why)))
        assert not isinstance(app.screen, Composer)


async def test_a_channel_the_customer_starts_on_while_the_claim_is_open_is_offered(harness: Harness) -> None:
    ref = await insurer_filing(harness, policyholder={"name": "رضا", "phones": ["0912 123 4567"]})
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        assert [r["channel"] for r in app.screen.detail["reply_channels"]] == ["sms", "whatsapp"]
        # The policyholder texts from their own phone on WhatsApp: now the channel they last wrote on.
        assert (await post(harness.daemon, sms("SM2", body=f"پرونده {ref}", sender=f"whatsapp:{CUSTOMER}")))[0] == 200
        await until(pilot, lambda: next(r["channel"] for r in app.screen.detail["reply_channels"] if r["default"])
                    == "whatsapp")
