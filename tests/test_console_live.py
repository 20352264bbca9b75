"""The console's lists as events come, against a real daemon and agent API: a new ticket draws
its own row only, the supervisor view reads itself again (a burst once), and search results
show their tickets' changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from textual.widgets import DataTable

from console import supervisor_screen
from console.app import ConsoleApp
from console.labels import shown_term
from console.main_screen import MainScreen
from console.render import Prefs
from console.search_screen import SearchScreen
from console.supervisor_screen import LIVE_REFRESH, SupervisorScreen
from console.ticket_screen import TicketScreen
from ingest.apply import add_note
from tests.test_agent_api import Harness, running_harness
from tests.test_console import SIZE, console, screen_text, ticket_list, until


@pytest.fixture
async def harness(make_daemon: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with running_harness(make_daemon) as h:
        yield h


async def test_a_new_ticket_draws_its_own_row_only_keeping_the_order_and_the_cursor(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each new ticket cleared the table and added every loaded row again: with 3,000 loaded,
    # the console stalled for each one.
    refs = [await harness.mail(subject=f"claim {n}", sender=f"c{n}@example.com") for n in range(5)]
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 5)
        table = ticket_list(app)
        await pilot.press("j", "j")
        chosen = table.selected_ref
        shown_rows = dict(table.rows)  # Textual's row objects: a redraw makes new ones
        added: list[str | None] = []
        add_row = table.add_row
        monkeypatch.setattr(table, "add_row", lambda *cells, **kw: (added.append(kw.get("key")), add_row(*cells, **kw))[1])

        fresh = [await harness.mail(subject=f"new claim {n}, wider subject", sender=f"new{n}@example.com")
                 for n in range(2)]
        await until(pilot, lambda: table.order[:2] == fresh[::-1])
        await pilot.pause()
        assert added == fresh
        assert all(table.rows[key] is row for key, row in shown_rows.items())
        # on screen in the list's order, newest first, and the cursor on the ticket it was on
        assert [table.get_row_at(n)[0].plain for n in range(7)] == table.order == [*fresh[::-1], *refs[::-1]]
        assert table.selected_ref == chosen and table.cursor_row == 4
        # the subject column widened for the new row (it was measured where it was moved to)
        await until(pilot, lambda: "new claim 1, wider subject" in screen_text(app))


async def supervisor_table(pilot: Any, app: ConsoleApp, table: str) -> DataTable:
    """From the list of one claim to the supervisor view (v), once `table` shows its one row."""
    await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 1)
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, SupervisorScreen)
                and app.screen.query_one(table, DataTable).row_count == 1)
    return app.screen.query_one(table, DataTable)


async def test_the_supervisor_view_follows_new_mail_live(harness: Harness) -> None:
    await harness.mail(subject="first", sender="a@example.com")
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        queues = await supervisor_table(pilot, app, "#queue-risk")
        assert str(queues.get_row_at(0)[1]) == "1"  # open in intake
        await harness.mail(subject="second", sender="b@example.com")
        await until(pilot, lambda: str(queues.get_row_at(0)[1]) == "2", timeout=LIVE_REFRESH + 4)


async def test_a_burst_of_events_reads_the_supervisor_view_once_and_not_while_it_is_covered(
        harness: Harness) -> None:
    ref = await harness.mail(subject="busy claim", sender="a@example.com")
    app = await console(harness, "boss", "supervisor")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 1)
        reads: list[str] = []
        request = app.client.request

        async def counted(op: str, **args: Any) -> Any:  # the real request, counted
            reads.append(op)
            return await request(op, **args)

        app.client.request = counted  # type: ignore[method-assign]
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, SupervisorScreen) and reads.count("supervisor") == 1)
        for n in range(10):
            await harness.daemon.store.write(add_note(ref, f"note {n}", "boss"))
        await until(pilot, lambda: reads.count("supervisor") >= 2, timeout=LIVE_REFRESH + 4)
        await pilot.pause(LIVE_REFRESH + 0.5)
        assert reads.count("supervisor") <= 3  # one read for the burst (two if it straddled a refresh)

        # Covered by a ticket opened from it, it is not read; it is on coming back.
        app.open_ticket(ref)
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        before = reads.count("supervisor")
        await harness.daemon.store.write(add_note(ref, "while away", "boss"))
        await until(pilot, lambda: "while away" in screen_text(app))
        await pilot.pause(LIVE_REFRESH + 0.5)
        assert reads.count("supervisor") == before
        await pilot.press("escape")
        await until(pilot, lambda: reads.count("supervisor") == before + 1)


async def test_search_results_show_their_tickets_changes_and_keep_to_what_was_found(harness: Harness) -> None:
    found = await harness.mail(subject="cooler damage", sender="a@example.com")
    await harness.mail(subject="other", sender="b@example.com")
    await harness.api.index_caught_up()
    boss = await harness.client(await harness.agent("boss", "supervisor"))
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 2)
        main = app.screen
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        app.screen.query_one("#query").value = "cooler"
        await pilot.press("enter")
        results = ticket_list(app)
        await until(pilot, lambda: results.order == [found])

        await boss.request("set_status", ref=found, status="awaiting_documents")
        waiting = shown_term("status", "awaiting_documents", Prefs(digits="latin", language="en"))
        await until(pilot, lambda: results.get_cell(found, "status").plain == waiting)
        await until(pilot, lambda: waiting in screen_text(app))  # the status column widened for it

        # A ticket that would match only now is not added under the agent: enter searches again.
        later = await harness.mail(subject="cooler damage again", sender="c@example.com")
        await until(pilot, lambda: later in main.tickets.order)
        assert results.order == [found]


async def test_the_supervisors_at_risk_countdowns_run_down_between_reads(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """No event comes while a claim's due time draws near: the countdown still moves, from the
    view last read (no request to the server)."""
    monkeypatch.setattr(supervisor_screen, "COUNTDOWN_SECONDS", 0.05)
    ref = await harness.mail(subject="late claim", sender="a@example.com")  # no SLA policy: the wall clock
    now = [datetime.now(UTC)]
    # Written 7 hours ago: a normal claim's 8-hour answer is due in an hour, at risk from 6 hours.
    await harness.daemon.store.write(lambda tx: tx.execute(
        "UPDATE tickets SET last_inbound_at = ? WHERE ref = ?", ((now[0] - timedelta(hours=7)).isoformat(), ref)))
    app = ConsoleApp(harness.url, await harness.agent("boss", "supervisor"), Prefs(digits="latin", language="en"),
                     clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        at_risk = await supervisor_table(pilot, app, "#at-risk")
        assert at_risk.get_cell(ref, "sla").plain in ("1:00", "0:59")
        now[0] += timedelta(minutes=45)
        await until(pilot, lambda: at_risk.get_cell(ref, "sla").plain in ("0:15", "0:14"))
        now[0] += timedelta(minutes=20)
        await until(pilot, lambda: at_risk.get_cell(ref, "sla").plain in ("-0:05", "-0:06"))
