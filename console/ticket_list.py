"""The ticket list: a DataTable holding only the pages loaded so far, asking for the next page
as the cursor (or the scroll) nears the end, so 100,000 open tickets cost one page at start.

The server's list is the open tickets of one queue (or all), newest change first, and the rows
loaded are always its top: everything changed after the last row of the last page (the
`boundary`). The next page is the one after that row (the server's `next_cursor`), however many
tickets arrived, changed or closed meanwhile. Live updates keep the top whole: a ticket that
changed later joins on top, one that did not (an event that leaves its change time alone)
waits for its page. A row that leaves the list (closed, moved to another queue) stays on screen
but is no longer counted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from console.labels import shown, shown_term
from console.render import Prefs, channel_icons, countdown, number, safe_text

# What an agent triages by comes first, so a narrow terminal (80 columns) still shows it; the
# rest is a scroll to the right (left/right arrows) away.
# (column key, its header's label)
COLUMNS = (("ref", "col.claim"), ("sla", "col.sla"), ("subject", "col.subject"), ("contact", "col.contact"),
           ("priority", "col.prio"), ("status", "col.status"), ("assignee", "col.assignee"),
           ("channels", "col.channels"))
PRIORITY_STYLE = {"urgent": "bold red", "high": "yellow", "normal": "", "low": "dim"}
PREFETCH = 20  # rows before the end at which the next page is asked for

# Characters of subject and contact shown, by the list's width (`column_limits`).
SUBJECT_MAX, SUBJECT_FIRST, SUBJECT_MIN = 40, 28, 16
CONTACT_MAX, CONTACT_MIN = 20, 10
LEADING = 16 + 9 + 2  # the claim and SLA columns (with their padding) and the scroll bar
PAD = 2  # a column's padding


def column_limits(width: int) -> tuple[int, int]:
    """(subject, contact) lengths for a list `width` columns wide: the subject first (up to
    SUBJECT_FIRST), then the contact if a useful part of it fits, then the subject grows. A
    narrower column keeps the beginning of the text: cells are cut before right-to-left reordering."""
    room = width - LEADING
    if room >= SUBJECT_FIRST + CONTACT_MIN + 2 * PAD:
        contact = min(CONTACT_MAX, room - SUBJECT_FIRST - 2 * PAD)
        return min(SUBJECT_MAX, room - contact - 2 * PAD), contact
    return max(SUBJECT_MIN, min(SUBJECT_MAX, room - PAD)), CONTACT_MAX  # the contact is off to the right

class TicketList(DataTable[Text]):
    class NeedMore(Message):
        """The cursor is near the last loaded row and more exist."""

    def __init__(self, prefs: Prefs, *, id: str | None = None) -> None:
        # The claim stays in view while ←/→ scroll the other columns.
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, fixed_columns=1)
        self.prefs = prefs
        self.tickets: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.total = 0
        self.queue: str | None = None  # the list's queue filter (None: every queue)
        self.agent_queues: frozenset[str] | None = None  # the agent's queues (None: a supervisor sees all)
        self.left: set[str] = set()  # shown rows no longer in the server's list
        self.cursor: str | None = None  # where the server's next page starts; None: all are loaded
        self.boundary = ""  # the change time of the last row loaded
        self.limits = (SUBJECT_MAX, CONTACT_MAX)  # (subject, contact) characters shown
        self._now: datetime | None = None  # the instant the rows were last drawn at
        self._counted: dict[str, datetime] = {}  # ref -> the instant its SLA countdown was drawn at

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in COLUMNS:
            self.add_column(shown(label, self.prefs), key=key)

    def on_resize(self) -> None:
        limits = column_limits(self.size.width)
        if limits != self.limits:
            self.limits = limits
            self._redraw()

    def _redraw(self) -> None:
        """Every loaded row drawn again (column widths only grow as rows are added)."""
        selected = self.selected_ref
        self.clear(columns=True)
        self._add_columns()
        if self._now is not None:
            for ref in self.order:
                self.add_row(*self.cells(self.tickets[ref], self._now), key=ref)
        if selected is not None:
            self.move_cursor(row=self.order.index(selected), animate=False)

    @property
    def selected_ref(self) -> str | None:
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return self.order[self.cursor_row]

    def _column_stops(self) -> list[int]:
        """The horizontal scroll offsets that put each column after the fixed claim first."""
        stops, x = [0], 0
        for column in self.ordered_columns[self.fixed_columns:-1]:
            x += column.get_render_width(self)
            stops.append(x)
        return stops

    def action_cursor_right(self) -> None:
        """A column to the right (one cell at a time would take forty presses to reach the status)."""
        later = [x for x in self._column_stops() if x > self.scroll_x]
        if later:
            self.scroll_to(x=min(later[0], self.max_scroll_x), animate=False)

    def action_cursor_left(self) -> None:
        earlier = [x for x in self._column_stops() if x < self.scroll_x]
        self.scroll_to(x=earlier[-1] if earlier else 0, animate=False)

    def cells(self, t: dict[str, Any], now: datetime) -> list[Text]:
        """A row's cells, in the order of COLUMNS."""
        self._now = self._counted[t["reference"]] = now
        contact = t["contact"]
        who = contact.get("name") or contact.get("identity") or ""
        subject, contact_limit = self.limits
        return [
            Text(t["reference"]),
            countdown(t.get("sla_due_at"), t.get("sla_warn_at"), now, self.prefs),
            # Cut in logical order, before any right-to-left reordering, so a Persian subject
            # keeps its beginning.
            safe_text(t["subject"], self.prefs, single_line=True, limit=subject),
            safe_text(who, self.prefs, single_line=True, limit=contact_limit),
            Text(shown_term("priority", t["priority"], self.prefs), style=PRIORITY_STYLE.get(t["priority"], "")),
            Text(shown_term("status", t["status"], self.prefs)),
            Text(t["assignee"] or "-"),
            channel_icons(t["channels"]),
        ]

    def show_page(self, page: dict[str, Any], now: datetime, queue: str | None = None) -> None:
        """Replace everything with the first page of `queue`'s list."""
        self.tickets.clear()
        self.order.clear()
        self.left.clear()
        self._counted.clear()
        self.boundary = ""
        self.queue = queue
        self.clear()
        self.extend(page, now)

    def listed(self, t: dict[str, Any]) -> bool:
        """Whether the server's list holds `t`: open, and in the list's queue (with no queue
        chosen: in one of the agent's queues; a ticket moved out of them leaves the list)."""
        if t["status"] == "closed":
            return False
        if self.queue is not None:
            return t["queue"] == self.queue
        return self.agent_queues is None or t["queue"] in self.agent_queues

    @property
    def loaded(self) -> int:
        """Rows still in the server's list: the count shown."""
        return len(self.order) - len(self.left)

    def extend(self, page: dict[str, Any], now: datetime) -> None:
        """Add the server's next page below the rows loaded. A row already shown (it joined on
        top after its change at the boundary's instant) is not added twice."""
        self.total = page.get("total", self.total)  # counted on a first page only
        rows = page["tickets"]
        for t in rows:
            if t["reference"] in self.tickets:
                continue
            self.tickets[t["reference"]] = t
            self.order.append(t["reference"])
            self.add_row(*self.cells(t, now), key=t["reference"])
        self.cursor = page["next_cursor"]
        if rows:
            self.boundary = rows[-1]["updated_at"] or ""

    def upsert(self, t: dict[str, Any], now: datetime) -> None:
        """A ticket changed or arrived: update its row in place, or put a new one on top. The
        total is a guess until the queue counts come (`MainScreen._show_queues`): the new row
        may have been counted already, on a page not loaded."""
        ref = t["reference"]
        if self.update_shown(t, now):
            return
        if self.cursor is not None and (t["updated_at"] or "") < self.boundary:
            return  # below the rows loaded in the server's order: its page brings it
        selected = self.selected_ref
        self.tickets[ref] = t
        self.order.insert(0, ref)
        self.total += 1
        self._add_on_top(ref, now)
        if selected is not None:
            self.move_cursor(row=self.order.index(selected), animate=False)
        self._count_down_in_view()  # the rows in view count down from the new row's instant

    def update_shown(self, t: dict[str, Any], now: datetime) -> bool:
        """Redraw the row of `t` in place if it is shown; whether it was."""
        ref = t["reference"]
        if ref not in self.tickets:
            return False
        self.tickets[ref] = t
        self._track(ref, self.listed(t))
        for (key, _), cell in zip(COLUMNS, self.cells(t, now)):
            self._set_cell(ref, key, cell)
        return True

    def _set_cell(self, ref: str, key: str, cell: Text) -> None:
        """A shown cell drawn again, its column widened if it no longer fits ("awaiting
        documents" was cut to the width of "new"). Columns only grow: a narrower cell asking
        for the width has Textual measure the whole column, every loaded row."""
        self.update_cell(ref, key, cell, update_width=cell.cell_len > self.columns[key].content_width)

    def _add_on_top(self, ref: str, now: datetime) -> None:
        """Draw only the new row: DataTable appends only, so it is added last and moved up by
        sorting the rows' positions by `order` (no other row is drawn or measured again;
        rebuilding 3,000 loaded rows stalled the console for every new ticket). The claim
        column holds each row's reference."""
        self.add_row(*self.cells(self.tickets[ref], now), key=ref)
        if len(self.order) > 1:
            position = {key: n for n, key in enumerate(self.order)}
            self.sort("ref", key=lambda claim: position[claim.plain])

    def _track(self, ref: str, listed: bool) -> None:
        """Keep `left` and the total in step as a shown row leaves the list or comes back."""
        if listed and ref in self.left:
            self.left.discard(ref)
            self.total += 1
        elif not listed and ref not in self.left:
            self.left.add(ref)
            self.total -= 1

    def refresh_countdowns(self, now: datetime) -> None:
        self._now = now
        self._count_down_in_view()

    def _count_down_in_view(self) -> None:
        """Redraw the SLA countdowns of the rows in view drawn before the last tick; the others
        as they scroll into view (redrawing 3,000 loaded rows froze the list every tick)."""
        if self._now is None:
            return
        first = int(self.scroll_y)
        for ref in self.order[first:first + self.size.height]:
            t = self.tickets[ref]
            # Not a row being drawn again (clearing the table scrolls it to the top).
            if self._counted.get(ref) != self._now and t.get("sla_due_at") and ref in self.rows:
                self._set_cell(ref, "sla", countdown(t["sla_due_at"], t.get("sla_warn_at"), self._now, self.prefs))
                self._counted[ref] = self._now

    def status_line(self) -> str:
        return f"{number(self.loaded, self.prefs)} / {number(self.total, self.prefs)}"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= len(self.order) - PREFETCH and self.cursor is not None:
            self.post_message(self.NeedMore())

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Rows scrolled into view count down from now; near the end (the mouse wheel moves the
        view, not the cursor) the next page is asked for too."""
        super().watch_scroll_y(old, new)
        self._count_down_in_view()
        if new > old and new >= self.max_scroll_y - PREFETCH and self.cursor is not None:
            self.post_message(self.NeedMore())
