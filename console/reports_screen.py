"""The reports screen: the `report` command's figures for the last 30 days, overall or by
insurer, queue, agent, channel or line of business, with small bar charts."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Label, Static

from console.app import ConsoleApp
from console.client import ApiRequestError
from console.key_bar import KeyBar
from console.keys import with_persian_layout
from console.labels import shown, shown_term, term, visual
from console.render import TEHRAN, Prefs, day, number

DIMENSIONS: tuple[str | None, ...] = (None, "insurer", "queue", "agent", "channel", "line_of_business")
PERIOD_DAYS = 30
BAR_WIDTH = 40


def bars(values: dict[str, float], prefs: Prefs, width: int = BAR_WIDTH) -> Text:
    """One line per key: a bar scaled to the largest value, and the value. Plain Text: keys
    may be customer-supplied (insurer names) and are never parsed as markup."""
    out = Text()
    top = max(values.values(), default=0) or 1
    label_width = max((len(k) for k in values), default=0)
    for key, value in values.items():
        out.append(f"{key:<{label_width}} ")
        out.append("█" * max(1 if value else 0, round(width * value / top)), style="cyan")
        out.append(f" {number(f'{value:g}', prefs)}\n")
    return out


def hours(value: float | None, prefs: Prefs) -> str:
    return "—" if value is None else shown("hours", prefs, value=number(f"{value:.1f}", prefs))


def percent(value: float | None, prefs: Prefs) -> str:
    """One decimal, cut rather than rounded: 99.96 % SLA compliance (a breach) must not read 100."""
    return "—" if value is None else number(f"{math.floor(value * 10) / 10:g}", prefs)


class ReportsScreen(Screen[None]):
    CSS_PATH = "reports_screen.tcss"
    BINDINGS = with_persian_layout([Binding("escape", "back", "key.back"), Binding("b", "next_dimension", "key.by"),
                                    Binding("g", "reload", "key.refresh")])

    def __init__(self) -> None:
        super().__init__()
        self.dimension_index = 0

    @property
    def console(self) -> ConsoleApp:
        return cast(ConsoleApp, self.app)

    def compose(self) -> ComposeResult:
        prefs = self.console.prefs
        yield Label(Text(shown("reports", prefs)), id="report-title", classes="section")
        yield DataTable(id="figures", cursor_type="row")
        yield Label(Text(shown("hours_note", prefs)), id="hours-note", classes="note")
        yield Label(Text(shown("opened_per_day", prefs)), classes="section")
        yield Static(id="daily")
        yield Label(Text(shown("channel_mix", prefs)), classes="section")
        yield Static(id="channels")
        yield KeyBar()

    def on_mount(self) -> None:
        # Medians in clock hours beside business hours (on each claim's SLA calendar, as its SLA
        # clocks count): 62 clock hours over a weekend can be under one business hour.
        figures = ("opened", "closed", "backlog", "first_clock", "first_business", "resolution_clock",
                   "resolution_business", "sla", "breaches", "reopen")
        self.query_one("#figures", DataTable).add_columns(
            "", *(shown(f"fig.{f}", self.console.prefs) for f in figures))
        self.action_reload()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_next_dimension(self) -> None:
        self.dimension_index = (self.dimension_index + 1) % len(DIMENSIONS)
        self.action_reload()

    @work(exclusive=True)
    async def action_reload(self) -> None:
        # The firm's day, as the report buckets it: after 20:30 UTC it is already tomorrow in Tehran.
        last = self.console.now().astimezone(TEHRAN).date()
        first = last - timedelta(days=PERIOD_DAYS - 1)
        by = DIMENSIONS[self.dimension_index]
        try:
            report: dict[str, Any] = await self.console.api("report", **{"from": first.isoformat(),
                                                                         "to": last.isoformat(), "by": by})
        except (ApiRequestError, ConnectionError):  # shown by `api`; the figures stay as they were
            return
        if not self.is_attached:  # left (esc) while the figures were on their way
            return
        prefs = self.console.prefs
        self.query_one("#report-title", Label).update(Text(shown(
            "reports_title", prefs, first=day(first, prefs), last=day(last, prefs),
            by=term("dimension", by or "total", prefs))))
        table = self.query_one("#figures", DataTable)
        table.clear()
        # The groups' own names (insurers, queues, agents) as the server sends them; channels, the
        # report's "(none)"-like groups and the total row as agents read them.
        rows = [(term("channel" if by == "channel" else "report_group", f["key"], prefs), f) for f in report["groups"]]
        rows.append((term("dimension", "total", prefs), report["total"]))
        for name, f in rows if by else rows[-1:]:
            table.add_row(Text(visual(name, prefs)), *(Text(number(f[k] or 0, prefs)) for k in ("opened", "closed", "backlog")),
                          Text(hours(f["first_response_median_h"], prefs)),
                          Text(hours(f.get("first_response_median_business_h"), prefs)),
                          Text(hours(f["resolution_median_h"], prefs)),
                          Text(hours(f.get("resolution_median_business_h"), prefs)),
                          Text(percent(f["sla_compliance_pct"], prefs)),
                          Text(number(f["sla_breaches"] or 0, prefs)), Text(percent(f["reopen_rate_pct"], prefs)))
        daily = {day(date.fromisoformat(d["date"]), prefs): d["opened"] for d in report["daily"]}
        self.query_one("#daily", Static).update(bars(daily, prefs))
        mix = {shown_term("channel", channel, prefs): n for channel, n in report["total"]["channel_mix"].items()}
        self.query_one("#channels", Static).update(bars(mix, prefs))
