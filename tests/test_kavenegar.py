"""Kavenegar SMS: received SMS into claims over real HTTP through the secret receive URL, replies
out through a local stand-in of Kavenegar's REST API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from connectors.kavenegar.delivery import report
from connectors.kavenegar.outbound import receptor, result_of, statuses_of
from connectors.standins.kavenegar_api import KavenegarApiStandIn, post_kavenegar_sms
from connectors.standins.twilio_api import TwilioApiStandIn
from connectors.testing import ConnectorContract
from ingest import queries
from ingest.daemon import Daemon, StartError
from ingest.demo import Demo, theft_by_sms_on_kavenegar
from tests.test_twilio import (
    ACCOUNT_SID, QUIET, TOKEN, events, inbox_count, eventually, only_ticket, post, reply, sms, timeline,
    twilio_table,
)

API_KEY = "6A4B2F-kavenegar-test-api-key"
SECRET = "Jd8-secret-receive-path-0123456789"
LINE = "10004346"
CUSTOMER = "09121234567"
SECRETS = {"PARVANDEH_KAVENEGAR_API_KEY": API_KEY, "PARVANDEH_KAVENEGAR_WEBHOOK_SECRET": SECRET}


def kavenegar_table(api_base_url: str = "http://127.0.0.1:9", extra: str = "") -> str:
    return f'\n[kavenegar]\nsender = "{LINE}"\napi_base_url = "{api_base_url}"\n{extra}'


def named_table(name: str, api_base_url: str, sender: str) -> str:
    """One [[kavenegar]] account of several; its secrets in PV_<NAME>_KEY / PV_<NAME>_SECRET."""
    return (f'\n[[kavenegar]]\nname = "{name}"\nsender = "{sender}"\napi_base_url = "{api_base_url}"\n'
            f'api_key_env = "PV_{name.upper()}_KEY"\nwebhook_secret_env = "PV_{name.upper()}_SECRET"\n')


@pytest.fixture(autouse=True)
def kavenegar_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def api() -> AsyncIterator[KavenegarApiStandIn]:
    stand_in = await KavenegarApiStandIn(API_KEY).start()
    yield stand_in
    await stand_in.stop()


def received(message_id: str, text: str = "سلام، خودروی من تصادف کرده است", sender: str = CUSTOMER) -> dict[str, str]:
    return {"messageid": message_id, "from": sender, "to": LINE, "message": text}


async def deliver(daemon: Daemon, fields: dict[str, str], *, secret: str = SECRET, method: str = "POST",
                  path: str = "") -> tuple[int, str]:
    """A callback to the receive URL, or with path="/delivery" to the delivery URL."""
    async with aiohttp.ClientSession() as session:
        return await post_kavenegar_sms(
            session, f"http://127.0.0.1:{daemon.http_port}/webhooks/kavenegar/{secret}{path}", fields, method=method)


async def report_delivery(daemon: Daemon, message_id: str, status: int, **kwargs: Any) -> tuple[int, str]:
    return await deliver(daemon, {"messageid": message_id, "status": str(status)}, path="/delivery", **kwargs)


class TestKavenegarContract(ConnectorContract):
    channel = "sms"
    secrets = SECRETS

    @pytest.fixture(autouse=True)
    def _stand_in(self, api: KavenegarApiStandIn) -> None:
        self.api = api

    async def start(self, make_daemon: Any) -> Daemon:
        return await make_daemon(kavenegar_table(self.api.base_url))

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        status, _ = await deliver(daemon, received(key, f"message {key}"))
        return status == 200

    async def replies_sent(self, daemon: Daemon) -> list[str]:
        return [form["message"] for form in self.api.sent]


async def test_a_received_sms_opens_a_claim_with_the_e164_sender(make_daemon: Any) -> None:
    daemon = await make_daemon(kavenegar_table(), environ=QUIET)
    assert await deliver(daemon, received("300001")) == (200, "OK")
    ticket = await only_ticket(daemon)
    assert ticket["contact"]["identity"] == "+989121234567"
    (message,) = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert (message["channel"], message["sender"], message["text"], message["channel_message_id"]) == \
        ("sms", "+989121234567", "سلام، خودروی من تصادف کرده است", "300001")
    assert message["recipients"] == [LINE]


async def test_a_get_delivery_is_stored_and_its_repeat_by_post_is_not(make_daemon: Any) -> None:
    daemon = await make_daemon(kavenegar_table(), environ=QUIET)
    assert (await deliver(daemon, received("300002", "با GET & query"), method="GET"))[0] == 200
    assert (await deliver(daemon, received("300002", "با GET & query")))[0] == 200
    ticket = await only_ticket(daemon)
    assert [m["text"] for m in ticket["messages"]] == ["با GET & query"]
    assert await inbox_count(daemon) == 1


async def test_a_wrong_secret_is_404_stores_nothing_and_no_log_line_holds_the_secret(make_daemon: Any) -> None:
    daemon = await make_daemon(kavenegar_table(), environ=QUIET)
    with capture_logs() as logs:
        refused = await deliver(daemon, received("300003"), secret="guess")
        assert (await deliver(daemon, received("300004")))[0] == 200
    assert await inbox_count(daemon) == 1
    async with aiohttp.ClientSession() as session:
        unknown = await post_kavenegar_sms(session, f"http://127.0.0.1:{daemon.http_port}/webhooks/nothing", {})
    assert refused == unknown and refused[0] == 404, "a wrong secret looks like no route at all"
    paths = [e["path"] for e in logs if e["event"] == "http_request"]
    assert paths == ["/webhooks/kavenegar/{secret}"] * 2
    assert SECRET not in repr(logs) and API_KEY not in repr(logs)


async def test_a_callback_without_sender_or_id_is_400_and_stores_nothing(make_daemon: Any) -> None:
    daemon = await make_daemon(kavenegar_table(), environ=QUIET)
    status, body = await deliver(daemon, {"messageid": "300005", "message": "بدون فرستنده"})
    assert status == 400 and "from" in body
    assert (await deliver(daemon, {"from": CUSTOMER, "message": "بدون شناسه"}))[0] == 400
    assert await inbox_count(daemon) == 0


@pytest.mark.parametrize(("secret", "expected"), [
    ("", "PARVANDEH_KAVENEGAR_WEBHOOK_SECRET is not set"),
    ("short", "holds 5 characters; expected at least 16"),
])
async def test_a_missing_or_guessable_secret_fails_the_start_naming_it(
    make_daemon: Any, monkeypatch: pytest.MonkeyPatch, secret: str, expected: str,
) -> None:
    monkeypatch.setenv("PARVANDEH_KAVENEGAR_WEBHOOK_SECRET", secret)
    with pytest.raises(StartError, match=expected):
        await make_daemon(kavenegar_table())


async def test_agent_reply_leaves_through_the_api_from_our_line(make_daemon: Any, api: KavenegarApiStandIn) -> None:
    daemon = await make_daemon(kavenegar_table(api.base_url))
    await deliver(daemon, received("300006"))
    ref = (await only_ticket(daemon))["reference"]
    (ack_sent,) = await events(daemon, ref, "delivery_sent")  # the new claim's acknowledgement
    assert ref in api.sent[0]["message"] and ack_sent["detail"].endswith("UCS-2")

    await reply(daemon, ref, "کارشناس ما فردا ساعت ۱۰ با شما تماس می‌گیرد.")
    _, reply_sent = await events(daemon, ref, "delivery_sent", 2)
    assert api.sent[1] == {"receptor": CUSTOMER, "sender": LINE, "message": "کارشناس ما فردا ساعت ۱۰ با شما تماس می‌گیرد."}
    assert (reply_sent["channel_message_id"], reply_sent["detail"]) == ("kavenegar:8792344", "1 segment UCS-2")


async def test_no_credit_is_retried_and_a_bad_receptor_fails_for_good(
    make_daemon: Any, api: KavenegarApiStandIn,
) -> None:
    daemon = await make_daemon(kavenegar_table(api.base_url), environ=QUIET)
    await deliver(daemon, received("300007"))
    ref = (await only_ticket(daemon))["reference"]
    api.fail_next(418)
    await reply(daemon, ref, "Your surveyor visits tomorrow.")
    (retry,) = await events(daemon, ref, "delivery_retrying")
    assert retry["detail"] == "Kavenegar error 418: اعتبار حساب شما کافی نیست"

    api.fail_next(411)
    await reply(daemon, ref, "Second reply")
    (failed,) = await events(daemon, ref, "delivery_failed")
    assert failed["detail"].startswith("Kavenegar error 411")


async def test_an_unreachable_api_is_retried_and_the_key_in_its_url_is_never_recorded(make_daemon: Any) -> None:
    daemon = await make_daemon(kavenegar_table("http://127.0.0.1:9"), environ=QUIET)
    await deliver(daemon, received("300008"))
    ref = (await only_ticket(daemon))["reference"]
    await reply(daemon, ref, "hello")
    (retry,) = await events(daemon, ref, "delivery_retrying")
    assert retry["detail"].startswith("Kavenegar unreachable") and API_KEY not in retry["detail"]


async def test_an_sms_that_came_through_kavenegar_is_answered_through_kavenegar_beside_twilio(
    make_daemon: Any, api: KavenegarApiStandIn, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both gateways send "sms"; [twilio] comes first, so it is the default for the channel. The
    # customer wrote to our Kavenegar line: the answer must come from that line, not Twilio's.
    monkeypatch.setenv("PARVANDEH_TWILIO_AUTH_TOKEN", TOKEN)
    twilio = await TwilioApiStandIn(ACCOUNT_SID, TOKEN).start()
    try:
        daemon = await make_daemon(twilio_table(twilio.base_url) + kavenegar_table(api.base_url), environ=QUIET)
        await deliver(daemon, received("300009"))
        ref = (await only_ticket(daemon))["reference"]
        await reply(daemon, ref, "از خط کاوه‌نگار")
        (sent,) = await events(daemon, ref, "delivery_sent")
        assert [m["message"] for m in api.sent] == ["از خط کاوه‌نگار"] and twilio.sent == []
        assert sent["channel_message_id"] == "kavenegar:8792343"

        # And the other way round: Twilio's customer is answered by Twilio.
        await post(daemon, sms("SM300010", sender="+989351112233"))
        await daemon.ingest.drained()
        twilio_ref = next(t["reference"] for t in await queries.list_tickets(daemon.store) if t["reference"] != ref)
        await reply(daemon, twilio_ref, "from Twilio")
        await twilio.wait_for(1)
        assert len(api.sent) == 1
    finally:
        await twilio.stop()


async def test_delivery_reports_land_on_the_timeline_as_twilios_do(make_daemon: Any, api: KavenegarApiStandIn) -> None:
    daemon = await make_daemon(kavenegar_table(api.base_url), environ=QUIET)
    await deliver(daemon, received("300011"))
    ref = (await only_ticket(daemon))["reference"]
    await reply(daemon, ref, "کارشناس فردا تماس می‌گیرد.")
    (sent,) = await events(daemon, ref, "delivery_sent")
    assert sent["channel_message_id"] == "kavenegar:8792343"

    assert await report_delivery(daemon, "8792343", 4, method="GET") == (200, "OK")
    assert (await report_delivery(daemon, "8792343", 10))[0] == 200
    # Retried and racing callbacks: a repeat, or a stage behind "delivered", adds nothing.
    for late in (10, 1, 5):
        assert (await report_delivery(daemon, "8792343", late))[0] == 200
    recorded = await timeline(daemon, ref, "delivery_status")
    assert [(e["status"], e["channel_message_id"], e["channel"], e["detail"]) for e in recorded] == [
        ("sending", "kavenegar:8792343", "sms", "Kavenegar 4: sent to the telecom centre"),
        ("delivered", "kavenegar:8792343", "sms", "Kavenegar 10: delivered to the recipient"),
    ]
    # A report about a message that is not ours is answered and recorded nowhere.
    assert (await report_delivery(daemon, "999", 11))[0] == 200
    assert len(await timeline(daemon, ref, "delivery_status")) == 2


async def test_the_delivery_url_needs_the_secret_and_a_numeric_status(make_daemon: Any, api: KavenegarApiStandIn) -> None:
    daemon = await make_daemon(kavenegar_table(api.base_url), environ=QUIET)
    await deliver(daemon, received("300012"))
    ref = (await only_ticket(daemon))["reference"]
    await reply(daemon, ref, "hello")
    await events(daemon, ref, "delivery_sent")
    with capture_logs() as logs:
        assert (await report_delivery(daemon, "8792343", 11, secret="guess-guess-guess-guess"))[0] == 404
    assert SECRET not in repr(logs)
    status, body = await deliver(daemon, {"messageid": "8792343", "status": "delivered"}, path="/delivery")
    assert status == 400 and "status" in body
    assert (await deliver(daemon, {"messageid": "8792343"}, path="/delivery"))[0] == 400
    assert await timeline(daemon, ref, "delivery_status") == []


async def test_two_accounts_message_ids_do_not_collide(make_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each account numbers its messages: both stand-ins hand out 8792343 first, and a received
    # SMS on either line may carry the same messageid.
    secrets = {"north": "north-secret-0123456789", "south": "south-secret-0123456789"}
    apis = {name: await KavenegarApiStandIn(f"key-{name}").start() for name in secrets}
    for name, secret in secrets.items():
        monkeypatch.setenv(f"PV_{name.upper()}_KEY", f"key-{name}")
        monkeypatch.setenv(f"PV_{name.upper()}_SECRET", secret)
    try:
        daemon = await make_daemon(named_table("north", apis["north"].base_url, "10001") +
                                   named_table("south", apis["south"].base_url, "10002"), environ=QUIET)
        assert (await deliver(daemon, received("500001", "north", "09121110000"), secret=f"north/{secrets['north']}"))[0] == 200
        assert (await deliver(daemon, received("500001", "south", "09122220000"), secret=f"south/{secrets['south']}"))[0] == 200
        await daemon.ingest.drained()
        assert await inbox_count(daemon) == 2, "the same messageid on two accounts is two messages"
        refs = {t["contact"]["identity"]: t["reference"] for t in await queries.list_tickets(daemon.store)}
        north, south = refs["+989121110000"], refs["+989122220000"]
        await reply(daemon, north, "from north")
        await reply(daemon, south, "from south")
        (north_sent,) = await events(daemon, north, "delivery_sent")
        (south_sent,) = await events(daemon, south, "delivery_sent")
        assert (north_sent["channel_message_id"], south_sent["channel_message_id"]) == ("north:8792343", "south:8792343")

        assert (await report_delivery(daemon, "8792343", 11, secret=f"south/{secrets['south']}"))[0] == 200
        (status,) = await events(daemon, south, "delivery_status")
        assert status["status"] == "undelivered"
        assert await timeline(daemon, north, "delivery_status") == [], "south's report is not about north's message"
    finally:
        for api in apis.values():
            await api.stop()


async def test_polling_status_json_records_reports_until_final(make_daemon: Any, api: KavenegarApiStandIn) -> None:
    daemon = await make_daemon(kavenegar_table(api.base_url, "status_poll_seconds = 0.1\n"), environ=QUIET)
    await deliver(daemon, received("300013"))
    ref = (await only_ticket(daemon))["reference"]
    await reply(daemon, ref, "hello")
    await events(daemon, ref, "delivery_sent")
    (queued,) = await events(daemon, ref, "delivery_status")
    assert (queued["status"], queued["channel_message_id"]) == ("queued", "kavenegar:8792343")

    api.set_status("8792343", 10)
    await events(daemon, ref, "delivery_status", 2)
    asked = len(await api.wait_for_status_requests(1))
    await asyncio.sleep(0.5)
    assert len(api.status_requests) == asked, "a delivered message is not asked about again"
    assert set(map(tuple, api.status_requests)) == {("8792343",)}
    assert [e["status"] for e in await timeline(daemon, ref, "delivery_status")] == ["queued", "delivered"]


@pytest.mark.parametrize(("code", "expected"), [
    (1, ("queued", "Kavenegar 1: in Kavenegar's send queue")),
    (5, ("sent", "Kavenegar 5: sent to the operator")),
    (6, ("failed", "Kavenegar 6: failed")),
    (11, ("undelivered", "Kavenegar 11: not delivered to the recipient")),
    (13, ("canceled", "Kavenegar 13: cancelled")),
    (14, ("failed", "Kavenegar 14: blocked: the recipient refuses advertising SMS or the operator filtered it")),
    (42, ("kavenegar-42", "Kavenegar 42: a status Kavenegar did not document")),
    (100, None),
])
def test_kavenegar_status_codes_in_twilios_words(code: int, expected: tuple[str, str] | None) -> None:
    assert report(code) == expected


def test_a_status_json_answer_is_read_and_an_error_raises() -> None:
    answer = {"return": {"status": 200, "message": "تایید شد"},
              "entries": [{"messageid": 85463238, "status": 10, "statustext": "رسیده به گیرنده"}, {"status": 1}]}
    assert statuses_of(answer) == [("85463238", 10)]
    with pytest.raises(ValueError, match="418"):
        statuses_of({"return": {"status": 418, "message": "اعتبار حساب شما کافی نیست"}, "entries": None})


@pytest.mark.parametrize(("e164", "expected"), [
    ("+989121234567", "09121234567"), ("+14155550100", "0014155550100"), ("10004346", "10004346"),
])
def test_receptor_is_national_for_iran_and_00_international_otherwise(e164: str, expected: str) -> None:
    assert receptor(e164) == expected


@pytest.mark.parametrize(("status", "body", "ok", "permanent"), [
    (200, {"return": {"status": 200, "message": "تایید شد"}, "entries": [{"messageid": 42}]}, True, False),
    (418, {"return": {"status": 418, "message": "اعتبار حساب شما کافی نیست"}, "entries": None}, False, False),
    (403, {"return": {"status": 403, "message": "API-Key"}, "entries": None}, False, False),
    (502, None, False, False),
    (500, {"return": {"status": 500, "message": "x"}}, False, False),
    (501, {"return": {"status": 501, "message": "فقط به شماره صاحب حساب"}}, False, True),
    (411, {"return": {"status": 411, "message": "گیرنده نامعتبر است"}}, False, True),
    (422, {"return": {"status": 422, "message": "کاراکتر نامناسب"}}, False, True),
])
def test_kavenegar_answers_are_sent_retried_or_failed_for_good(
    status: int, body: Any, ok: bool, permanent: bool,
) -> None:
    result = result_of(status, body)
    assert (result.ok, result.permanent) == (ok, permanent)
    assert result.channel_message_id == ("42" if ok else "")


async def test_the_demo_texts_the_kavenegar_line_and_reports_the_acknowledgement_delivered(tmp_path: Path) -> None:
    reports: list[str] = []
    demo = Demo(tmp_path, interval=0.2, report=reports.append, rounds=1, scenarios=[theft_by_sms_on_kavenegar])
    await demo.start()
    try:
        assert demo.daemon is not None
        store = demo.daemon.store

        async def followed_up() -> dict[str, Any] | None:
            tickets = await queries.list_tickets(store)
            detail = tickets and await queries.ticket_detail(store, tickets[0]["reference"])
            return detail if detail and len([m for m in detail["messages"] if m["direction"] == "in"]) == 2 else None

        detail = await eventually(followed_up, 20)
        assert [m["channel"] for m in detail["messages"] if m["direction"] == "in"] == ["sms", "sms"]
        (ack_id,) = demo.kavenegar.sent_ids
        assert [e["status"] for e in detail["timeline"] if e["kind"] == "delivery_status"] == ["delivered"]
        assert [e["channel_message_id"] for e in detail["timeline"] if e["kind"] == "delivery_sent"] == \
            [f"kavenegar:{ack_id}"]
        assert demo.twilio.sent == [] and not [line for line in reports if "failed" in line], reports
    finally:
        await demo.stop()
