"""The console driven through Textual's pilot against a real daemon and agent API: navigate,
open, reply (it reaches the SMTP relay), act, search in Persian, see mail arrive live, and
never let customer text act as markup or terminal escapes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Select, TextArea

from connectors.standins.bot_api import BotApiStandIn
from console.app import ApiEvent, ConsoleApp
from console.composer import Composer, counter
from console.main_screen import QUEUE_REFRESH, MainScreen, QueueTable
from console.render import Prefs, display_lines, neutralise, safe_text
from console.search_screen import SearchScreen
from console.thread_view import ThreadView
from console.ticket_list import TicketList
from console.ticket_screen import TicketScreen
from ingest import queries
from ingest.agent_api import BODY_CAP
from ingest.apply import add_note
from ingest.deep_links import read_deep_link_key
from router.deeplink import bot_scope, split_start_parameter, verify
from tests.test_agent_api import SLA_POLICY, Harness, running_harness
from tests.test_telegram import TG_ENV, TG_TOKEN, bot_table, bots_linked

SIZE = (160, 45)


@pytest.fixture
async def harness(make_daemon: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with running_harness(make_daemon) as h:
        yield h


async def until(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the console did not get there before the deadline")
        await pilot.pause(0.02)


def ticket_list(app: ConsoleApp) -> TicketList:
    return app.screen.query_one(TicketList)


def screen_text(app: ConsoleApp) -> str:
    """What the terminal shows, line by line, as plain text (Textual has no public API for it)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def open_only_ticket(pilot: Pilot[Any], app: ConsoleApp, ref: str) -> None:
    """From the list showing just `ref`, open it and wait for its thread."""
    await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)


async def console(harness: Harness, name: str = "sara", role: str = "agent", queues: str = "intake") -> ConsoleApp:
    """The console in English with Latin digits: the tests read its labels (Persian ones: test_console_i18n.py)."""
    return ConsoleApp(harness.url, await harness.agent(name, role, queues), Prefs(digits="latin", language="en"))


async def test_navigate_the_list_and_open_a_ticket_with_its_whole_thread(harness: Harness) -> None:
    first = await harness.mail(subject="first claim", sender="a@example.com")
    second = await harness.mail(subject="second claim", body="خودروی من آسیب دید", sender="b@example.com")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 2)
        assert ticket_list(app).order == [second, first]
        await pilot.press("j")
        assert ticket_list(app).selected_ref == first
        await pilot.press("k", "enter")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        thread = app.screen.query_one("#thread", OptionList)
        assert thread.option_count >= 2  # the customer's mail and our acknowledgement
        await until(pilot, lambda: "second claim" in screen_text(app) and "b@example.com" in screen_text(app))
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_reply_goes_out_on_the_channel_of_the_message_answered(harness: Harness) -> None:
    ref = await harness.mail(subject="need help", sender="ali@example.com")
    await harness.sink.wait_for(1)  # the acknowledgement
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await pilot.press("k")  # from our acknowledgement up to the customer's mail
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Composer))
        await pilot.press(*"on our way")
        await pilot.press("ctrl+s")
        *_, reply = await harness.sink.wait_for(2)
        assert reply["To"] == "ali@example.com" and "on our way" in reply.get_content()
        await until(pilot, lambda: "on our way" in screen_text(app))  # the reply joins the thread live


# Arrows, j/k, and j on the Persian layout: a picker is a modal screen, which hides the app's keys,
# so j did nothing there and enter then picked the first choice (a status "new", refused).
@pytest.mark.parametrize("down_twice", [("down", "down"), ("j", "j", "j", "k"), ("ت", "ت")])
async def test_take_and_status_keys_change_the_ticket(harness: Harness, down_twice: tuple[str, ...]) -> None:
    ref = await harness.mail()
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await pilot.press("t")
        await until(pilot, lambda: ticket_list(app).tickets[ref]["assignee"] == "sara")
        await pilot.press("s")
        await until(pilot, lambda: "Status of" in screen_text(app))
        await pilot.press(*down_twice, "enter")  # new, assigned, awaiting_documents
        await until(pilot, lambda: ticket_list(app).tickets[ref]["status"] == "awaiting_documents")
    detail = await queries.ticket_detail(harness.daemon.store, ref)
    assert detail is not None and (detail["assignee"], detail["status"]) == ("sara", "awaiting_documents")


async def test_move_key_transfers_the_ticket_to_another_queue(make_daemon: Callable[..., Any]) -> None:
    from tests.test_agent_api import TWO_QUEUES
    async with running_harness(make_daemon, TWO_QUEUES) as harness:
        ref = await harness.mail(subject="hospital bill")
        app = await console(harness)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
            await pilot.press("m")
            await until(pilot, lambda: "Move " in screen_text(app) and "health" in screen_text(app))
            await pilot.press("enter")  # health, intake: the first
            # sara's list shows where it went (the row leaves at the next reload, as a closed one does)
            await until(pilot, lambda: ticket_list(app).tickets[ref]["queue"] == "health")
        detail = await queries.ticket_detail(harness.daemon.store, ref)
        assert detail is not None and detail["queue"] == "health"


async def test_a_move_to_another_queue_is_a_line_in_the_thread(make_daemon: Callable[..., Any]) -> None:
    from tests.test_agent_api import TWO_QUEUES
    async with running_harness(make_daemon, TWO_QUEUES) as harness:
        ref = await harness.mail(subject="hospital bill")
        app = await console(harness, "boss", "supervisor")
        async with app.run_test(size=SIZE) as pilot:
            await open_only_ticket(pilot, app, ref)
            await pilot.press("m")
            await until(pilot, lambda: "Move " in screen_text(app) and "health" in screen_text(app))
            await pilot.press("enter")  # health, intake: the first
            await until(pilot, lambda: "queue changed from: intake, to: health" in screen_text(app))
            await pilot.press("escape", "enter")  # opened again: the line is in its timeline too
            await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
            await until(pilot, lambda: "queue changed from: intake, to: health" in screen_text(app))


