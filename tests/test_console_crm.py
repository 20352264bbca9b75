"""The console's CRM actions, through Textual's pilot against a real daemon: a stranger who names
a claim is marked on the thread, a supervisor links them to the claim's contact in a few keys (and
is then answered on their own channel), an agent is refused, and the contact screen merges a
duplicate, undoes a merge and splits an identity off. Customer text stays literal throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from connectors.standins.bot_api import BotApiStandIn
from console.app import ConsoleApp
from console.client import ApiRequestError
from console.composer import Composer
from console.contact_screen import ContactScreen
from console.crm import Confirm
from console.thread_view import ThreadView
from console.ticket_screen import TicketScreen
from ingest.apply import resolve_contact
from ingest.store import Tx
from router.identity import Identity
from tests.test_agent_api import Harness, running_harness
from tests.test_console import SIZE, console, open_only_ticket, screen_text, until
from tests.test_telegram import TG_ENV, TG_TOKEN, bot_table, committed, text_update

STRANGER_NAME = "[bold red]Reza[/] \x1b[31m"  # markup and an escape: both must show as written
NOT_THE_CONTACT = "not the claim's contact"


@pytest.fixture
async def harness(make_daemon: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with running_harness(make_daemon) as h:
        yield h


def notified(app: ConsoleApp, text: str) -> bool:
    return any(text in n.message for n in app._notifications)


async def contact_of(harness: Harness, kind: str, value: str) -> int:
    row = await harness.daemon.store.fetchone("SELECT contact_id FROM identities WHERE kind = ? AND value = ?",
                                              (kind, value))
    assert row is not None
    return row["contact_id"]


async def claim_contact(harness: Harness, ref: str) -> int:
    row = await harness.daemon.store.fetchone("SELECT contact_id FROM tickets WHERE ref = ?", (ref,))
    return row["contact_id"]


async def highlight_sender(pilot: Pilot[Any], app: ConsoleApp, sender: str) -> None:
    """Move the thread's cursor (k) up to the newest message from `sender`."""
    thread = app.screen.query_one(ThreadView)
    for _ in range(thread.option_count):
        message = thread.highlighted_message()
        if message is not None and message["sender"] == sender:
            return
        await pilot.press("k")
    raise AssertionError(f"no message from {sender} in the thread")


async def highlight_line(pilot: Pilot[Any], app: ConsoleApp, wanted: Callable[[str, Any], bool], key: str) -> None:
    """Move the contact screen's cursor with `key` to the first line `wanted(kind, what)`."""
    screen = app.screen
    assert isinstance(screen, ContactScreen)
    for _ in range(len(screen.lines) * 2 + 4):  # the section headings are passed over
        line = screen.highlighted_line()
        if line is not None and wanted(*line):
            return
        await pilot.press(key)
    raise AssertionError("no such line on the contact screen")


async def stranger_mails(harness: Harness) -> str:
    """Ali opens a claim by mail; Reza, whom nobody linked, writes about it quoting its reference."""
    ref = await harness.mail(subject="تصادف", sender="ali@example.com")
    assert await harness.mail(subject=f"[{ref}] my father's claim", sender="reza@example.com") == ref
    await harness.sink.wait_for(1)  # Ali's acknowledgement
    return ref


