"""Phone call logs over real HTTP: Twilio Voice status callbacks and signed PBX JSON become
"call" messages on the caller's thread; missed calls open a ticket so someone calls back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from multidict import MultiDict

from config.loader import ConfigError
from connectors.base import ConnectorContext
from connectors.calls import CallsConnector
from connectors.calls.records import call_message, format_duration, pbx_call, twilio_call
from connectors.http_front import hmac_sha256_hex
from ingest import queries
from ingest.apply import ReplyError, agent_reply
from ingest.daemon import Daemon
from tests.conftest import settings_from, write_config
from tests.kit.contract import ConnectorContract
from tests.test_twilio import ACCOUNT_SID, CUSTOMER, OUR_NUMBER, QUIET, TOKEN, inbox_count, post, sms, twilio_table

SECRET = "pbx-shared-secret"
OUR_TRUNK = "02100000000"  # the caller id the firm's PBX presents on its calls out
# 10:35:12 UTC is 14:05:12 in Tehran (+03:30).
TWILIO_TIMESTAMP = "Tue, 14 May 2024 10:35:12 +0000"


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARVANDEH_TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("PARVANDEH_CALLS_SECRET", SECRET)


async def start(make_daemon: Any, calls_table: str = "[calls]\n") -> Daemon:
    return await make_daemon(twilio_table() + calls_table, environ=QUIET)


def voice(status: str, call_sid: str = "CA0001", caller: str = CUSTOMER, **extra: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "From": caller, "To": OUR_NUMBER,
            "CallStatus": status, "Direction": "inbound", "ApiVersion": "2010-04-01",
            "Timestamp": TWILIO_TIMESTAMP, "CallbackSource": "call-progress-events", **extra}


def pbx_record(call_id: str = "1715672712.42", disposition: str = "ANSWERED", **extra: Any) -> dict[str, Any]:
    return {"call_id": call_id, "caller": "09121234567", "callee": "02191001234",
            "start": "2024-05-14T14:05:12+03:30", "answer": "2024-05-14T14:05:20+03:30",
            "end": "2024-05-14T14:08:32+03:30", "disposition": disposition,
            "recording_url": f"https://pbx.example.ir/monitor/{call_id}.wav", "agent_extension": "104", **extra}


async def post_pbx(daemon: Daemon, record: Any, *, secret: str = SECRET, body: bytes | None = None,
                   signature: str | None = None) -> tuple[int, dict[str, Any]]:
    raw = body if body is not None else json.dumps(record).encode()
    sig = hmac_sha256_hex(secret, raw) if signature is None else signature
    headers = {"Content-Type": "application/json", **({"X-Parvandeh-Signature": sig} if sig else {})}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{daemon.http_port}/webhooks/calls", data=raw,
                                headers=headers) as response:
            return response.status, await response.json(content_type=None)


async def post_voice(daemon: Daemon, params: dict[str, str], **kwargs: Any) -> int:
    return (await post(daemon, params, path="/webhooks/twilio/calls", **kwargs))[0]


async def tickets(daemon: Daemon) -> list[dict[str, Any]]:
    await daemon.ingest.drained()
    found = []
    for ticket in await queries.list_tickets(daemon.store):
        found.append(await queries.ticket_detail(daemon.store, ticket["reference"]))
    return found


class TestPbxCallsContract(ConnectorContract):
    channel = "call"

    async def start(self, make_daemon: Any) -> Daemon:
        return await start(make_daemon)

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        status, _ = await post_pbx(daemon, pbx_record(call_id=key, disposition="NO ANSWER"))
        return status == 200


async def test_twilio_missed_call_opens_a_ticket_and_a_later_sms_joins_it(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    assert await post_voice(daemon, voice("ringing")) == 204
    assert await inbox_count(daemon) == 0, "intermediate statuses are not stored"
    assert await post_voice(daemon, voice("no-answer", CallDuration="0")) == 204
    assert await post_voice(daemon, voice("no-answer", CallDuration="0")) == 204  # Twilio retried
    (ticket,) = await tickets(daemon)
    assert ticket["subject"] == f"Missed call from {CUSTOMER} at 14:05 (Tehran time)"
    (call,) = ticket["messages"]
    assert (call["kind"], call["channel"], call["sender"], call["channel_message_id"]) == (
        "call", "call", CUSTOMER, "CA0001")

    assert (await post(daemon, sms("SM1", body="سلام، با من تماس بگیرید")))[0] == 200
    (ticket,) = await tickets(daemon)
    assert [(m["kind"], m["channel"]) for m in ticket["messages"]] == [("call", "call"), ("message", "sms")]


async def test_a_missed_call_is_answered_by_sms(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    assert await post_voice(daemon, voice("no-answer", CallDuration="0")) == 204
    (ticket,) = await tickets(daemon)
    # No connector sends on "call": the console does not offer it, and a reply asked on it is
    # refused with the channels that are offered; by default it goes to the caller's phone by SMS.
    with pytest.raises(ReplyError, match="cannot be answered on call, only on sms"):
        await daemon.store.write(agent_reply(ticket["reference"], "با شما تماس می‌گیریم", "agent1",
                                             daemon.ingest.context, channel="call"))
    await daemon.store.write(agent_reply(ticket["reference"], "با شما تماس می‌گیریم", "agent1", daemon.ingest.context))
    (row,) = await daemon.store.fetchall("SELECT channel, recipient FROM outbox WHERE automatic = 0")
    assert (row["channel"], row["recipient"]) == ("sms", CUSTOMER)


async def test_busy_call_says_why(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    assert await post_voice(daemon, voice("busy")) == 204
    (ticket,) = await tickets(daemon)
    assert ticket["messages"][0]["text"] == f"Missed call from {CUSTOMER} at 14:05 (Tehran time) (busy)"


async def test_signed_pbx_answered_call_joins_the_callers_thread(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    assert (await post(daemon, sms("SM2")))[0] == 200
    status, body = await post_pbx(daemon, pbx_record())
    assert (status, body) == (200, {"stored": True, "duplicate": False})
    (ticket,) = await tickets(daemon)
    call = ticket["messages"][1]
    assert call["kind"] == "call" and call["sender"] == CUSTOMER  # 0912… normalised to E.164
    assert call["text"] == f"Answered call from {CUSTOMER} at 14:05 (Tehran time), 3 min 12 s, agent ext 104"
    (recording,) = call["attachments"]
    assert recording["remote_ref"] == "https://pbx.example.ir/monitor/1715672712.42.wav"
    assert recording["content_type"] in ("audio/wav", "audio/x-wav")


async def test_answered_call_from_a_new_number_opens_no_ticket_by_default(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    record = pbx_record(start="2024-05-14 14:05:12", answer="2024-05-14 14:05:20", end="2024-05-14 14:05:50")
    assert (await post_pbx(daemon, record))[0] == 200
    assert await tickets(daemon) == []
    assert [row["channel"] for row in await queries.list_unthreaded(daemon.store)] == ["call"]


async def test_opening_tickets_is_configurable_per_outcome(make_daemon: Any) -> None:
    daemon = await start(make_daemon, "[calls]\nmissed_calls_open_ticket = false\nanswered_calls_open_ticket = true\n")
    assert (await post_pbx(daemon, pbx_record("c1", "NO ANSWER")))[0] == 200
    assert await tickets(daemon) == []
    assert (await post_pbx(daemon, pbx_record("c2", "ANSWERED")))[0] == 200
    (ticket,) = await tickets(daemon)
    assert ticket["subject"].startswith("Answered call from")


async def test_bad_hmac_is_refused_and_nothing_stored(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    record = pbx_record()
    signed = json.dumps(record).encode()
    for kwargs in ({"secret": "guessed"}, {"signature": ""}, {"signature": "00" * 32},
                   {"body": signed.replace(b"104", b"105"), "signature": hmac_sha256_hex(SECRET, signed)}):
        status, body = await post_pbx(daemon, record, **kwargs)
        assert (status, body["error"]) == (403, "invalid_signature"), kwargs
    assert await post_voice(daemon, voice("completed"), signature="forged") == 403
    assert await inbox_count(daemon) == 0


async def test_malformed_call_records_are_400_naming_the_fault(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    cases = {
        b"{not json": "Expecting",
        json.dumps({"call_id": "x", "disposition": "ANSWERED"}).encode(): "caller",
        json.dumps(pbx_record(disposition="RINGING")).encode(): "disposition",
        json.dumps(pbx_record(start="yesterday")).encode(): "start",
        json.dumps(pbx_record(direction="sideways")).encode(): "direction",
        b"[1, 2]": "JSON object",
    }
    for raw, named in cases.items():
        status, body = await post_pbx(daemon, None, body=raw)
        assert status == 400 and named in body["detail"], (raw, body)
    assert await post_voice(daemon, voice("exploded")) == 400
    assert await inbox_count(daemon) == 0


async def test_deeply_nested_json_is_a_400_not_a_500(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    status, body = await post_pbx(daemon, None, body=b"[" * 100_000)  # deeper than json.loads recurses
    assert (status, body["error"]) == (400, "malformed_call_record"), body
    assert "nested" in body["detail"]


async def phone_identities(daemon: Daemon) -> list[str]:
    return [row["value"] for row in
            await daemon.store.fetchall("SELECT value FROM identities WHERE kind = 'phone' ORDER BY id")]


async def test_outgoing_pbx_calls_join_the_customers_thread_as_outgoing(make_daemon: Any) -> None:
    daemon = await start(make_daemon, f'[calls]\nown_numbers = ["{OUR_TRUNK}"]\n')
    assert (await post(daemon, sms("SM3")))[0] == 200
    # An agent's call-back through the trunk, one dialled from an extension, one the PBX says is outgoing.
    calls = [pbx_record("out1", "NO ANSWER", caller=OUR_TRUNK, callee="09121234567", answer=None),
             pbx_record("out2", caller="104", callee="09121234567"),
             pbx_record("out3", "BUSY", caller="02191001234", callee="09121234567", direction="outbound")]
    for record in calls:
        assert await post_pbx(daemon, record) == (200, {"stored": True, "duplicate": False}), record
    (ticket,) = await tickets(daemon)
    got = {(m["sender"], m["text"]) for m in ticket["messages"] if m["kind"] == "call"}
    assert got == {(CUSTOMER, f"Unanswered outgoing call to {CUSTOMER} at 14:05 (Tehran time)"),
                   (CUSTOMER, f"Outgoing call to {CUSTOMER} at 14:05 (Tehran time), 3 min 12 s, agent ext 104"),
                   (CUSTOMER, f"Unanswered outgoing call to {CUSTOMER} at 14:05 (Tehran time) (busy)")}
    assert await phone_identities(daemon) == [CUSTOMER]


async def test_call_back_to_a_new_number_opens_no_ticket_for_our_own_number(make_daemon: Any) -> None:
    daemon = await start(make_daemon, '[calls]\nown_numbers = ["+98 21 0000 0000"]\n')
    record = pbx_record(disposition="NO ANSWER", caller=OUR_TRUNK, callee="09121234567", answer=None)
    assert await post_pbx(daemon, record) == (200, {"stored": True, "duplicate": False})
    assert await tickets(daemon) == [], "an outgoing call opens no ticket, for us or the customer"
    assert await phone_identities(daemon) == [CUSTOMER]


async def test_internal_calls_between_extensions_are_not_stored(make_daemon: Any) -> None:
    daemon = await start(make_daemon, f'[calls]\nown_numbers = ["{OUR_TRUNK}"]\n')
    for caller, callee in (("1040", "1050"), (OUR_TRUNK, "104")):
        status, body = await post_pbx(daemon, pbx_record(f"{caller}-{callee}", "NO ANSWER", caller=caller,
                                                         callee=callee, answer=None))
        assert (status, body["stored"]) == (200, False), (caller, callee, body)
    assert await inbox_count(daemon) == 0


def test_own_numbers_are_e164_and_a_non_number_names_the_key(tmp_path: Any) -> None:
    settings = settings_from(write_config(tmp_path, '[calls]\nown_numbers = ["021 0000 0000", "+982191001234"]\n'))
    (_, _, conf), = [i for i in settings.connector_instances() if i[0] == "calls"]
    assert conf.own_numbers == ("+982100000000", "+982191001234")
    with pytest.raises(ConfigError, match=r"calls\.own_numbers"):
        settings_from(write_config(tmp_path, '[calls]\nown_numbers = ["trunk-1"]\n'))


async def test_withheld_number_is_acknowledged_but_not_stored(make_daemon: Any) -> None:
    daemon = await start(make_daemon)
    assert await post_voice(daemon, voice("no-answer", caller="anonymous")) == 204
    assert await inbox_count(daemon) == 0


async def test_missing_pbx_secret_is_a_clear_error_at_start(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARVANDEH_CALLS_SECRET")
    settings = settings_from(write_config(tmp_path, "[calls]\ntwilio_voice = false\n"))
    (_, name, conf), = [i for i in settings.connector_instances() if i[0] == "calls"]
    connector = CallsConnector(name, conf, ConnectorContext(http_app=web.Application(), settings=settings))
    with pytest.raises(ConfigError, match="PARVANDEH_CALLS_SECRET"):
        await connector.start(None)  # type: ignore[arg-type]


def test_unknown_timezone_names_the_key(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match=r"calls\.timezone = 'Tehran'"):
        settings_from(write_config(tmp_path, '[calls]\ntimezone = "Tehran"\n'))


# -- the call message, pure ----------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (45, "45 s"), (192, "3 min 12 s"), (180, "3 min"),
                                               (3723, "1 h 2 min 3 s")])
def test_durations_read_like_an_agent_would_say_them(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_naive_pbx_times_are_local_and_outgoing_twilio_calls_belong_to_the_callee() -> None:
    tehran = ZoneInfo("Asia/Tehran")
    record = pbx_call(pbx_record(start="2024-05-14 14:05:12", answer=None, end=None, disposition="BUSY",
                                 agent_extension=""), tehran)
    message = call_message(record, datetime(2024, 5, 14, tzinfo=UTC), tehran, missed_opens=True, answered_opens=False)
    assert message.text == f"Missed call from {CUSTOMER} at 14:05 (Tehran time) (busy)"
    assert message.opens_ticket and message.conversation_key == f"tel:{CUSTOMER}"

    outgoing = twilio_call(MultiDict(voice("completed", Direction="outbound-api", From=OUR_NUMBER, To="09121234567",
                                           CallDuration="75")))
    assert outgoing is not None and outgoing.customer == CUSTOMER
    message = call_message(outgoing, datetime.now(UTC), tehran, missed_opens=True, answered_opens=True)
    assert message.text == f"Outgoing call to {CUSTOMER} at 14:03 (Tehran time), 1 min 15 s"  # began 75 s before 14:05:12
    assert not message.opens_ticket, "our own outgoing calls never open tickets"
