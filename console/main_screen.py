"""The home screen: queues (counts, oldest waiting, SLA at risk) beside the ticket list."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from console.app import ConsoleApp
from console.client import ApiRequestError
from console.key_bar import KeyBar
from console.keys import with_persian_layout
from console.labels import shown, shown_term
from console.render import number, when
from console.ticket_actions import TicketActions
from console.ticket_list import TicketList

PAGE = 100
QUEUE_REFRESH = 2.0
ALL = "*"


class QueueTable(DataTable[Text]):
    pass


class MainScreen(TicketActions):
    CSS_PATH = "main_screen.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = with_persian_layout([
        Binding("t", "take", "key.take"),
        Binding("a", "assign", "key.assign"),
        Binding("s", "status", "key.status"),
        Binding("p", "priority", "key.priority"),
        Binding("m", "move", "key.move"),
    ])

    def __init__(self) -> None:
        super().__init__()
        self.queue: str | None = None
        self._loading = False
        self._queues_pending = False

    @property
    def console(self) -> ConsoleApp:
        return cast(ConsoleApp, self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        with Horizontal():
            yield QueueTable(id="queues", cursor_type="row")
            yield TicketList(self.console.prefs, id="tickets")
        yield KeyBar()

    def on_mount(self) -> None:
        queues = self.query_one(QueueTable)
        # At risk next to the count: a narrow queue pane still shows it.
        for key, label in (("queue", "col.queue"), ("open", "col.open"), ("risk", "col.risk"),
                           ("waiting", "col.wait"), ("oldest", "col.oldest")):
            queues.add_column(shown(label, self.console.prefs), key=key)
        agent = self.console.agent
        if agent.get("role") not in ("supervisor", "admin"):
            self.tickets.agent_queues = frozenset(agent.get("queues") or ())
        self.query_one(TicketList).focus()
        self.load()
        self.set_interval(30, self._tick)

    @property
    def tickets(self) -> TicketList:
        return self.query_one(TicketList)

    def selected_ref(self) -> str | None:
        return self.tickets.selected_ref

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        # The list first: counting every open ticket for the queue panel takes longer.
        try:
            page = await self.console.api("list_tickets", queue=self.queue, limit=PAGE)
        except (ApiRequestError, ConnectionError):  # shown to the agent by `api`; the console goes on
            return
        if not self.is_attached:  # closed (the console quit) while the page was on its way
            return
        self.tickets.show_page(page, self.console.now(), self.queue)
        self._topbar()
        self.refresh_queues()

    def _show_queues(self, queues: list[dict[str, Any]]) -> None:
        table = self.query_one(QueueTable)
        prefs = self.console.prefs
        selected = table.cursor_row
        table.clear()
        total_open = sum(q["open"] for q in queues)
        table.add_row(Text(shown("all", prefs)), Text(number(total_open, prefs)), Text(""), Text(""), Text(""), key=ALL)
        for q in queues:
            risk = Text(number(q.get("at_risk") or 0, prefs),
                        style="bold red" if q.get("breached") else ("yellow" if q.get("at_risk") else ""))
            table.add_row(Text(q["queue"]), Text(number(q["open"], prefs)), risk,
                          Text(number(q["waiting"] or 0, prefs)), Text(when(q["oldest_waiting"], prefs)),
                          key=q["queue"])
        table.move_cursor(row=min(selected, table.row_count - 1), animate=False)
        # The same count as the list's total, fresher than the list's own guesses.
        self.tickets.total = sum(q["open"] for q in queues if self.queue in (None, q["queue"]))
        self._topbar()

    def _topbar(self) -> None:
        agent, prefs = self.console.agent, self.console.prefs
        # Each field reordered on its own: the bar reads left to right in either language.
        fields = [f"{agent.get('name', '')} ({shown_term('role', agent.get('role', ''), prefs)})",
                  self.queue or shown("all_queues", prefs), self.tickets.status_line(),
                  shown_term("state", self.console.connection, prefs)]
        self.query_one("#topbar", Static).update(Text(" " + " · ".join(fields)))

    def connection_changed(self) -> None:
        if self.is_mounted:
            self._topbar()

    def _tick(self) -> None:
        self.tickets.refresh_countdowns(self.console.now())

    # -- paging and queue choice -------------------------------------------------------------

    def _list_shown(self) -> bool:
        """Whether the list is still there: not left, nor taken down as the console quits (a
        request for more can still be queued then)."""
        return self.is_attached and len(self.query("#topbar, TicketList")) == 2

    async def on_ticket_list_need_more(self, message: TicketList.NeedMore) -> None:
        # One page at a time, and none past the last.
        if self._loading or not self._list_shown() or self.tickets.cursor is None:
            return
        self._loading = True
        cursor = self.tickets.cursor
        try:
            try:
                page = await self.console.api("list_tickets", queue=self.queue, cursor=cursor, limit=PAGE)
            except (ApiRequestError, ConnectionError):
                return
            # Not if the list was loaded anew meanwhile (another queue chosen, a resync): the page
            # follows the old list's last row, and would move the new list's cursor past rows.
            if not self._list_shown() or self.tickets.cursor != cursor:
                return
            self.tickets.extend(page, self.console.now())
            self._topbar()
        finally:
            self._loading = False

    def palette_refs(self) -> list[str]:
        """Tickets the command palette offers to open: the top of the list on screen."""
        return list(self.tickets.order[:20])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, QueueTable):
            key = event.row_key.value
            self.queue = None if key == ALL else key
            self.tickets.focus()
            self.load()
        elif isinstance(event.data_table, TicketList) and event.row_key.value:
            self.console.open_ticket(event.row_key.value)

    # -- live --------------------------------------------------------------------------------

    def apply_event(self, payload: dict[str, Any]) -> None:
        if payload.get("type") == "resync":
            self.load()
            return
        summary = payload.get("summary")
        if not summary or not self._list_shown():  # an event can still come as the console quits
            return
        in_view = self.queue in (None, summary["queue"])
        listed = summary["reference"] in self.tickets.tickets
        if listed or (in_view and summary["status"] != "closed"):
            self.tickets.upsert(summary, self.console.now())
            self._topbar()
        # Any ticket event may move a queue's counts (an answer ends a wait, a merge closes a
        # ticket, a priority change moves its risk): a list of kinds would go stale.
        self._queue_counts_stale()

    def _queue_counts_stale(self) -> None:
        # Counting every open ticket is the costliest read: at most one every QUEUE_REFRESH s.
        if not self._queues_pending:
            self._queues_pending = True
            self.set_timer(QUEUE_REFRESH, self.refresh_queues)

    @work(exclusive=True, group="queues")
    async def refresh_queues(self) -> None:
        self._queues_pending = False
        try:
            queues = await self.console.api("queues")
        except (ApiRequestError, ConnectionError):  # offline or refused: the next event asks again
            return
        if self.is_attached:  # not closed while the counts were on their way
            self._show_queues(queues)
