"""Claim references are sequential and guessable: a stranger who names one threads onto the claim,
but the adjuster's replies must still go to the claim's own contact, never to the stranger."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.standins.bot_api import BotApiStandIn
from ingest import queries
from ingest.apply import ApplyContext, agent_reply
from ingest.daemon import Daemon
from ingest.migrations import MIGRATIONS
from ingest.store import Store
from tests.test_telegram import (
    BALE_ENV, BALE_TOKEN, TG_ENV, TG_TOKEN, bot_table, committed, open_claim, reply, text_update,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Deprecated since version v22.2:telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def api() -> BotApiStandIn:
    stand_in = await BotApiStandIn([TG_TOKEN]).start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def telegram_daemon(api: BotApiStandIn, monkeypatch: pytest.MonkeyPatch, make_daemon) -> Daemon:
    monkeypatch.setenv(TG_ENV, TG_TOKEN)
    return await make_daemon(bot_table(api))


async def test_start_deep_link_from_a_stranger_does_not_redirect_the_adjusters_reply(
        api: BotApiStandIn, telegram_daemon: Daemon) -> None:
    bot = api.bot(TG_TOKEN)
    ref = await open_claim(telegram_daemon, bot, user_id=601)  # the claimant; acknowledged: 1 sent
    guessed = bot.push(text_update(f"/start {ref}", user_id=602, message_id=5))
    await committed(telegram_daemon, bot, guessed)
    detail = await queries.ticket_detail(telegram_daemon.store, ref)
    assert [m["sender"] for m in detail["messages"] if m["direction"] == "in"] == ["601", "602"]  # still threads
    await reply(telegram_daemon, ref, "مبلغ خسارت تایید شد")
    sent = await bot.wait_sent(2)
    assert sent[-1]["chat_id"] == "601"
    assert all(s["chat_id"] != "602" for s in sent)


@pytest.fixture
async def bale_api() -> BotApiStandIn:
    stand_in = await BotApiStandIn([BALE_TOKEN]).start()
    yield stand_in
    await stand_in.stop()


async def test_a_telegram_user_with_the_bale_claimants_number_is_not_answered(
        api: BotApiStandIn, bale_api: BotApiStandIn, monkeypatch: pytest.MonkeyPatch, make_daemon) -> None:
    """Telegram and Bale number their users independently: the same number on the other
    messenger is someone else, and an identity is matched by its kind as well as its value."""
    monkeypatch.setenv(TG_ENV, TG_TOKEN)
    monkeypatch.setenv(BALE_ENV, BALE_TOKEN)
    daemon = await make_daemon(bot_table(api) + bot_table(bale_api, name="bale", channel="bale", token_env=BALE_ENV))
    tg, bale = api.bot(TG_TOKEN), bale_api.bot(BALE_TOKEN)
    ref = await open_claim(daemon, bale, user_id=22)  # the claimant, on Bale
    guessed = tg.push(text_update(f"/start {ref}", user_id=22))  # a stranger, Telegram user 22
    await committed(daemon, tg, guessed)
    detail = await queries.ticket_detail(daemon.store, ref)
    assert [(m["channel"], m["sender"]) for m in detail["messages"] if m["direction"] == "in"] == [
        ("bale", "22"), ("telegram", "22")]
    await reply(daemon, ref, "مبلغ خسارت تایید شد")
    assert (await bale.wait_sent(2))[-1] == {"chat_id": "22", "text": "مبلغ خسارت تایید شد", "message_id": 2}
    assert tg.sent == []


async def test_a_store_from_before_sender_kinds_answers_by_kind_after_the_upgrade(tmp_path: Path) -> None:
    """Schema 6 records each sender's kind; the messages already stored get theirs from their channel."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:5], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.execute("INSERT INTO contacts (id, created_at) VALUES (1, '')")
    conn.execute("INSERT INTO identities (contact_id, kind, value, created_at) VALUES (1, 'bale', '22', '')")
    conn.execute("INSERT INTO tickets (id, ref, contact_id, queue, channel, created_at, updated_at)"
                 " VALUES (1, 'PV-1405-000001', 1, 'intake', 'bale', '', '')")
    conn.executemany(
        "INSERT INTO messages (ticket_id, direction, channel, connector, sender, created_at)"
        " VALUES (1, 'in', ?, ?, '22', '')", [("bale", "bale"), ("telegram", "telegram")])
    conn.close()
    store = Store(path, synchronous="OFF")
    await store.open()
    try:
        kinds = await store.fetchall("SELECT channel, sender_kind FROM messages ORDER BY id")
        assert [tuple(r) for r in kinds] == [("bale", "bale"), ("telegram", "telegram")]
        ctx = ApplyContext(reference_prefix="PV", continuity_window=timedelta(0), default_queue="intake",
                           acknowledge=False, ack_hourly_limit=3, own_addresses=frozenset(),
                           mail_domain="parvandeh.test", from_address="claims@parvandeh.test",
                           reply_connectors={"bale": "bale", "telegram": "telegram"})
        await store.write(agent_reply("PV-1405-000001", "پاسخ", "maryam", ctx))
        (queued,) = await store.fetchall("SELECT channel, recipient FROM outbox")
        assert tuple(queued) == ("bale", "22")
    finally:
        await store.close()
