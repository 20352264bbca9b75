"""The ticket list: a DataTable holding only the pages loaded so far, asking for the next page
as the cursor nears the end, so 100,000 open tickets cost one page at start."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from console.render import Prefs, channel_icons, countdown, number, safe_text

COLUMNS = (("ref", "Claim"), ("sla", "SLA"), ("priority", "Prio"), ("status", "Status"), ("assignee", "Assignee"),
           ("channels", "Ch"), ("contact", "Contact"), ("subject", "Subject"))
PRIORITY_STYLE = {"urgent": "bold red", "high": "yellow", "normal": "", "low": "dim"}
PREFETCH = 20  # rows before the end at which the next page is asked for


class TicketList(DataTable[Text]):
    class NeedMore(Message):
        """The cursor is near the last loaded row and more exist."""

    def __init__(self, prefs: Prefs, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.prefs = prefs
        self.tickets: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.total = 0

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_ref(self) -> str | None:
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return self.order[self.cursor_row]

    def cells(self, t: dict[str, Any], now: datetime) -> list[Text]:
        contact = t["contact"]
        who = contact.get("name") or contact.get("identity") or ""
        return [
            Text(t["reference"]),
            countdown(t.get("sla_due_at"), t.get("sla_warn_at"), now, self.prefs),
            Text(t["priority"], style=PRIORITY_STYLE.get(t["priority"], "")),
            Text(t["status"]),
            Text(t["assignee"] or "-"),
            channel_icons(t["channels"]),
            # Cut in logical order, before any right-to-left reordering, so a Persian subject
            # keeps its beginning.
            safe_text(who[:20], self.prefs, single_line=True),
            safe_text(t["subject"][:40], self.prefs, single_line=True),
        ]

    def show_page(self, page: dict[str, Any], now: datetime) -> None:
        """Replace everything with a first page."""
        self.tickets.clear()
        self.order.clear()
        self.clear()
        self.extend(page, now)

    def extend(self, page: dict[str, Any], now: datetime) -> None:
        self.total = page["total"]
        for t in page["tickets"]:
            if t["reference"] in self.tickets:
                continue
            self.tickets[t["reference"]] = t
            self.order.append(t["reference"])
            self.add_row(*self.cells(t, now), key=t["reference"])

    def upsert(self, t: dict[str, Any], now: datetime) -> None:
        """A ticket changed or arrived: update its row in place, or put a new one on top."""
        ref = t["reference"]
        if ref in self.tickets:
            self.tickets[ref] = t
            for (key, _), cell in zip(COLUMNS, self.cells(t, now)):
                self.update_cell(ref, key, cell)
            return
        selected = self.selected_ref
        self.tickets[ref] = t
        self.order.insert(0, ref)
        self.total += 1
        # DataTable appends only; rebuilding the loaded rows (a few pages) keeps the order.
        self.clear()
        for key in self.order:
            self.add_row(*self.cells(self.tickets[key], now), key=key)
        if selected is not None:
            self.move_cursor(row=self.order.index(selected), animate=False)

    def refresh_countdowns(self, now: datetime) -> None:
        for ref in self.order:
            t = self.tickets[ref]
            if t.get("sla_due_at"):
                self.update_cell(ref, "sla", countdown(t["sla_due_at"], t.get("sla_warn_at"), now, self.prefs))

    def status_line(self) -> str:
        return f"{number(len(self.order), self.prefs)} / {number(self.total, self.prefs)}"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= len(self.order) - PREFETCH and len(self.order) < self.total:
            self.post_message(self.NeedMore())
