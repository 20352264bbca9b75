"""Search: claim reference (any digits), phone in any format, e-mail, national id, plate or
free text; the daemon normalises Persian spelling, so Arabic-keyboard letters match too."""

from __future__ import annotations

from typing import cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input

from console.app import ConsoleApp
from console.key_bar import KeyBar
from console.client import ApiRequestError
from console.labels import shown
from console.ticket_list import TicketList


class SearchScreen(Screen[None]):
    CSS_PATH = "search_screen.tcss"
    BINDINGS = [Binding("escape", "back", "key.back")]

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
        try:
            found = await self.console.api("search", query=event.value)
        except (ApiRequestError, ConnectionError):
            return
        if not self.is_attached:
            return
        results = self.query_one(TicketList)
        results.show_page({"total": len(found["tickets"]), "tickets": found["tickets"], "next_cursor": None},
                          self.console.now())
        if found["tickets"]:
            results.focus()
        else:
            self.notify(shown("nothing_found", self.console.prefs), timeout=2)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.console.open_ticket(event.row_key.value)

    def action_back(self) -> None:
        self.app.pop_screen()