async def test_a_ticket_moved_out_of_the_agents_queues_leaves_their_all_queues_list(
        make_daemon: Callable[..., Any]) -> None:
    from tests.test_agent_api import TWO_QUEUES
    async with running_harness(make_daemon, TWO_QUEUES) as harness:
        refs = [await harness.mail(subject=f"claim {i}", sender=f"a{i}@example.com") for i in range(3)]
        boss = await harness.client(await harness.agent("boss", "supervisor"))
        app = await console(harness)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 3)
            await boss.request("set_queue", ref=refs[0], queue="health")
            await until(pilot, lambda: ticket_list(app).tickets[refs[0]]["queue"] == "health")
            # It is no longer in sara's server list: shown, but not counted.
            assert ticket_list(app).left == {refs[0]} and ticket_list(app).loaded == 2
            await until(pilot, lambda: ticket_list(app).status_line() == "2 / 2")


async def test_mail_sent_over_smtp_shows_up_live_in_the_open_console(harness: Harness) -> None:
    ref = await harness.mail(subject="existing", sender="ali@example.com")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        fresh = await harness.mail(subject="brand new claim", sender="new@example.com")
        await until(pilot, lambda: ticket_list(app).order[:1] == [fresh])
        await until(pilot, lambda: "brand new claim" in screen_text(app))

        await pilot.press("j", "enter")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        assert app.screen.ref == ref
        await harness.mail(subject=f"Re: existing [{ref}]", body="my documents are attached", sender="ali@example.com")
        await until(pilot, lambda: "my documents are attached" in screen_text(app))


async def test_a_thread_merged_into_the_open_ticket_shows_up_live(harness: Harness) -> None:
    target = await harness.mail(subject="target claim", body="first text", sender="a@example.com")
    source = await harness.mail(subject="source claim", body="the merged-in message", sender="b@example.com")
    boss = await harness.client(await harness.agent("boss", "supervisor"))
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 2)
        app.open_ticket(target)
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        await boss.request("merge", source=source, target=target)
        await until(pilot, lambda: "the merged-in message" in screen_text(app))


async def test_keys_work_with_the_persian_keyboard_layout_on(harness: Harness) -> None:
    first = await harness.mail(subject="first claim", sender="a@example.com")
    second = await harness.mail(subject="second claim", sender="b@example.com")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [second, first])
        await pilot.press("ت")  # the j key
        assert ticket_list(app).selected_ref == first
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        await pilot.press("ق")  # the r key
        await until(pilot, lambda: isinstance(app.screen, Composer))
        await pilot.press("ت", "ن")  # typed in the composer, not taken as keys
        assert app.screen.query_one(TextArea).text == "تن"
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen))
        await pilot.press("arabic_question_mark")  # shift+/ on the Persian layout
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


async def test_the_shifted_keys_work_with_the_persian_keyboard_layout_on(harness: Harness) -> None:
    ref = await harness.mail(subject="first claim", sender="a@example.com")
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await pilot.press("ؤ")  # shift+a: availability
        await until(pilot, lambda: "available" in screen_text(app) and "offline" in screen_text(app))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("arabic_fathatan")  # shift+r (the mark ً): reports
        await until(pilot, lambda: type(app.screen).__name__ == "ReportsScreen")
        await pilot.press("escape")
        await open_only_ticket(pilot, app, ref)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Composer))
        await pilot.press("ؤ")  # typed in the composer, not taken as keys
        # What a terminal sends for ً (the pilot cannot name its character).
        app._driver.send_message(events.Key("arabic_fathatan", "\u064b"))
        await until(pilot, lambda: app.screen.query_one(TextArea).text == "ؤ\u064b")
        assert isinstance(app.screen, Composer)


async def test_a_revoked_console_says_so_and_does_not_crash_on_its_next_queue_refresh(harness: Harness) -> None:
    from ingest.agents import revoke_agent

    ref = await harness.mail(subject="x", sender="a@example.com")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await harness.daemon.store.write(revoke_agent("sara"))
        await until(pilot, lambda: app.connection == "refused", timeout=8)
        app.screen.refresh_queues()  # as the timer after any live event does
        app.screen.load()  # as choosing a queue does
        await pilot.pause(0.5)
        assert app.is_running and isinstance(app.screen, MainScreen)


async def test_a_disconnected_supervisor_refreshing_a_view_is_told_and_the_console_goes_on(harness: Harness) -> None:
    from ingest.agents import revoke_agent

    ref = await harness.mail(subject="x", sender="a@example.com")
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await pilot.press("v")
        await until(pilot, lambda: type(app.screen).__name__ == "SupervisorScreen")
        await harness.daemon.store.write(revoke_agent("boss"))
        await until(pilot, lambda: app.connection == "refused", timeout=8)
        await pilot.press("g")  # refresh the supervisor view
        await pilot.pause(0.3)
        await pilot.press("escape", "R")
        await until(pilot, lambda: type(app.screen).__name__ == "ReportsScreen")
        await pilot.press("g")
        await pilot.pause(0.3)
        assert app.is_running and type(app.screen).__name__ == "ReportsScreen"


async def test_a_message_taller_than_the_screen_can_be_read_to_its_end_by_keyboard(harness: Harness) -> None:
    body = "\n".join(f"بند {i}: شرح خسارت" for i in range(1, 121)) + "\nEND-OF-REPORT"
    ref = await harness.mail(subject="گزارش مفصل", body=body, sender="a@example.com")
    app = await console(harness)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_only_ticket(pilot, app, ref)
        thread = app.screen.query_one(ThreadView)
        while (thread.highlighted_message() or {}).get("direction") != "in":
            await pilot.press("k")
        seen = set()
        for _ in range(20):
            seen |= set(re.findall(r"\b(\d+) دنب", screen_text(app)))
            await pilot.press("space")
        assert {str(i) for i in range(1, 121)} <= seen
        assert "END-OF-REPORT" in screen_text(app)
        await pilot.press("ctrl+u")
        assert "END-OF-REPORT" not in screen_text(app)


