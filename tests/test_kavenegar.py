"""Kavenegar SMS: received SMS into claims over real HTTP through the secret receive URL, replies
out through a local stand-in of Kavenegar's REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from connectors.kavenegar.outbound import receptor, result_of
from connectors.standins.kavenegar_api import KavenegarApiStandIn, post_kavenegar_sms
from connectors.standins.twilio_api import TwilioApiStandIn
from connectors.testing import ConnectorContract
from ingest import queries
from ingest.daemon import Daemon, StartError
from tests.test_twilio import (
    ACCOUNT_SID, QUIET, TOKEN, events, inbox_count, only_ticket, post, reply, sms, twilio_table,
)

API_KEY = "6A4B2F-kavenegar-test-api-key"
SECRET = "Jd8-secret-receive-path-0123456789"
LINE = "10004346"
CUSTOMER = "09121234567"
SECRETS = {"PARVANDEH_KAVENEGAR_API_KEY": API_KEY, "PARVANDEH_KAVENEGAR_WEBHOOK_SECRET": SECRET}


def kavenegar_table(api_base_url: str = "http://127.0.0.1:9") -> str:
    return f'\n[kavenegar]\nsender = "{LINE}"\napi_base_url = "{api_base_url}"\n'


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


async def deliver(daemon: Daemon, fields: dict[str, str], *, secret: str = SECRET, method: str = "POST") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        return await post_kavenegar_sms(session, f"http://127.0.0.1:{daemon.http_port}/webhooks/kavenegar/{secret}",
                                        fields, method=method)


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
    assert (reply_sent["channel_message_id"], reply_sent["detail"]) == ("8792344", "1 segment UCS-2")


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
        assert sent["channel_message_id"] == "8792343"

        # And the other way round: Twilio's customer is answered by Twilio.
        await post(daemon, sms("SM300010", sender="+989351112233"))
        await daemon.ingest.drained()
        twilio_ref = next(t["reference"] for t in await queries.list_tickets(daemon.store) if t["reference"] != ref)
        await reply(daemon, twilio_ref, "from Twilio")
        await twilio.wait_for(1)
        assert len(api.sent) == 1
    finally:
        await twilio.stop()


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
