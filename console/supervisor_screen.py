"""The supervisor view: every agent's load, every queue's risk and breaches, and the tickets
behind them (enter opens one). Live: the agent API's events read it again, a burst of them
once (`LIVE_REFRESH`)."""

from __future__ import annotations

from collections.abc import Iterable
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

# Seconds between live reloads at most: the view counts every open ticket, agent and queue,
# and a burst of events (a mailbox catching up) must cost one read, not one each.
LIVE_REFRESH = 1.0
# Seconds between redraws of the at-risk tickets' countdowns: time passes without any event.
COUNTDOWN_SECONDS = 30


def refill(table: DataTable[Text], rows: Iterable[tuple[str, list[Text]]]) -> None:
    """Replace `table`'s (key, cells) rows, its cursor staying on the row with the same key (or
    at the same place, that row gone): a live reload must not move the supervisor's place."""
    held = table.ordered_rows[table.cursor_row].key if table.is_valid_row_index(table.cursor_row) else None
    place = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if held is not None and held in table.rows:
        table.move_cursor(row=table.get_row_index(held), animate=False)
    elif table.row_count:
        table.move_cursor(row=min(place, table.row_count - 1), animate=False)


class SupervisorScreen(Screen[None]):
    CSS_PATH = "supervisor_screen.tcss"
    BINDINGS = with_persian_layout([Binding("escape", "back", "key.back"), Binding("g", "reload", "key.refresh")])

    def __init__(self) -> None:
        super().__init__()
        self._stale = False  # an event came since the view was last read
        self._reload_due = False  # a live reload is waiting for its timer
        self._due: dict[str, str | None] = {}  # at-risk reference -> its due instant, as last read

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
            for column in columns:
                self.query_one(table, DataTable).add_column(shown(f"col.{column}", prefs), key=column)
        self.query_one("#agents", DataTable).focus()
        self.action_reload()
        self.set_interval(COUNTDOWN_SECONDS, self._tick)

    def _tick(self) -> None:
        """The countdowns as of now, from the view last read: no request to the server."""
        table = self.query_one("#at-risk", DataTable)
        now = self.console.now()
        for ref, due in self._due.items():
            if ref in table.rows:
                table.update_cell(ref, "sla", countdown(due, now.isoformat(), now, self.console.prefs))

    def apply_event(self, payload: dict[str, Any]) -> None:
        """Any ticket event may move an agent's load, a queue's figures or the tickets at risk
        (a resync: any of them), so every one marks the view stale; it is read again at most
        once a LIVE_REFRESH, and only while shown (a ticket opened from it covers it)."""
        self._stale = True
        if self.is_active and not self._reload_due:
            self._reload_due = True
            self.set_timer(LIVE_REFRESH, self._live_reload)

    def _live_reload(self) -> None:
        self._reload_due = False
        if self._stale and self.is_active:
            self.action_reload()

    def on_screen_resume(self) -> None:
        """Back from a ticket: what changed meanwhile is read now."""
        if self._stale and not self._reload_due:
            self.action_reload()

    @work(exclusive=True)
    async def action_reload(self) -> None:
        self._stale = False  # an event from now on asks again
        try:
            view = await self.console.api("supervisor")
        except (ApiRequestError, ConnectionError):  # shown by `api`; the view stays as it was
            return
        if not self.is_attached:  # left (esc) while the view was on its way
            return
        prefs = self.console.prefs
        agents: list[tuple[str, list[Text]]] = []
        for a in view["agents"]:
            load: dict[str, Any] = a["load"]
            agents.append((a["name"], [
                Text(a["name"]), Text(shown_term("role", a["role"], prefs)), Text(",".join(a["queues"]) or "*"),
                Text(number(load["open"], prefs)), Text(number(load["waiting"] or 0, prefs)),
                Text(when(load["oldest_waiting"], prefs))]))
        refill(self.query_one("#agents", DataTable), agents)
        refill(self.query_one("#queue-risk", DataTable), ((q["queue"], [
            Text(q["queue"]), Text(number(q["open"], prefs)), Text(number(q["unassigned"], prefs)),
            Text(number(q["waiting"] or 0, prefs)),
            Text(number(q["at_risk"] or 0, prefs), style="yellow" if q["at_risk"] else ""),
            Text(number(q["breached"] or 0, prefs), style="bold red" if q["breached"] else ""),
            Text(when(q["oldest_waiting"], prefs))]) for q in view["queues"]))
        now = self.console.now()
        warned = now.isoformat()  # every row is past its warning: yellow until due, then red
        self._due = {t["reference"]: t["sla_due_at"] for t in view.get("at_risk", [])}
        refill(self.query_one("#at-risk", DataTable), ((t["reference"], [
            Text(t["reference"]), countdown(t["sla_due_at"], warned, now, prefs),
            Text(t["queue"]), Text(t["assignee"] or "-"), safe_text(t["subject"], prefs, limit=40)])
            for t in view.get("at_risk", [])))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "at-risk" and event.row_key.value:
            self.console.open_ticket(event.row_key.value)

    def action_back(self) -> None:
        self.app.pop_screen()