async def test_customer_markup_and_terminal_escapes_render_literally(harness: Harness) -> None:
    body = "[bold red]loud[/] [@click=app.quit]quit[/] \x1b[31mred\x1b[0m \x1b]0;pwned\x07 \x1b]52;c;Zm9v\x07end"
    ref = await harness.mail(subject="[bold red]subject[/]", body=body)
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await until(pilot, lambda: "[bold red]subject[/]" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        await until(pilot, lambda: "[bold red]loud[/] [@click=app.quit]quit[/]" in screen_text(app))
        shown = screen_text(app)
        assert "␛[31mred␛[0m ␛]0;pwned␇" in shown
        assert "\x1b" not in shown and "\x07" not in shown
        await pilot.click("#thread")  # clicking the text must not run the embedded action
        assert app.is_running


def test_rendering_neutralises_controls_and_never_parses_markup() -> None:
    text = safe_text("[b]x[/b] \x1b[2J\x9b\x00", Prefs())
    assert text.plain == "[b]x[/b] ␛[2J<9B>␀" and text.spans == []
    assert neutralise("a\tb\nc") == "a    b\nc"
    assert safe_text("سلام PV-1", Prefs(bidi=True)).plain != safe_text("سلام PV-1", Prefs(bidi=False)).plain


def test_a_wrapped_persian_line_keeps_right_to_left_on_a_row_starting_with_latin() -> None:
    line = "پیام شما دریافت شد و با شماره پرونده PV-1405-000191 ثبت شد."
    rows = display_lines(line, Prefs(), width=38)
    assert len(rows) == 2
    # The unwrapped line's visual order, row by row: the reference ends up on the row's right.
    assert rows[1] == ".دش تبث PV-1405-000191"
    assert display_lines(line, Prefs())[0].startswith(rows[1])


def test_sms_counter_counts_persian_segments() -> None:
    english = Prefs(digits="latin", language="en")
    assert counter("سلام", "sms", english).endswith("1 segment UCS-2")
    assert counter("س" * 71, "sms", english).endswith("2 segments UCS-2")
    assert "SMS" not in counter("hello", "email", english)


async def test_search_in_persian_typed_on_an_arabic_keyboard_with_persian_digits(harness: Harness) -> None:
    ref = await harness.mail(subject="خسارت کولر", body="پلاک ۲۲ی۴۵۶ ایران ۱۱", sender="a@example.com")
    await harness.mail(subject="other", sender="b@example.com")
    await harness.api.index_caught_up()
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 2)
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        app.screen.query_one("#query").value = "خسارت كولر ٤٥٦"  # Arabic kaf and Arabic-Indic digits
        await pilot.press("enter")
        await until(pilot, lambda: ticket_list(app).order == [ref])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.ref == ref)


async def test_slash_among_the_results_edits_the_query_and_views_are_not_stacked(harness: Harness) -> None:
    # Each `/` (or `v`, `R`) pushed another screen on the same one: esc had to be pressed once
    # for every search run to get back to the list.
    ref = await harness.mail(subject="water damage", sender="a@example.com")
    await harness.api.index_caught_up()
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press(*"water", "enter")
        await until(pilot, lambda: ticket_list(app).order == [ref] and isinstance(app.focused, TicketList))
        depth = len(app.screen_stack)
        await pilot.press("slash")
        await until(pilot, lambda: app.focused is app.screen.query_one("#query"))
        assert len(app.screen_stack) == depth and isinstance(app.screen, SearchScreen)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        for key, view in (("v", "SupervisorScreen"), ("R", "ReportsScreen")):
            await pilot.press(key)
            await until(pilot, lambda view=view: type(app.screen).__name__ == view)
            await pilot.press(key)
            await pilot.pause(0.2)
            assert len(app.screen_stack) == depth
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_sla_breach_pops_an_alert_naming_the_ticket_not_the_customer_text(harness: Harness) -> None:
    from ingest.apply import record_event

    ref = await harness.mail(subject="[bold]secret[/bold]", body="private words", sender="a@example.com")
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 1)
        (row,) = await harness.daemon.store.fetchall("SELECT id FROM tickets WHERE ref = ?", (ref,))
        await harness.daemon.store.write(
            lambda tx: record_event(tx, row["id"], ref, "sla_breached", clock="first_response"))
        await until(pilot, lambda: any(ref in n.message for n in app._notifications))
        (alert,) = [n for n in app._notifications if ref in n.message]
        assert alert.message == f"{ref} SLA breached first_response" and alert.severity == "error"


async def test_supervisor_view_lists_breached_tickets_and_opens_one(make_daemon: Callable[..., Any]) -> None:
    from textual.widgets import DataTable

    async with running_harness(make_daemon, SLA_POLICY) as harness:
        ref = await harness.mail(subject="late claim", sender="a@example.com")
        await harness.daemon.store.write(lambda tx: tx.execute(
            "UPDATE sla_clocks SET warn_at = '2020-01-01T00:00:00+00:00', due_at = '2020-01-01T01:00:00+00:00'"))
        app = await console(harness, "boss", "supervisor")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 1)
            await pilot.press("v")
            await until(pilot, lambda: type(app.screen).__name__ == "SupervisorScreen"
                        and app.screen.query_one("#at-risk", DataTable).row_count == 1)
            assert "late claim" in screen_text(app)
            app.screen.query_one("#at-risk", DataTable).focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.ref == ref)


TEMPLATES = """
[[agent_api.reply_templates]]
name = "documents"
text = "{customer} عزیز، لطفاً مدارک پرونده {ref} را بفرستید. {agent}"
"""


async def test_reply_template_is_filled_for_the_ticket_and_sent(make_daemon: Callable[..., Any]) -> None:
    async with running_harness(make_daemon, TEMPLATES) as harness:
        ref = await harness.mail(subject="need help", sender="Ali Rezaei <ali@example.com>")
        await harness.sink.wait_for(1)  # the acknowledgement
        app = await console(harness)
        async with app.run_test(size=SIZE) as pilot:
            await open_only_ticket(pilot, app, ref)
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, Composer))
            app.screen.query_one("#template", Select).value = "documents"
            await until(pilot, lambda: ref in app.screen.query_one(TextArea).text)
            assert app.screen.query_one(TextArea).text == f"Ali Rezaei عزیز، لطفاً مدارک پرونده {ref} را بفرستید. sara"
            await pilot.press("ctrl+s")
            *_, reply = await harness.sink.wait_for(2)
            assert f"مدارک پرونده {ref}" in reply.get_content()


