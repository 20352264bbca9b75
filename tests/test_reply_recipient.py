"""Claim references are sequential and guessable: a stranger who names one threads onto the claim,
but the adjuster's replies must still go to the claim's own contact, never to the stranger."""

from __future__ import annotations

import pytest

from connectors.standins.bot_api import BotApiStandIn
from ingest import queries
from ingest.daemon import Daemon
from tests.test_telegram import TG_TOKEN, committed, open_claim, reply, text_update

pytestmark = pytest.mark.filterwarnings(
    "ignore:Deprecated since version v22.2:telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def api() -> BotApiStandIn:
    stand_in = await BotApiStandIn([TG_TOKEN]).start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def telegram_daemon(api: BotApiStandIn, monkeypatch: pytest.MonkeyPatch, make_daemon) -> Daemon:
    from tests.test_telegram import TG_ENV, bot_table
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
