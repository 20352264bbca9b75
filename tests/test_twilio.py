"""Twilio SMS and WhatsApp: signed webhooks into claims over real HTTP, replies out through a
local stand-in of the Messages API, delivery status back onto the timeline."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlencode

import aiohttp
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from aiohttp import web
from multidict import MultiDict

from config.loader import ConfigError
from connectors.base import ConnectorContext
from connectors.twilio import TwilioConnector, TwilioSettings
from connectors.twilio.media import fetch_media
from connectors.forms import parse_form
from connectors.twilio.webhook import signature_valid
from ingest import queries
from ingest.apply import agent_reply, delivery_news
from ingest.daemon import Daemon
from tests.conftest import settings_from, write_config
from tests.kit.contract import ConnectorContract
from connectors.standins.twilio_api import TwilioApiStandIn, post_twilio_webhook, twilio_signature

ACCOUNT_SID = "AC" + "5f" * 16
TOKEN = "twilio-test-auth-token"
OUR_NUMBER = "+982191001234"
CUSTOMER = "+989121234567"
PUBLIC = "https://claims.example.ir"


def twilio_table(api_base_url: str = "http://127.0.0.1:9") -> str:
    return f"""
[twilio]
account_sid = "{ACCOUNT_SID}"
from_number = "{OUR_NUMBER}"
whatsapp_from = "whatsapp:{OUR_NUMBER}"
api_base_url = "{api_base_url}"
"""


QUIET = {"PARVANDEH__CLAIMS__ACKNOWLEDGE_NEW_TICKETS": "false"}  # no acknowledgement SMS unless asked


async def start(make_daemon: Any, api_base_url: str = "http://127.0.0.1:9", **environ: str) -> Daemon:
    return await make_daemon(twilio_table(api_base_url), environ={**QUIET, **environ})


@pytest.fixture(autouse=True)
def twilio_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARVANDEH_TWILIO_AUTH_TOKEN", TOKEN)


@pytest.fixture
async def api() -> AsyncIterator[TwilioApiStandIn]:
    stand_in = await TwilioApiStandIn(ACCOUNT_SID, TOKEN).start()
    yield stand_in
    await stand_in.stop()


def sms(sid: str, body: str = "سلام، ماشینم تصادف کرده", sender: str = CUSTOMER, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": sender,
            "To": f"whatsapp:{OUR_NUMBER}" if sender.startswith("whatsapp:") else OUR_NUMBER,
            "Body": body, "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01", **extra}


def local(daemon: Daemon, path: str = "/webhooks/twilio/messages") -> str:
    return f"http://127.0.0.1:{daemon.http_port}{path}"


async def post(daemon: Daemon, params: dict[str, str], path: str = "/webhooks/twilio/messages",
               **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        return await post_twilio_webhook(session, local(daemon, path), params, TOKEN, **kwargs)


async def inbox_count(daemon: Daemon) -> int:
    (row,) = await daemon.store.fetchall("SELECT count(*) AS n FROM inbox")
    return row["n"]


async def only_ticket(daemon: Daemon) -> dict[str, Any]:
    await daemon.ingest.drained()
    (ticket,) = await queries.list_tickets(daemon.store)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    assert detail is not None
    return detail


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy, with a deadline."""
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.02)
    return result


class TestTwilioContract(ConnectorContract):
    channel = "sms"

    async def start(self, make_daemon: Any) -> Daemon:
        return await start(make_daemon)

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        status, _ = await post(daemon, sms(f"SM{key}", body=f"message {key}"))
        return status == 200