async def test_command_palette_opens_a_claim_by_name(harness: Harness) -> None:
    ref = await harness.mail(subject="palette", sender="a@example.com")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await pilot.press("ctrl+p")
        await pilot.press(*f"open {ref}")
        await until(pilot, lambda: f"Open {ref}" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        assert app.screen.ref == ref


async def test_the_claims_signed_bot_link_is_copied_from_the_ticket_view(
        make_daemon: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    api = await BotApiStandIn([TG_TOKEN]).start()
    monkeypatch.setenv(TG_ENV, TG_TOKEN)
    try:
        async with running_harness(make_daemon, bot_table(api)) as harness:
            await bots_linked(harness.daemon, 1)
            ref = await harness.mail(subject="link please", sender="a@example.com")
            app = await console(harness)
            async with app.run_test(size=SIZE) as pilot:
                await open_only_ticket(pilot, app, ref)
                await pilot.press("ctrl+p")
                await pilot.press(*"copy the bot link")
                await until(pilot, lambda: "Copy the bot link" in screen_text(app))
                await pilot.press("enter")
                await until(pilot, lambda: app.clipboard != "")
            parameter = app.clipboard.removeprefix("https://t.me/parvandeh_test_bot?start=")
            reference, signed = split_start_parameter(parameter)
            key = await read_deep_link_key(harness.daemon.store)
            assert reference == ref and verify(key, bot_scope("telegram", TG_TOKEN.partition(":")[0]), ref, signed)
    finally:
        await api.stop()


async def test_reports_screen_shows_the_periods_figures_for_supervisors_only(harness: Harness) -> None:
    await harness.mail(subject="one", sender="a@example.com")
    await harness.mail(subject="two", sender="b@example.com")
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 2)
        await pilot.press("R")
        await until(pilot, lambda: "Tickets opened per day" in screen_text(app) and "email" in screen_text(app))
        figures = app.screen.query_one("#figures", DataTable)
        assert figures.row_count == 1 and str(figures.get_row_at(0)[1]) == "2"  # opened, in the total row
        await pilot.press("b")  # by insurer
        await until(pilot, lambda: "by insurer" in screen_text(app))
    agent_app = await console(harness, "sara")
    async with agent_app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(agent_app.screen, MainScreen))
        await pilot.press("R")
        await pilot.pause(0.1)
        assert isinstance(agent_app.screen, MainScreen)


async def test_the_sla_countdown_in_an_open_tickets_header_keeps_counting(
        make_daemon: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TicketScreen, "COUNTDOWN_SECONDS", 0.05)
    async with running_harness(make_daemon, SLA_POLICY) as harness:
        ref = await harness.mail(subject="تصادف", sender="reza@example.com")
        (clock,) = await harness.daemon.store.fetchall(
            "SELECT c.due_at FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id"
            " WHERE t.ref = ? AND c.met_at IS NULL ORDER BY c.due_at LIMIT 1", (ref,))
        due = datetime.fromisoformat(clock["due_at"])
        now = [due - timedelta(hours=2, minutes=30)]
        app = ConsoleApp(harness.url, await harness.agent("sara"), Prefs(digits="latin", language="en"), clock=lambda: now[0])
        async with app.run_test(size=SIZE) as pilot:
            await open_only_ticket(pilot, app, ref)
            await until(pilot, lambda: "SLA 2:30" in screen_text(app))
            now[0] = due + timedelta(minutes=5)  # the agent kept it open; the target passed
            await until(pilot, lambda: "SLA -0:05" in screen_text(app))


async def test_reports_period_ends_on_the_firms_day_not_utcs(harness: Harness) -> None:
    # 21:00 UTC on 28 November is 00:30 on 29 November (1405/09/08) in Tehran: the report asked
    # for must end on that day, or the tickets opened since Tehran's midnight drop out of it.
    after_tehran_midnight = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    app = ConsoleApp(harness.url, await harness.agent("boss", "supervisor", "intake"), Prefs(digits="latin", language="en"),
                     clock=lambda: after_tehran_midnight)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("R")
        await until(pilot, lambda: "Tickets opened per day" in screen_text(app))
        assert "– 1405/09/08 ·" in screen_text(app)


async def test_reports_screen_shows_every_figure_and_day_in_the_preferred_digits(
        make_daemon: Callable[..., Any]) -> None:
    # Hours, percentages, the daily chart's days and its bar values came out in Latin digits.
    async with running_harness(make_daemon, SLA_POLICY) as harness:
        answered = await harness.mail(subject="one", sender="a@example.com")
        await harness.mail(subject="two", sender="b@example.com")
        boss = await harness.client(await harness.agent("boss", "supervisor"))
        await boss.request("reply", ref=answered, text="on our way")
        await boss.request("set_status", ref=answered, status="closed")
        app = ConsoleApp(harness.url, await harness.agent("reza", "supervisor"), Prefs(language="en"))  # Persian digits
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 1)
            await pilot.press("R")
            await until(pilot, lambda: "Channel mix" in screen_text(app) and "email" in screen_text(app))
            shown = screen_text(app)
            assert re.findall(r"[0-9]", shown) == []
            assert "۰.۰ h" in shown and " ۱۰۰ " in shown and "۱۴۰۵/۰۹/۰۸ █" in shown


