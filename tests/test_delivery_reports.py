"""Delivery reports on what we sent, through the gateways' local stand-ins over real HTTP: a report
that comes before the id it names is recorded, polling outlives a restart, and a reply sent in
parts is followed on every part."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.standins.kavenegar_api import KavenegarApiStandIn
from connectors.standins.twilio_api import TwilioApiStandIn
from ingest import apply
from ingest.apply import delivery_status, message_delivery
from ingest.daemon import Daemon
from ingest.migrations import MIGRATIONS
from ingest.outbox import awaiting_final_status
from ingest.store import Store
from tests.test_kavenegar import (
    SECRET,
    SECRETS,
    deliver,
    kavenegar_table,
    received,
    report_delivery,
)
from tests.test_twilio import (
    ACCOUNT_SID,
    CUSTOMER,
    OUR_NUMBER,
    PUBLIC,
    QUIET,
    TOKEN,
    events,
    only_ticket,
    post,
    reply,
    sms,
    timeline,
    twilio_table,
)

LONG = " ".join(["خسارت"] * 200)  # 18 segments: over ten, so it leaves as two messages
POLLING = "status_poll_seconds = 0.1\n"


@pytest.fixture(autouse=True)
def gateway_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SECRETS, "PARVANDEH_TWILIO_AUTH_TOKEN": TOKEN}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def kavenegar() -> AsyncIterator[KavenegarApiStandIn]:
    stand_in = await KavenegarApiStandIn(SECRETS["PARVANDEH_KAVENEGAR_API_KEY"]).start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioApiStandIn]:
    stand_in = await TwilioApiStandIn(ACCOUNT_SID, TOKEN).start()
    yield stand_in
    await stand_in.stop()


async def claim_by_sms(daemon: Daemon) -> str:
    await deliver(daemon, received("300101"))
    return (await only_ticket(daemon))["reference"]


async def pending_reports(daemon: Daemon) -> list[tuple[str, str]]:
    rows = await daemon.store.fetchall(
        "SELECT channel_message_id, status FROM pending_delivery_reports ORDER BY id")
    return [(row["channel_message_id"], row["status"]) for row in rows]


def statuses(recorded: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["status"], e["detail"]) for e in recorded]


# -- a report before the id ------------------------------------------------------------------------


async def test_a_report_committed_before_the_outbox_records_the_id_lands_on_the_timeline(
    make_daemon: Any, kavenegar: KavenegarApiStandIn,
) -> None:
    daemon = await make_daemon(kavenegar_table(kavenegar.base_url), environ=QUIET)
    ref = await claim_by_sms(daemon)
    kavenegar.report_before_answering(
        f"http://127.0.0.1:{daemon.http_port}/webhooks/kavenegar/{SECRET}/delivery", 10)
    await reply(daemon, ref, "کارشناس فردا تماس می‌گیرد.")
    (sent,) = await events(daemon, ref, "delivery_sent")
    # The report was answered (so committed) before the send was: the id was not known then.
    assert kavenegar.early_reports == [200]
    assert sent["channel_message_id"] == "kavenegar:8792343"
    (status,) = await timeline(daemon, ref, "delivery_status")
    assert (status["status"], status["channel_message_id"]) == ("delivered", "kavenegar:8792343")
    detail = await only_ticket(daemon)
    kinds = [e["kind"] for e in detail["timeline"] if e["kind"].startswith("delivery_")]
    assert kinds == ["delivery_sent", "delivery_status"], "the early report shows after the send"
    assert await pending_reports(daemon) == [], "claimed by the write that recorded the id"

    # Kavenegar's retry of the same report is a repeat: nothing new, and nothing kept.
    assert await report_delivery(daemon, "8792343", 10) == (200, "OK")
    assert len(await timeline(daemon, ref, "delivery_status")) == 1
    assert await pending_reports(daemon) == []


async def test_twilio_callbacks_before_the_answer_on_each_part_of_a_long_reply_all_count(
    make_daemon: Any, twilio: TwilioApiStandIn,
) -> None:
    daemon = await make_daemon(twilio_table(twilio.base_url), environ={**QUIET, "PARVANDEH__HTTP__PUBLIC_BASE_URL": PUBLIC})
    await post(daemon, sms("SM700"), signed_url=f"{PUBLIC}/webhooks/twilio/messages")
    ref = (await only_ticket(daemon))["reference"]
    twilio.report_before_answering("sent", f"http://127.0.0.1:{daemon.http_port}")
    await reply(daemon, ref, LONG)
    (sent,) = await events(daemon, ref, "delivery_sent")
    assert twilio.early_reports == [204, 204]
    first, second = sent["part_ids"]
    assert sent["channel_message_id"] == first
    # Both early reports, applied in the order they came: part 1 sent while part 2 is only
    # queued, then both sent.
    assert statuses(await events(daemon, ref, "delivery_status", 2)) == [
        ("queued", "part 1 of 2"), ("sent", "part 2 of 2")]

    async def report(sid: str, status: str) -> None:
        answered, _ = await post(daemon, {"MessageSid": sid, "MessageStatus": status, "To": CUSTOMER,
                                          "From": OUR_NUMBER, "AccountSid": ACCOUNT_SID},
                                 path="/webhooks/twilio/status", signed_url=f"{PUBLIC}/webhooks/twilio/status")
        assert answered == 204

    await report(second, "delivered")  # the reply is not whole on the handset yet
    assert len(await timeline(daemon, ref, "delivery_status")) == 2
    await report(first, "delivered")
    recorded = await events(daemon, ref, "delivery_status", 3)
    assert statuses(recorded)[2] == ("delivered", "part 1 of 2")
    assert {e["channel_message_id"] for e in recorded} == {first}, "one message, shown by its first id"


async def test_an_unknown_report_is_answered_so_it_is_not_retried_and_kept_only_so_long(
    make_daemon: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [datetime(2026, 3, 1, 9, 0, tzinfo=UTC)]
    daemon = await make_daemon(kavenegar_table(), environ=QUIET, clock=lambda: now[0])
    assert await report_delivery(daemon, "111", 4) == (200, "OK")
    now[0] += timedelta(days=6)
    assert await report_delivery(daemon, "222", 10) == (200, "OK")
    assert await pending_reports(daemon) == [("kavenegar:111", "sending"), ("kavenegar:222", "delivered")]
    now[0] += timedelta(days=2)  # 111 is over a week old: nobody will claim it now
    assert await report_delivery(daemon, "333", 11) == (200, "OK")
    assert await pending_reports(daemon) == [("kavenegar:222", "delivered"), ("kavenegar:333", "undelivered")]

    # A gateway account shared with another system reports that system's messages to us too.
    monkeypatch.setattr(apply, "PENDING_REPORTS_AT_MOST", 3)
    for message_id in ("444", "555", "666"):
        assert (await report_delivery(daemon, message_id, 10))[0] == 200
    assert [mid for mid, _ in await pending_reports(daemon)] == ["kavenegar:444", "kavenegar:555", "kavenegar:666"]


# -- polling after a restart ---------------------------------------------------------------------


async def test_polling_takes_up_after_a_restart_what_was_not_final(
    make_daemon: Any, kavenegar: KavenegarApiStandIn,
) -> None:
    table = kavenegar_table(kavenegar.base_url, POLLING)
    first = await make_daemon(table, environ=QUIET)
    ref = await claim_by_sms(first)
    await reply(first, ref, "first reply")
    await reply(first, ref, "second reply")
    await events(first, ref, "delivery_sent", 2)
    await events(first, ref, "delivery_status", 2)  # both polled: queued
    kavenegar.set_status("8792343", 10)
    await events(first, ref, "delivery_status", 3)
    await first.stop()

    kavenegar.set_status("8792344", 11)  # while we are down
    asked_before = len(kavenegar.status_requests)
    second = await make_daemon(table, environ=QUIET)
    recorded = await events(second, ref, "delivery_status", 4)
    assert [(e["channel_message_id"], e["status"]) for e in recorded] == [
        ("kavenegar:8792343", "queued"), ("kavenegar:8792344", "queued"),
        ("kavenegar:8792343", "delivered"), ("kavenegar:8792344", "undelivered"),
    ]
    asked = await kavenegar.wait_for_status_requests(asked_before + 1)
    assert {i for ids in asked[asked_before:] for i in ids} == {"8792344"}, "a delivered reply is not asked about"
    assert await awaiting_final_status(second.store, "kavenegar", timedelta(days=1)) == {}


async def test_what_was_sent_over_the_bound_ago_is_not_asked_about_after_a_restart(
    make_daemon: Any, kavenegar: KavenegarApiStandIn,
) -> None:
    now = [datetime.now(UTC)]
    table = kavenegar_table(kavenegar.base_url, POLLING)
    first = await make_daemon(table, environ=QUIET, clock=lambda: now[0])
    ref = await claim_by_sms(first)
    await reply(first, ref, "hello")
    await events(first, ref, "delivery_status")  # queued
    await first.stop()

    now[0] += timedelta(hours=23)
    second = await make_daemon(table, environ=QUIET, clock=lambda: now[0])
    (age,) = (await awaiting_final_status(second.store, "kavenegar", timedelta(days=1))).values()
    assert timedelta(hours=23) <= timedelta(seconds=age) < timedelta(hours=23, minutes=1)
    await second.stop()

    now[0] += timedelta(hours=2)
    asked_before = len(kavenegar.status_requests)
    third = await make_daemon(table, environ=QUIET, clock=lambda: now[0])
    assert await awaiting_final_status(third.store, "kavenegar", timedelta(days=1)) == {}
    await asyncio.sleep(0.3)  # three polling rounds
    assert len(kavenegar.status_requests) == asked_before


# -- a reply in parts ----------------------------------------------------------------------------


async def test_a_long_kavenegar_reply_is_delivered_once_every_part_is_and_failed_if_one_is(
    make_daemon: Any, kavenegar: KavenegarApiStandIn,
) -> None:
    daemon = await make_daemon(kavenegar_table(kavenegar.base_url), environ=QUIET)
    ref = await claim_by_sms(daemon)
    await reply(daemon, ref, LONG)
    (sent,) = await events(daemon, ref, "delivery_sent")
    assert kavenegar.sent_ids == ["8792343", "8792344"]
    assert (sent["channel_message_id"], sent["part_ids"]) == ("kavenegar:8792343", ["kavenegar:8792343", "kavenegar:8792344"])

    assert (await report_delivery(daemon, "8792344", 10))[0] == 200  # the second part first
    assert (await report_delivery(daemon, "8792343", 10))[0] == 200
    assert statuses(await events(daemon, ref, "delivery_status", 2)) == [
        ("queued", "part 2 of 2: Kavenegar 10: delivered to the recipient"),
        ("delivered", "part 1 of 2: Kavenegar 10: delivered to the recipient"),
    ]

    await reply(daemon, ref, LONG)
    await events(daemon, ref, "delivery_sent", 2)
    assert (await report_delivery(daemon, "8792345", 10))[0] == 200
    assert (await report_delivery(daemon, "8792346", 6))[0] == 200
    recorded = await events(daemon, ref, "delivery_status", 4)
    assert [(e["channel_message_id"], e["status"]) for e in recorded[2:]] == [
        ("kavenegar:8792345", "queued"), ("kavenegar:8792345", "failed")]


async def test_a_long_reply_polled_is_asked_about_on_every_part(
    make_daemon: Any, kavenegar: KavenegarApiStandIn,
) -> None:
    daemon = await make_daemon(kavenegar_table(kavenegar.base_url, POLLING), environ=QUIET)
    ref = await claim_by_sms(daemon)
    await reply(daemon, ref, LONG)
    await events(daemon, ref, "delivery_status")  # queued
    kavenegar.set_status("8792343", 10)
    kavenegar.set_status("8792344", 10)
    recorded = await events(daemon, ref, "delivery_status", 2)
    assert [e["status"] for e in recorded] == ["queued", "delivered"]
    assert {"8792343", "8792344"} <= {i for ids in kavenegar.status_requests for i in ids}


@pytest.mark.parametrize(("parts", "shown"), [
    (["sent"], "sent"),
    (["delivered", ""], "queued"),
    (["delivered", "sent"], "sent"),
    (["delivered", "delivered"], "delivered"),
    (["read", "delivered"], "delivered"),
    (["sending", "undelivered", "failed"], "undelivered"),
    (["delivered", "canceled"], "canceled"),
])
def test_a_message_in_parts_is_as_far_as_its_least_advanced_part_and_failed_if_any_failed(
    parts: list[str], shown: str,
) -> None:
    assert message_delivery(parts) == shown


async def test_a_reply_sent_before_the_upgrade_is_found_by_its_reports_after_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:7], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.execute("INSERT INTO tickets (id, ref, queue, channel, created_at, updated_at)"
                 " VALUES (1, 'PV-1405-000001', 'intake', 'sms', '', '')")
    conn.execute("INSERT INTO messages (ticket_id, direction, channel, connector, channel_message_id, created_at)"
                 " VALUES (1, 'out', 'sms', 'twilio', 'SM-old', '')")
    conn.execute("INSERT INTO events (ticket_id, at, kind, data) VALUES (1, '', 'delivery_status', ?)",
                 (json.dumps({"channel": "sms", "channel_message_id": "SM-old", "status": "sent"}),))
    conn.close()
    store = Store(path, synchronous="OFF")
    await store.open()
    try:
        assert await store.write(delivery_status("sms", "SM-old", "sent", "")), "found by its id"
        assert await store.write(delivery_status("sms", "SM-old", "delivered", ""))
        rows = await store.fetchall("SELECT data FROM events WHERE kind = 'delivery_status' ORDER BY id")
        assert [json.loads(r["data"])["status"] for r in rows] == ["sent", "delivered"], \
            "a report on the timeline before the upgrade is not repeated"
    finally:
        await store.close()