async def test_signed_sms_opens_a_claim_with_the_e164_sender(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    status, text = await post(daemon, sms("SM0001"))
    assert status == 200
    assert text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    ticket = await only_ticket(daemon)
    assert ticket["reference"].startswith("PV-14")
    assert ticket["contact"]["identity"] == CUSTOMER
    (message,) = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert (message["channel"], message["sender"], message["text"]) == ("sms", CUSTOMER, "سلام، ماشینم تصادف کرده")
    assert message["recipients"] == [OUR_NUMBER]


async def test_a_webhook_is_one_log_line_naming_the_inbox_row_and_the_request(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        status, _ = await post(daemon, sms("SM0002"))
        await post(daemon, sms("SM0002"))  # Twilio's retry
    assert status == 200
    requests = [e for e in logs if e["event"] == "http_request"]
    assert [e["message_accepted"]["duplicate"] for e in requests] == [False, True]
    assert requests[0]["message_accepted"]["inbox_id"] == requests[1]["message_accepted"]["inbox_id"]
    assert requests[0]["message_accepted"]["channel"] == "sms" and requests[0]["request_id"]
    assert not [e for e in logs if e["event"] == "message_accepted"], "not a line of its own as well"


def test_our_validator_agrees_with_twilios_public_test_vector() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = MultiDict({"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
                        "From": "+12349013030", "To": "+18005551212"})
    assert signature_valid("12345", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not signature_valid("12345", url, MultiDict({**params, "Digits": "1235"}), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not signature_valid("12346", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=200)), max_size=12))
def test_form_parsing_round_trips_whatever_twilio_encodes(pairs: list[tuple[str, str]]) -> None:
    for body in (urlencode(pairs), urlencode(pairs, quote_via=quote)):  # '+' or %20 for spaces
        assert list(parse_form(body.encode()).items()) == pairs


@given(st.lists(st.sampled_from([b"%", b"+", b"\\", b"x", b"4", b"1", b"A", b"f", b"g", b"%D8", b"%B3", b"%5C", b"\\x41",
                                 b"\\\\", b"%2", b"=", b"\n"]), max_size=30))
def test_a_field_decodes_as_urllib_decodes_it(pieces: list[bytes]) -> None:
    raw = b"".join(pieces).replace(b"=", b"%3D")
    try:
        expected: str | type[Exception] = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        expected = UnicodeDecodeError
    try:
        got: str | type[Exception] = parse_form(b"F=" + raw)["F"]
    except ValueError:
        got = UnicodeDecodeError
    assert got == expected


def test_form_parsing_refuses_what_is_not_a_form() -> None:
    for body in (b"MessageSid=SM1&From", b"Body=%FF%FE", b"a=1&&b=2"):
        with pytest.raises(ValueError):
            parse_form(body)
    with pytest.raises(ValueError, match="field b'Body' is not UTF-8"):  # named, whichever path decoded it
        parse_form(b"From=%2B98912&Body=%D8%B3%FF")
    with pytest.raises(ValueError, match="field b'Body' is not UTF-8"):
        parse_form(b"From=a%26b&Body=%D8%B3%FF")
    assert list(parse_form(b"Body=50%25+off%2C+%D8%B3%D9%84%D8%A7%D9%85&X=").items()) == [
        ("Body", "50% off, سلام"), ("X", "")]
    # What no encoder sends, read as before: a stray '%' stays, backslashes are only characters.
    assert list(parse_form(b"Body=100%+sure+%2&P=C%3A%5Cx41%5C%5Cn\\x42%2").items()) == [
        ("Body", "100% sure %2"), ("P", "C:\\x41\\\\n\\x42%2")]
    assert parse_form(b"P=a\\x41%41")["P"] == "a\\x41A"
    # An escaped '&' or '=' stays inside its value (fields are then unescaped one by one).
    assert list(parse_form(b"Body=a%26b%3Dc+%D8%B3&To=%2B98").items()) == [("Body", "a&b=c س"), ("To", "+98")]


async def test_forged_missing_and_wrong_url_signatures_are_refused_and_nothing_stored(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    attempts = {
        "forged": {"signature": twilio_signature("not-the-token", local(daemon), sms("SM1"))},
        "missing": {"signature": ""},
        "other_path": {"signed_url": local(daemon, "/webhooks/twilio/status")},
        "other_host": {"signed_url": "https://attacker.example/webhooks/twilio/messages"},
    }
    for name, kwargs in attempts.items():
        status, text = await post(daemon, sms("SM1"), **kwargs)
        assert status == 403, name
        assert '"invalid_signature"' in text, name
    # A valid signature does not cover changed fields.
    signature = twilio_signature(TOKEN, local(daemon), sms("SM1"))
    status, _ = await post(daemon, sms("SM1", body="tampered"), signature=signature)
    assert status == 403
    assert await inbox_count(daemon) == 0


async def test_behind_a_proxy_the_public_url_is_what_is_verified(make_daemon: Any) -> None:
    daemon = await start(make_daemon, PARVANDEH__HTTP__PUBLIC_BASE_URL=PUBLIC)
    status, _ = await post(daemon, sms("SM2"))  # signed for the loopback URL Twilio never used
    assert status == 403
    status, _ = await post(daemon, sms("SM2"), signed_url=f"{PUBLIC}/webhooks/twilio/messages")
    assert status == 200
    assert await inbox_count(daemon) == 1


async def test_oversized_body_is_413_and_nothing_stored(make_daemon: Any) -> None:
    daemon = await start(make_daemon, PARVANDEH__HTTP__MAX_BODY_BYTES="4096")
    status, text = await post(daemon, sms("SM3", body="خسارت " * 2000))
    assert status == 413
    assert '"body_too_large"' in text
    assert await inbox_count(daemon) == 0


async def test_malformed_webhooks_get_clear_errors_and_nothing_stored(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    status, text = await post(daemon, sms("SM4"), body=b"MessageSid=SM4&Body=%FF%FE&From")
    assert status == 400 and '"malformed_form"' in text
    no_sid = {k: v for k, v in sms("SM4").items() if k not in ("MessageSid", "SmsSid")}
    status, text = await post(daemon, no_sid)
    assert status == 400 and "MessageSid" in text
    async with aiohttp.ClientSession() as session:
        async with session.post(local(daemon), json=sms("SM4")) as response:
            assert response.status == 415
    assert await inbox_count(daemon) == 0


async def test_whatsapp_sender_gets_channel_whatsapp_and_the_same_contact_as_sms(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    assert (await post(daemon, sms("SM5", body="تصادف کردم")))[0] == 200
    assert (await post(daemon, sms("SM6", body="عکس‌ها را فرستادم", sender=f"whatsapp:{CUSTOMER}",
                                   ProfileName="Ali")))[0] == 200
    ticket = await only_ticket(daemon)  # one claim: same phone, same conversation
    channels = [(m["channel"], m["sender"]) for m in ticket["messages"] if m["direction"] == "in"]
    assert channels == [("sms", CUSTOMER), ("whatsapp", CUSTOMER)]
    (row,) = await daemon.store.fetchall("SELECT count(DISTINCT contact_id) AS n FROM identities")
    assert row["n"] == 1


async def test_media_are_recorded_as_attachments_to_fetch(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    media = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM7/Media"
    status, _ = await post(daemon, sms("MM7", body="", NumMedia="2", MediaUrl0=f"{media}/ME1",
                                       MediaContentType0="image/jpeg", MediaUrl1=f"{media}/ME2",
                                       MediaContentType1="application/pdf"))
    assert status == 200
    (message,) = (await only_ticket(daemon))["messages"][:1]
    assert [(a["filename"], a["content_type"], a["remote_ref"], a["sha256"]) for a in message["attachments"]] == [
        ("media0.jpg", "image/jpeg", f"{media}/ME1", None),
        ("media1.pdf", "application/pdf", f"{media}/ME2", None),
    ]


# -- replies -------------------------------------------------------------------------------------


async def reply(daemon: Daemon, ref: str, text: str) -> None:
    await daemon.store.write(agent_reply(ref, text, "agent:maryam", daemon.ingest.context))


async def sent_messages(daemon: Daemon, ref: str) -> list[dict[str, Any]]:
    detail = await queries.ticket_detail(daemon.store, ref)
    assert detail is not None
    return [m for m in detail["messages"] if m["direction"] == "out" and m["channel_message_id"]]


async def timeline(daemon: Daemon, ref: str, kind: str) -> list[dict[str, Any]]:
    detail = await queries.ticket_detail(daemon.store, ref)
    assert detail is not None
    return [e for e in detail["timeline"] if e["kind"] == kind]


async def events(daemon: Daemon, ref: str, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """The ticket's `kind` events once there are at least `count` of them."""

    async def enough() -> list[dict[str, Any]] | None:
        found = await timeline(daemon, ref, kind)
        return found if len(found) >= count else None

    return await eventually(enough)


async def test_agent_reply_reaches_the_messages_api_and_its_status_lands_on_the_timeline(
    make_daemon: Any, api: TwilioApiStandIn,
) -> None:
    daemon = await make_daemon(twilio_table(api.base_url), environ={"PARVANDEH__HTTP__PUBLIC_BASE_URL": PUBLIC})
    await post(daemon, sms("SM8"), signed_url=f"{PUBLIC}/webhooks/twilio/messages")
    ref = (await only_ticket(daemon))["reference"]
    ack, = await api.wait_for(1)  # the new claim's acknowledgement, by SMS
    assert ref in ack["Body"] and ack["To"] == CUSTOMER

    await reply(daemon, ref, "کارشناس ما فردا ساعت ۱۰ با شما تماس می‌گیرد.")
    sent = (await api.wait_for(2))[1]
    assert (sent["To"], sent["From"], sent["Body"]) == (CUSTOMER, OUR_NUMBER, "کارشناس ما فردا ساعت ۱۰ با شما تماس می‌گیرد.")
    assert sent["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/status"

    ack_sent, reply_sent = await events(daemon, ref, "delivery_sent", 2)
    assert ack_sent["detail"].endswith("UCS-2") and reply_sent["detail"] == "1 segment UCS-2"
    _, reply_row = await sent_messages(daemon, ref)
    sid = reply_row["channel_message_id"]
    assert sid.startswith("SM") and sid == reply_sent["channel_message_id"]

    status, _ = await post(daemon, {"MessageSid": sid, "MessageStatus": "delivered", "To": CUSTOMER,
                                    "From": OUR_NUMBER, "AccountSid": ACCOUNT_SID},
                           path="/webhooks/twilio/status", signed_url=f"{PUBLIC}/webhooks/twilio/status")
    assert status == 204
    (event,) = await timeline(daemon, ref, "delivery_status")
    assert (event["status"], event["channel_message_id"], event["channel"]) == ("delivered", sid, "sms")

    # Twilio retries callbacks, they race, and a captured one replays (no timestamp is signed):
    # a repeat, or a stage behind "delivered", is answered but adds nothing to the timeline.
    for late in ("delivered", "delivered", "sent"):
        status, _ = await post(daemon, {"MessageSid": sid, "MessageStatus": late, "To": CUSTOMER,
                                        "From": OUR_NUMBER, "AccountSid": ACCOUNT_SID},
                               path="/webhooks/twilio/status", signed_url=f"{PUBLIC}/webhooks/twilio/status")
        assert status == 204
    assert [e["status"] for e in await timeline(daemon, ref, "delivery_status")] == ["delivered"]

    status, _ = await post(daemon, {"MessageSid": sid, "MessageStatus": "failed"}, path="/webhooks/twilio/status")
    assert status == 403, "status callbacks are signature-checked too"


def test_delivery_news_is_a_new_status_no_stage_behind_the_furthest() -> None:
    assert delivery_news([], "queued") and delivery_news(["queued", "sent"], "delivered")
    assert not delivery_news(["sent"], "sent") and not delivery_news(["delivered"], "sent")
    assert delivery_news(["delivered"], "read") and delivery_news(["sent"], "failed")
    assert delivery_news(["delivered"], "partially_delivered") and not delivery_news(["x"], "x")


async def test_long_persian_reply_is_counted_in_segments_and_split_over_ten(
    make_daemon: Any, api: TwilioApiStandIn,
) -> None:
    daemon = await start(make_daemon, api.base_url)
    await post(daemon, sms("SM9"))
    ref = (await only_ticket(daemon))["reference"]
    medium = " ".join(["خسارت"] * 50)  # 299 characters
    await reply(daemon, ref, medium)
    assert [m["Body"] for m in await api.wait_for(1)] == [medium]
    long = " ".join(["خسارت"] * 200)  # 1,199 characters: 18 segments
    await reply(daemon, ref, long)
    parts = [m["Body"] for m in (await api.wait_for(3))[1:]]
    assert len(parts) == 2 and " ".join(parts) == long
    details = [e["detail"] for e in await events(daemon, ref, "delivery_sent", 2)]
    assert details == ["5 segments UCS-2", "18 segments UCS-2 in 2 messages"]


async def test_rate_limited_send_is_retried_and_a_bad_number_fails_for_good(
    make_daemon: Any, api: TwilioApiStandIn,
) -> None:
    daemon = await start(make_daemon, api.base_url)
    await post(daemon, sms("SM10"))
    ref = (await only_ticket(daemon))["reference"]
    api.fail_next(429, retry_after="1")
    await reply(daemon, ref, "Your surveyor visits tomorrow.")
    await api.wait_for(1)
    assert api.attempts == [429, 201]
    retry, = await timeline(daemon, ref, "delivery_retrying")
    assert "429" in retry["detail"]
    await events(daemon, ref, "delivery_sent")

    api.fail_next(400)
    await reply(daemon, ref, "Second reply")
    failed = await events(daemon, ref, "delivery_failed")
    assert "21211" in failed[0]["detail"] and "not a valid phone number" in failed[0]["detail"]
    assert api.attempts == [429, 201, 400]


async def test_whatsapp_reply_goes_from_the_whatsapp_sender(make_daemon: Any, api: TwilioApiStandIn) -> None:
    daemon = await start(make_daemon, api.base_url)
    await post(daemon, sms("SM11", sender=f"whatsapp:{CUSTOMER}"))
    ref = (await only_ticket(daemon))["reference"]
    await reply(daemon, ref, "دریافت شد")
    (sent,) = await api.wait_for(1)
    assert (sent["To"], sent["From"]) == (f"whatsapp:{CUSTOMER}", f"whatsapp:{OUR_NUMBER}")
    assert "StatusCallback" not in sent, "no public URL configured: Twilio cannot call us back"


async def test_missing_auth_token_is_a_clear_error_at_start(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARVANDEH_TWILIO_AUTH_TOKEN")
    settings = settings_from(write_config(tmp_path, twilio_table()))
    (_, name, conf), = [i for i in settings.connector_instances() if i[0] == "twilio"]
    assert isinstance(conf, TwilioSettings)
    connector = TwilioConnector(name, conf, ConnectorContext(http_app=web.Application(), settings=settings))
    with pytest.raises(ConfigError, match="PARVANDEH_TWILIO_AUTH_TOKEN"):
        await connector.start(None)  # type: ignore[arg-type]


def test_settings_name_the_bad_key(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match=r"twilio\.from_number = '09121234567'"):
        settings_from(write_config(tmp_path, twilio_table().replace(OUR_NUMBER + '"\nwhatsapp', '09121234567"\nwhatsapp')))


async def test_media_are_downloaded_with_the_account_credentials_into_the_attachment_store(
    make_daemon: Any, api: TwilioApiStandIn,
) -> None:
    daemon = await start(make_daemon, api.base_url)
    photo = b"\xff\xd8\xff\xe0 a photo of the damaged bumper"
    url = api.add_media("MM8", "ME8", photo, "image/jpeg")
    elsewhere = "http://127.0.0.1:9/2010-04-01/Accounts/x/Messages/MM8/Media/ME9"  # not the API host
    assert (await post(daemon, sms("MM8", body="", NumMedia="2", MediaUrl0=url, MediaContentType0="image/jpeg",
                                   MediaUrl1=elsewhere, MediaContentType1="image/jpeg")))[0] == 200

    async def fetched() -> dict[str, Any] | None:
        ticket = await only_ticket(daemon)
        failed = [e for e in ticket["timeline"] if e["kind"] == "attachment_fetch_failed"]
        first = ticket["messages"][0]["attachments"][0]
        return {"photo": first, "failed": failed} if first["sha256"] and failed else None

    for _ in range(200):
        if (result := await fetched()) is not None:
            break
        await asyncio.sleep(0.02)
    assert result is not None, "the media were not fetched"
    assert daemon.blobs.get(result["photo"]["sha256"]) == photo
    assert result["photo"]["size"] == len(photo)
    (refused,) = result["failed"]
    assert refused["filename"] == "media1.jpg" and "not on the Twilio API host" in refused["error"]


async def test_media_credentials_go_to_the_api_host_and_not_where_it_redirects() -> None:
    seen: dict[str, str | None] = {}

    async def api(request: web.Request) -> web.Response:
        seen["api"] = request.headers.get("Authorization")
        raise web.HTTPFound(f"http://127.0.0.1:{cdn_port}/file")  # another origin: another port

    async def cdn(request: web.Request) -> web.Response:
        seen["cdn"] = request.headers.get("Authorization")
        return web.Response(body=b"photo bytes", content_type="image/jpeg")

    runners = []
    ports = []
    for route, handler in (("/Media/ME1", api), ("/file", cdn)):
        app = web.Application()
        app.router.add_get(route, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    api_port, cdn_port = ports
    try:
        async with aiohttp.ClientSession() as session:
            data = await fetch_media(session, f"http://127.0.0.1:{api_port}/Media/ME1",
                                     f"http://127.0.0.1:{api_port}", "ACsid", "token", 1000)
    finally:
        for runner in runners:
            await runner.cleanup()
    assert data == b"photo bytes"
    assert seen["api"] == "Basic " + base64.b64encode(b"ACsid:token").decode()
    assert seen["cdn"] is None