async def test_reports_screen_shows_business_hours_beside_clock_hours_in_persian_digits(harness: Harness) -> None:
    answered = await harness.mail(subject="one", sender="a@example.com")
    boss = await harness.client(await harness.agent("boss", "supervisor"))
    await boss.request("reply", ref=answered, text="on our way")
    app = ConsoleApp(harness.url, await harness.agent("reza", "supervisor"), Prefs(language="en"))  # Persian digits
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("R")
        await until(pilot, lambda: "Channel mix" in screen_text(app) and "email" in screen_text(app))
        figures = app.screen.query_one("#figures", DataTable)
        labels = [str(c.label) for c in figures.columns.values()]
        assert labels[4:8] == ["First resp. clock h", "First resp. business h", "Resol. clock h", "Resol. business h"]
        business = str(figures.get_row_at(0)[5])  # answered within seconds, on whatever calendar
        assert re.fullmatch(r"[۰-۹]+\.[۰-۹] h", business), business
        assert "business h = working hours on the claim's SLA calendar" in screen_text(app)


async def test_at_80x24_the_reports_screen_explains_business_hours_in_full(harness: Harness) -> None:
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("R")
        await until(pilot, lambda: "Tickets opened per day" in screen_text(app))
        text = " ".join(line.strip() for line in screen_text(app).splitlines())
        assert "working hours on the claim's SLA calendar" in text


async def test_reports_screen_dates_follow_the_gregorian_preference(harness: Harness) -> None:
    after_tehran_midnight = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    app = ConsoleApp(harness.url, await harness.agent("boss", "supervisor", "intake"),
                     Prefs(calendar="gregorian", digits="latin", language="en"), clock=lambda: after_tehran_midnight)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("R")
        await until(pilot, lambda: "Tickets opened per day" in screen_text(app))
        shown = screen_text(app)
        assert "Reports 2026/10/31 – 2026/11/29 · by total" in shown and "2026/11/29 " in shown
        assert "1405/" not in shown


async def test_help_lists_the_reports_key(harness: Harness) -> None:
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: "command palette" in screen_text(app))
        assert "R  reports" in screen_text(app)


async def test_availability_key_sets_the_agents_shift_status(harness: Harness) -> None:
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("A")
        await pilot.press("down", "enter")  # available, away
        await until(pilot, lambda: isinstance(app.screen, MainScreen))

        async def status() -> str:
            row = await harness.daemon.store.fetchone("SELECT status FROM agents WHERE name = 'sara'")
            return row["status"] if row else ""

        for _ in range(100):
            if await status() == "away":
                break
            await pilot.pause(0.05)
        assert await status() == "away"


async def test_queue_panel_stops_counting_a_customer_once_answered(harness: Harness) -> None:
    # The panel refreshed on a fixed list of event kinds, none of them an answer going out.
    ref = await harness.mail(subject="need help", sender="ali@example.com")
    await harness.sink.wait_for(1)  # the acknowledgement
    await harness.mail(subject=f"Re: [{ref}] need help", body="any news?", sender="ali@example.com")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and waiting(app) == "1")
        await open_only_ticket(pilot, app, ref)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Composer))
        await pilot.press(*"on our way", "ctrl+s")
        await harness.sink.wait_for(2)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await until(pilot, lambda: waiting(app) == "0", timeout=QUEUE_REFRESH + 3)