async def test_a_telegram_stranger_linked_by_a_supervisor_is_answered_on_telegram(
        make_daemon: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    api = await BotApiStandIn([TG_TOKEN]).start()
    monkeypatch.setenv(TG_ENV, TG_TOKEN)
    try:
        async with running_harness(make_daemon, bot_table(api)) as harness:
            bot = api.bot(TG_TOKEN)
            ref = await harness.mail(subject="تصادف", sender="ali@example.com")
            # A bare, unsigned reference: it threads, but vouches for no one.
            await committed(harness.daemon, bot, bot.push(
                text_update(f"/start {ref}", user_id=602, first_name=STRANGER_NAME)))
            chief = await harness.client(await harness.agent("chief", "supervisor"))
            with pytest.raises(ApiRequestError):  # not answered on Telegram before the link
                await chief.request("reply", ref=ref, text="x", channel="telegram")
            app = await console(harness, "boss", "supervisor")
            async with app.run_test(size=SIZE) as pilot:
                await open_only_ticket(pilot, app, ref)
                await highlight_sender(pilot, app, "602")
                await until(pilot, lambda: NOT_THE_CONTACT in screen_text(app))
                await pilot.press("l")
                await until(pilot, lambda: isinstance(app.screen, Confirm))
                shown = screen_text(app)
                # Both contacts, with their identities; the stranger's name as written.
                assert "telegram: 602" in shown and "email: ali@example.com" in shown
                assert "[bold red]Reza[/] ␛[31m" in shown
                await pilot.press("y")
                await until(pilot, lambda: isinstance(app.screen, TicketScreen) and notified(app, "linked"))
                await until(pilot, lambda: NOT_THE_CONTACT not in screen_text(app))
                assert await contact_of(harness, "telegram", "602") == await claim_contact(harness, ref)

                await highlight_sender(pilot, app, "602")
                sent = len(bot.sent)
                await pilot.press("r")
                await until(pilot, lambda: isinstance(app.screen, Composer))
                await pilot.press(*"on our way")
                await pilot.press("ctrl+s")
                *_, reply = await bot.wait_sent(sent + 1)
                assert reply["chat_id"] in (602, "602") and "on our way" in reply["text"]
    finally:
        await api.stop()


async def test_an_agent_without_the_role_is_refused_the_link(harness: Harness) -> None:
    ref = await stranger_mails(harness)
    app = await console(harness, "sara", "agent")
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await highlight_sender(pilot, app, "reza@example.com")
        await until(pilot, lambda: NOT_THE_CONTACT in screen_text(app))
        await pilot.press("م")  # the l key, with the Persian layout on
        await until(pilot, lambda: notified(app, "needs the supervisor or admin role"))
        assert isinstance(app.screen, TicketScreen)  # no confirmation to click through
    assert await contact_of(harness, "email", "reza@example.com") != await claim_contact(harness, ref)
    assert await harness.daemon.store.fetchall("SELECT id FROM contact_merges") == []


async def test_a_link_is_undone_from_the_contact_screen(harness: Harness) -> None:
    ref = await stranger_mails(harness)
    reza = await contact_of(harness, "email", "reza@example.com")
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await highlight_sender(pilot, app, "reza@example.com")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: NOT_THE_CONTACT not in screen_text(app))
        assert await contact_of(harness, "email", "reza@example.com") == await claim_contact(harness, ref)

        await pilot.press("ژ")  # shift+c, with the Persian layout on
        await until(pilot, lambda: isinstance(app.screen, ContactScreen) and "reza@example.com" in screen_text(app))
        await pilot.press("u")  # the newest merge into this contact: the link
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        assert f"Contact #{reza} is split off" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ContactScreen) and "undone" in screen_text(app)
                    and "reza@example.com" not in screen_text(app))
        await pilot.press("escape")  # the ticket view reloads: Reza is a stranger again
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and NOT_THE_CONTACT in screen_text(app))
    assert await contact_of(harness, "email", "reza@example.com") == reza
    (merge,) = await harness.daemon.store.fetchall("SELECT undone_at FROM contact_merges")
    assert merge["undone_at"]


async def test_the_contact_screen_merges_a_suggested_duplicate_and_splits_an_identity_off(harness: Harness) -> None:
    ref = await harness.mail(subject="تصادف", sender="ali@example.com")
    ali = await claim_contact(harness, ref)
    moved = "0912 123 4567"  # Ali's number as an old import wrote it

    def known_by_phone(tx: Tx) -> int:
        tx.execute("INSERT INTO identities (contact_id, kind, value, created_at) VALUES (?, 'phone', ?, ?)",
                   (ali, "+989121234567", tx.stamp))
        # The same number written another way, on a contact of its own (an old import).
        return resolve_contact(tx, [Identity("phone", moved, STRANGER_NAME)])

    duplicate = await harness.daemon.store.write(known_by_phone)
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ContactScreen) and "same phone" in screen_text(app))
        assert "[bold red]Reza[/] ␛[31m" in screen_text(app)  # literal, in the suggestion's card
        await highlight_line(pilot, app, lambda kind, what: kind == "duplicate", "j")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, Confirm) and moved in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ContactScreen) and ("identity", moved) in [
            (kind, what.get("value")) for kind, what in app.screen.lines.values() if isinstance(what, dict)])
        assert await contact_of(harness, "phone", moved) == ali

        await highlight_line(pilot, app, lambda kind, what: kind == "identity" and what["value"] == moved, "k")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: notified(app, "split off into contact"))
    split = await contact_of(harness, "phone", moved)
    assert split not in (ali, duplicate)
    assert await claim_contact(harness, ref) == ali  # Ali's claim stays: Ali wrote it
