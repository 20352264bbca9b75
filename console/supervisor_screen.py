"""The supervisor view: every agent's load, every queue's risk and breaches, and the tickets
behind them (enter opens one)."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Label

from console.app import ConsoleApp
from console.client import ApiRequestError
from console.key_bar import KeyBar
from console.keys import with_persian_layout
from console.labels import shown, shown_term
from console.render import countdown, number, safe_text, when


class SupervisorScreen(Screen[None]):
    CSS_PATH = "supervisor_screen.tcss"
    BINDINGS = with_persian_layout([Binding("escape", "back", "key.back"), Binding("g", "reload", "key.refresh")])

    @property
    def console(self) -> ConsoleApp:
        return cast(ConsoleApp, self.app)

    def compose(self) -> ComposeResult:
        prefs = self.console.prefs
        yield Label(Text(shown("section.agents", prefs)), classes="section")
        yield DataTable(id="agents", cursor_type="row")
        yield Label(Text(shown("section.queues", prefs)), classes="section")
        yield DataTable(id="queue-risk", cursor_type="row")
        yield Label(Text(shown("section.at_risk", prefs)), classes="section")
        yield DataTable(id="at-risk", cursor_type="row")
        yield KeyBar()

    def on_mount(self) -> None:
        prefs = self.console.prefs
        for table, columns in (
                ("#agents", ("agent", "role", "queues", "open", "waiting", "oldest")),
                ("#queue-risk", ("queue", "open", "unassigned", "waiting", "at_risk", "breached", "oldest")),
                ("#at-risk", ("claim", "sla", "queue", "assignee", "subject"))):
            self.query_one(table, DataTable).add_columns(*(shown(f"col.{c}", prefs) for c in columns))
        self.query_one("#agents", DataTable).focus()
        self.action_reload()

    @work(exclusive=True)
    async def action_reload(self) -> None:
        try:
            view = await self.console.api("supervisor")
        except (ApiRequestError, ConnectionError):  # shown by `api`; the view stays as it was
            return
        if not self.is_attached:  # left (esc) while the view was on its way
            return
        prefs = self.console.prefs
        agents = self.query_one("#agents", DataTable)
        agents.clear()
        for a in view["agents"]:
            load: dict[str, Any] = a["load"]
            agents.add_row(Text(a["name"]), Text(shown_term("role", a["role"], prefs)), Text(",".join(a["queues"]) or "*"),
                           Text(number(load["open"], prefs)), Text(number(load["waiting"] or 0, prefs)),
                           Text(when(load["oldest_waiting"], prefs)))
        queues = self.query_one("#queue-risk", DataTable)
        queues.clear()
        for q in view["queues"]:
            queues.add_row(Text(q["queue"]), Text(number(q["open"], prefs)), Text(number(q["unassigned"], prefs)),
                           Text(number(q["waiting"] or 0, prefs)),
                           Text(number(q["at_risk"] or 0, prefs), style="yellow" if q["at_risk"] else ""),
                           Text(number(q["breached"] or 0, prefs), style="bold red" if q["breached"] else ""),
                           Text(when(q["oldest_waiting"], prefs)))
        risky = self.query_one("#at-risk", DataTable)
        risky.clear()
        now = self.console.now()
        warned = now.isoformat()  # every row is past its warning: yellow until due, then red
        for t in view.get("at_risk", []):
            risky.add_row(Text(t["reference"]), countdown(t["sla_due_at"], warned, now, prefs),
                          Text(t["queue"]), Text(t["assignee"] or "-"), safe_text(t["subject"], prefs, limit=40),
                          key=t["reference"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "at-risk" and event.row_key.value:
            self.console.open_ticket(event.row_key.value)

    def action_back(self) -> None:
        self.app.pop_screen()