def waiting(app: ConsoleApp) -> str | None:
    table = app.screen.query_one(QueueTable)
    return str(table.get_cell("intake", "waiting")) if table.row_count == 2 else None


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 5 tickets, the next one asked for 2 rows before the end."""
    monkeypatch.setattr("console.main_screen.PAGE", 5)
    monkeypatch.setattr("console.ticket_list.PREFETCH", 2)


async def test_closing_a_listed_ticket_neither_hides_one_from_the_next_page_nor_leaves_the_count(
        harness: Harness, small_pages: None) -> None:
    # The next page started at the count of rows shown, closed ones included: each closed row
    # pushed it one ticket too far, and that ticket was never listed.
    refs = [await harness.mail(subject=f"claim {n}", sender=f"c{n}@example.com") for n in range(8)]
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 5)
        closed = ticket_list(app).selected_ref
        await pilot.press("s", *["down"] * 7, "enter")  # the 8th status: closed
        await until(pilot, lambda: ticket_list(app).tickets[closed]["status"] == "closed")
        assert ticket_list(app).status_line() == "4 / 7"
        await pilot.press(*["j"] * 4)  # near the end: the next page is asked for
        await until(pilot, lambda: len(ticket_list(app).order) == 8)
        assert set(ticket_list(app).order) == set(refs) and ticket_list(app).status_line() == "7 / 7"


async def test_paging_on_after_colleagues_closed_listed_tickets_skips_none(harness: Harness, small_pages: None) -> None:
    # The next page started at the count of rows still listed: tickets a colleague closed
    # before the console heard of it moved the server's rows up under that count, and as many
    # tickets past it were never listed.
    refs = [await harness.mail(subject=f"claim {n}", sender=f"c{n}@example.com") for n in range(12)]
    boss = await harness.client(await harness.agent("boss", "supervisor"))
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 5)
        held: list[dict[str, Any]] = []
        app.client.on_event = held.append  # a slow feed: the console hears of the closings later
        for ref in refs[-3:-1]:
            await boss.request("set_status", ref=ref, status="closed")
        await pilot.press(*["j"] * 3)  # near the end: the next page
        await until(pilot, lambda: len(ticket_list(app).order) == 10)
        app.client.on_event = lambda e: app.post_message(ApiEvent(e))
        for event in held:
            app.post_message(ApiEvent(event))
        for _ in range(3):
            await pilot.press("ctrl+end")
            await pilot.pause(0.2)
        await until(pilot, lambda: set(ticket_list(app).order) == set(refs))
        assert len(ticket_list(app).order) == 12 and ticket_list(app).status_line() == "10 / 10"


async def test_scrolling_the_list_with_the_mouse_wheel_brings_the_next_page(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the cursor nearing the end asked for more: the wheel scrolled to the last loaded row
    # and stopped there, as if the queue ended.
    monkeypatch.setattr("console.main_screen.PAGE", 10)
    monkeypatch.setattr("console.ticket_list.PREFETCH", 2)
    refs = [await harness.mail(subject=f"claim {n}", sender=f"c{n}@example.com") for n in range(13)]
    app = await console(harness)
    async with app.run_test(size=(100, 12)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 10)
        table = ticket_list(app)
        for _ in range(50):  # wheel turns until the list is whole (or clearly never will be)
            if set(table.order) == set(refs):
                break
            table.post_message(events.MouseScrollDown(table, 5, 3, 0, 1, 0, False, False, False))
            await pilot.pause(0.1)
        assert set(table.order) == set(refs)
        assert table.cursor_row == 0  # the wheel moved the view, not the cursor
        # a turn of the wheel asked for more as the last page came: nothing is read again
        await app.screen.on_ticket_list_need_more(TicketList.NeedMore())
        assert table.cursor is None and len(table.order) == 13


async def test_a_countdown_tick_redraws_the_rows_in_view_and_the_rest_as_they_scroll_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Every tick redrew the SLA cell of every loaded row: with 3,000 loaded, a third of a second
    # of frozen list every 30 s.
    from textual.app import App

    now = datetime(2025, 3, 21, 8, 30, tzinfo=UTC)
    rows = [{"reference": f"PV-1404-{n:06d}", "subject": "تصادف", "status": "new", "queue": "intake",
             "priority": "normal", "assignee": None, "contact": {"name": "علی", "identity": "+98912"},
             "channels": ["sms"], "updated_at": (now - timedelta(minutes=n)).isoformat(),
             "sla_due_at": (now + timedelta(minutes=600 + n)).isoformat(), "sla_warn_at": None} for n in range(300)]

    class ListApp(App[None]):
        def compose(self) -> Any:
            yield TicketList(Prefs(digits="latin"))

    app = ListApp()
    async with app.run_test(size=(100, 20)) as pilot:
        table = app.query_one(TicketList)
        table.show_page({"total": 300, "tickets": rows, "next_cursor": None}, now)
        await pilot.pause()
        redrawn: list[str] = []
        update_cell = table.update_cell
        monkeypatch.setattr(table, "update_cell", lambda row, *a, **k: (redrawn.append(row), update_cell(row, *a, **k)))
        table.refresh_countdowns(now + timedelta(minutes=5))
        assert 0 < len(redrawn) <= 20 and str(table.get_cell("PV-1404-000000", "sla")) == "9:55"
        table.scroll_end(animate=False)
        await pilot.pause()
        assert str(table.get_cell("PV-1404-000299", "sla")) == "14:54"  # 899 minutes from the tick
        # a ticket joining the top: the rows the view goes back to (with the cursor) count down from now
        table.refresh_countdowns(now + timedelta(minutes=10))
        table.upsert({**rows[0], "reference": "PV-1404-000300", "updated_at": now.isoformat()},
                     now + timedelta(minutes=10))
        await pilot.pause()
        assert table.order[0] == "PV-1404-000300" and str(table.get_cell("PV-1404-000000", "sla")) == "9:50"


async def test_a_page_asked_for_as_the_agent_picks_a_queue_does_not_join_that_queues_list(
        make_daemon: Callable[..., Any], small_pages: None) -> None:
    # The page asked for from the list on screen (the agent scrolled on right after choosing a
    # queue) arrived after the chosen queue's first page and was added to it, moving its cursor
    # past the rows between: they were never listed.
    from tests.test_agent_api import TWO_QUEUES
    async with running_harness(make_daemon, TWO_QUEUES) as harness:
        refs = [await harness.mail(subject=f"claim {n}", sender=f"c{n}@example.com") for n in range(12)]
        for ref in refs:
            await harness.move_to_queue(ref, "health")
        app = await console(harness, "boss", "supervisor")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 5)
            await pilot.press(*["j"] * 4)
            await until(pilot, lambda: len(ticket_list(app).order) == 10)
            screen = app.screen
            assert isinstance(screen, MainScreen)
            screen.queue = "health"  # as choosing it in the queue panel does
            screen.load()
            scrolled = asyncio.ensure_future(screen.on_ticket_list_need_more(TicketList.NeedMore()))
            await until(pilot, lambda: scrolled.done() and ticket_list(app).queue == "health")
            await pilot.press(*["j"] * 11)
            await until(pilot, lambda: set(ticket_list(app).order) == set(refs))


async def test_an_older_ticket_written_to_again_joins_the_top_counted_once(harness: Harness, small_pages: None) -> None:
    refs = [await harness.mail(subject=f"claim {n}", sender=f"c{n}@example.com") for n in range(7)]
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 5)
        await harness.mail(subject=f"Re: [{refs[0]}] claim 0", body="any news?", sender="c0@example.com")
        await until(pilot, lambda: ticket_list(app).order[:1] == [refs[0]])
        # shown on top too, and the cursor still on the ticket it was on
        assert ticket_list(app).get_row_at(0)[0].plain == refs[0] and ticket_list(app).selected_ref == refs[-1]
        # it was on a page not loaded yet, and already in the total
        await until(pilot, lambda: ticket_list(app).status_line() == "6 / 7", timeout=QUEUE_REFRESH + 3)


async def test_a_claim_with_megabytes_of_text_opens_with_long_texts_cut(harness: Harness) -> None:
    # The whole thread came in one frame: past 16 MiB the connection dropped and the claim never opened.
    ref = await harness.mail(subject="big claim", sender="ali@example.com")
    chain = "A long forwarded chain. " * 45_000
    for _ in range(9):
        await harness.daemon.store.write(add_note(ref, chain, "sara"))
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        thread = app.screen.query_one(ThreadView)
        newest = str(thread.get_option_at_index(thread.option_count - 1).prompt)
        assert newest.endswith(f"\n… ({len(chain) - BODY_CAP} more characters)\n")


@pytest.fixture
def small_thread_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread laid out, and asked for, 3 items at a time."""
    monkeypatch.setattr("console.thread_view.PAGE", 3)
    monkeypatch.setattr("console.ticket_screen.PAGE", 3)


