"""Search: claim reference (any digits), phone in any format, e-mail, national id, plate or
free text; the daemon normalises Persian spelling, so Arabic-keyboard letters match too.

The results are the tickets the query found when it ran, in that order; live events redraw
those rows in place (status, assignee, SLA...), and a resync (events missed) runs the query
again. A ticket that would match only now is not added: the console cannot match a query, and
rows appearing or leaving would move the list under the agent; enter runs the search again."""

from __future__ import annotations

from typing import Any, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input

from console.app import ConsoleApp
from console.client import ApiRequestError
from console.key_bar import KeyBar
from console.labels import shown
from console.ticket_list import TicketList


class SearchScreen(Screen[None]):
    CSS_PATH = "search_screen.tcss"
    BINDINGS = [Binding("escape", "back", "key.back")]

    def __init__(self) -> None:
        super().__init__()
        self.searched: str | None = None  # the query the results answer

    @property
    def console(self) -> ConsoleApp:
        return cast(ConsoleApp, self.app)

    def compose(self) -> ComposeResult:
        yield Input(placeholder=shown("search_placeholder", self.console.prefs), id="query")
        yield TicketList(self.console.prefs, id="results")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            return
        self.searched = event.value
        found = await self._find(event.value)
        if found is None:
            return
        self._show(found)
        if found:
            self.query_one(TicketList).focus()
        else:
            self.notify(shown("nothing_found", self.console.prefs), timeout=2)

    async def _find(self, query: str) -> list[dict[str, Any]] | None:
        """The tickets `query` finds; None when refused, offline or the screen left meanwhile."""
        try:
            found = await self.console.api("search", query=query)
        except (ApiRequestError, ConnectionError):
            return None
        return found["tickets"] if self.is_attached else None

    def _show(self, tickets: list[dict[str, Any]]) -> None:
        self.query_one(TicketList).show_page({"total": len(tickets), "tickets": tickets, "next_cursor": None},
                                             self.console.now())

    def apply_event(self, payload: dict[str, Any]) -> None:
        lists = self.query(TicketList)
        if not self.is_attached or not lists:  # an event can still come as the console quits
            return
        if payload.get("type") == "resync":
            if self.searched is not None:
                self._search_again(self.searched)
            return
        summary = payload.get("summary")
        if summary:
            lists.first().update_shown(summary, self.console.now())

    @work(exclusive=True, group="search")
    async def _search_again(self, query: str) -> None:
        """The same query's results, the cursor on the ticket it was on."""
        found = await self._find(query)
        if found is None or query != self.searched:  # another search was run meanwhile
            return
        results = self.query_one(TicketList)
        selected = results.selected_ref
        self._show(found)
        if selected in results.order:
            results.move_cursor(row=results.order.index(selected), animate=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.console.open_ticket(event.row_key.value)

    def action_back(self) -> None:
        self.app.pop_screen()