async def claim_with_notes(harness: Harness, count: int) -> str:
    """A claim whose first mail is followed by `count` notes: a thread longer than a page."""
    ref = await harness.mail(subject="first words", body="the very first mail", sender="ali@example.com")
    await harness.sink.wait_for(1)  # the acknowledgement
    reza = await harness.client(await harness.agent("reza"))
    for n in range(count):
        await reza.request("note", ref=ref, text=f"note {n}")
    return ref


async def test_earlier_line_brings_the_older_messages_the_server_did_not_send(
        harness: Harness, small_thread_pages: None) -> None:
    ref = await claim_with_notes(harness, 5)
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        thread = app.screen.query_one(ThreadView)
        assert thread.earlier == 4 and "the very first mail" not in screen_text(app)
        for _ in range(5):  # each time: up to the "earlier" line, enter
            if not (thread.shown_from or thread.earlier):
                break
            await pilot.press("home", "enter")
            await pilot.pause(0.2)
        await until(pilot, lambda: "the very first mail" in screen_text(app))
        shown = [item.message["text"].strip() for item in thread.items if item.message]
        assert shown[0] == "the very first mail" and shown[2:] == [f"note {n}" for n in range(5)]


async def test_reading_up_past_the_oldest_message_shown_brings_the_earlier_ones(
        harness: Harness, small_thread_pages: None) -> None:
    # Only selecting the "earlier" line did: k and the mouse wheel stopped at the oldest message
    # the server had sent, as if the thread began there.
    ref = await claim_with_notes(harness, 8)
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        thread = app.screen.query_one(ThreadView)
        await pilot.press("k", "k", "k")  # up from note 7 past note 5, the oldest sent: the next page
        await until(pilot, lambda: "note 4" in [(i.message or {}).get("text", "").strip() for i in thread.items])
        assert thread.highlighted_message()["text"].strip() == "note 4"  # just above where the cursor was
        for _ in range(30):  # the wheel at the top brings the rest
            if not (thread.shown_from or thread.earlier):
                break
            thread.post_message(events.MouseScrollUp(thread, 5, 3, 0, -1, 0, False, False, False))
            await pilot.pause(0.1)
        await until(pilot, lambda: "the very first mail" in screen_text(app))
        shown = [item.message["text"].strip() for item in thread.items if item.message]
        assert shown[0] == "the very first mail" and shown[2:] == [f"note {n}" for n in range(8)]


async def test_a_customer_whose_last_message_is_before_the_thread_shown_can_be_answered(
        harness: Harness, small_thread_pages: None) -> None:
    # The reply channel came from the messages shown only: after a page of notes, `r` said
    # "nothing from the customer to answer".
    ref = await harness.mail(subject="need help", body="please call me", sender="ali@example.com")
    await harness.sink.wait_for(1)  # the acknowledgement
    reza = await harness.client(await harness.agent("reza"))
    for n in range(5):
        await reza.request("note", ref=ref, text=f"note {n}")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        assert "please call me" not in screen_text(app)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, Composer))
        assert app.screen.query_one("#channel", Select).value == "email"
        await pilot.press(*"on our way", "ctrl+s")
        *_, reply = await harness.sink.wait_for(2)
        assert reply["To"] == "ali@example.com" and "on our way" in reply.get_content()


def test_timeline_events_name_their_fields_and_values_in_the_agents_language() -> None:
    from console.thread_view import event_details
    moved = {"at": "2026-11-28T09:30:00+00:00", "kind": "priority_changed", "actor": "sara", "old": "normal",
             "new": "urgent"}
    assert event_details(moved, Prefs()) == "از: عادی، به: فوری"
    assert event_details(moved, Prefs(language="en")) == "from: normal, to: urgent"
    closed = {"at": "2026-11-28T09:30:00+00:00", "kind": "status_changed", "actor": "sara", "old": "assessed",
              "new": "closed", "merged_into": "PV-1405-000002"}
    assert event_details(closed, Prefs()) == "از: ارزیابی شده، به: بسته، ادغام در: PV-1405-000002"
    # Agents' names are not statuses: an assignment's values are shown as they are.
    assigned = {"at": "2026-11-28T09:30:00+00:00", "kind": "assigned", "actor": "routing", "old": None, "new": "new"}
    assert event_details(assigned, Prefs()) == "به: new"
    report = {"at": "2026-11-28T09:30:00+00:00", "kind": "delivery_status", "actor": None, "channel": "sms",
              "channel_message_id": "SM1", "status": "delivered", "detail": "part 2 of 2", "outbox_id": 7}
    assert event_details(report, Prefs()) == "کانال: پیامک، شناسه پیام: SM1، وضعیت: تحویل شد، جزئیات: part 2 of 2"
    # A field or value the catalogue has no name for (a connector's own) is shown as stored.
    odd = {"at": "2026-11-28T09:30:00+00:00", "kind": "delivery_status", "actor": None, "status": "x-gateway-7",
           "hops": 3}
    assert event_details(odd, Prefs()) == "وضعیت: x-gateway-7، hops: ۳"


def test_sla_due_times_in_the_timeline_are_shown_in_tehran_time_like_the_event_itself() -> None:
    # The breach fired at 13:00 Tehran (09:30 UTC) on 7 Azar 1405, the instant it was due.
    from console.thread_view import event_prompt
    breach = {"at": "2026-11-28T09:30:00.000000+00:00", "kind": "sla_breached", "actor": "sla",
              "clock": "first_response", "policy": "standard", "due_at": "2026-11-28T09:30:00.000000+00:00"}
    shown = event_prompt(breach, Prefs(bidi=False)).plain
    assert "موعد: ۱۴۰۵/۰۹/۰۷ ۱۳:۰۰" in shown and "T09:30" not in shown
    started = {"at": "2026-11-28T05:30:00.000000+00:00", "kind": "sla_started", "actor": "routing", "policy": "standard",
               "due": {"first_response": "2026-11-28T09:30:00.000000+00:00"}}
    shown = event_prompt(started, Prefs(calendar="gregorian", digits="latin", bidi=False)).plain
    assert "موعد: {first_response: 2026/11/28 13:00}" in shown

def test_a_persian_event_too_long_for_the_thread_wraps_before_it_is_reordered() -> None:
    from console.thread_view import event_prompt
    sent = {"at": "2026-11-29T11:10:00+00:00", "kind": "delivery_sent", "actor": "system", "channel": "sms",
            "attempt": 1, "detail": "4 UCS-2 segments", "channel_message_id": "kavenegar:8792347"}
    head, *rows = event_prompt(sent, Prefs(), width=46).plain.split("\n")
    assert "۱۴۰۵/۰۹/۰۸ ۱۴:۴۰" in head and rows and all(len(row) <= 46 for row in rows)
    # Read top to bottom, each row right to left: the details begin on the first row ("کانال: پیامک")
    # and the actor ends the last, as the sentence does.
    assert rows[0].rstrip().endswith(display_lines("کانال: پیامک", Prefs())[0])
    assert rows[-1].strip() == display_lines("توسط system", Prefs())[0]
    assert len(event_prompt(sent, Prefs()).plain.split("\n")) == 1  # no width: one line, as before
    english = event_prompt(sent, Prefs(language="en", digits="latin"), width=46).plain
    assert "\n" not in english  # left to right: the list's own wrapping keeps its order


def test_reports_screen_percentages_never_round_a_breach_up_to_100() -> None:
    from console.reports_screen import percent
    latin = Prefs(digits="latin")
    assert percent(99.6, latin) == "99.6" and percent(99.96, latin) == "99.9"  # one breach in 250, in 2500
    assert percent(100.0, latin) == "100" and percent(50.0, latin) == "50" and percent(None, latin) == "—"
    assert percent(0.4, Prefs()) == "۰.۴"


# -- a common SSH terminal: 80x24 ------------------------------------------------------------

NARROW = (80, 24)


def row_of(app: ConsoleApp, ref: str) -> str:
    """The ticket list's row that shows `ref` (the screen line, right of the queue pane)."""
    (line,) = [line for line in screen_text(app).splitlines() if ref in line]
    return line.split("│")[-1]


async def test_at_80x24_the_ticket_list_shows_claim_sla_and_subject(make_daemon: Callable[..., Any]) -> None:
    async with running_harness(make_daemon, SLA_POLICY) as harness:
        latin = await harness.mail(subject="Cracked windscreen, Tehran", sender="Sara Ahmadi <sara@example.com>")
        persian = await harness.mail(subject="تصادف در بزرگراه همت با خودروی سواری، سپر عقب و چراغ‌ها آسیب دید",
                                     sender="ali@example.com")
        (clock,) = await harness.daemon.store.fetchall(
            "SELECT c.due_at FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id"
            " WHERE t.ref = ? AND c.met_at IS NULL ORDER BY c.due_at LIMIT 1", (latin,))
        now = datetime.fromisoformat(clock["due_at"]) - timedelta(hours=2, minutes=30)
        app = ConsoleApp(harness.url, await harness.agent("sara"), Prefs(digits="latin", language="en"), clock=lambda: now)
        async with app.run_test(size=NARROW) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 2)
            await until(pilot, lambda: latin in screen_text(app))
            line = row_of(app, latin)
            assert "2:30" in line and "Cracked windscreen, Tehran" in line
            # A subject too long for the column keeps its beginning (cut before it is reordered).
            assert display_lines("تصادف در بزرگراه همت", Prefs())[0] in row_of(app, persian)
            assert "Oldest waiting" not in screen_text(app)  # the queue pane gives way to the list
            await pilot.press("right", "right")  # a column at a time; the claim stays
            await until(pilot, lambda: "Sara Ahmadi" in row_of(app, latin) and "new" in row_of(app, latin))
            await pilot.press("left", "left")
            await until(pilot, lambda: "Cracked windscreen, Tehran" in row_of(app, latin))

            await pilot.resize_terminal(120, 40)  # and a wide terminal still shows everything
            await until(pilot, lambda: "Oldest waiting" in screen_text(app))
            await until(pilot, lambda: "Sara Ahmadi" in row_of(app, latin))
            assert "Cracked windscreen, Tehran" in row_of(app, latin)


async def test_at_80x24_the_key_bar_and_help_show_supervisor_reports_and_quit(harness: Harness) -> None:
    ref = await harness.mail(subject="keys", sender="a@example.com")
    app = await console(harness)
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await until(pilot, lambda: "q  Quit" in screen_text(app))
        shown = screen_text(app)
        assert all(key in shown for key in ("t  Take", "?  Help", "v  Supervisor", "R  Reports", "q  Quit"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        await until(pilot, lambda: "q  Quit" in screen_text(app))
        shown = screen_text(app)
        assert all(key in shown for key in ("r  Reply", "c  Contact", "v  Supervisor", "R  Reports", "q  Quit"))
        await pilot.press("question_mark")
        await until(pilot, lambda: "command palette" in screen_text(app))
        shown = screen_text(app)
        assert all(key in shown for key in ("v  supervisor view", "R  reports", "q  quit"))


async def test_at_80x24_the_thread_gets_the_width_and_c_shows_the_contact(harness: Harness) -> None:
    sentence = "The rear bumper and both tail lights need replacing today"
    ref = await harness.mail(subject="bumper", body=sentence, sender="Ali Rezaei <ali@example.com>")
    app = await console(harness)
    async with app.run_test(size=NARROW) as pilot:
        await open_only_ticket(pilot, app, ref)
        thread = app.screen.query_one(ThreadView)
        pane = app.screen.query_one("#contact-pane")
        assert thread.size.width >= 60 and not pane.display
        await until(pilot, lambda: sentence in screen_text(app))  # one line, not wrapped at 40
        await pilot.press("c")
        await until(pilot, lambda: pane.display and "identities" in screen_text(app))
        assert "email: ali@example.com" in screen_text(app)
        await pilot.press("c")
        await until(pilot, lambda: not pane.display and thread.size.width >= 60)
        await until(pilot, lambda: sentence in screen_text(app))

        await pilot.resize_terminal(120, 40)  # a wide terminal has room for both
        await until(pilot, lambda: pane.display and "identities" in screen_text(app))
        assert thread.size.width >= 60
