"""Report figures over a period, overall and by insurer, queue, agent, channel or line of
business, and their renderings: a text table and an HTML page (Jalali dates), CSV and JSON.
A ticket's group is what it has when the report is made: its assignee, its queue, the channel
that opened it. By agent, three figures go instead to whoever did the work (or held the ticket
when it went wrong), so a colleague's answer, or a late ticket handed on, lands where it belongs:
- first response: the agent who sent the first answer (its author);
- closed and resolution: the agent who closed the ticket (the actor of its last closing in the
  period); a closing by a workflow rule is "(automatic)";
- SLA clocks, compliance and breaches: a breached clock is charged to the ticket's holder at the
  breach (its due instant, from the `assigned`/`unassigned` timeline: an SLA `reassign` hands the
  ticket on only after it), a met or stopped one to the holder when it stopped, a running one to
  the current assignee; "(unassigned)" when nobody held it.
The other figures (opened, backlog, time in status, reopen rate, channel mix, contacts per claim)
stay with the current assignee.

What each figure means (all times in hours; a period is [start, end) in Tehran days):
- opened: tickets created in the period; closed: tickets with a closing (a status change to
  closed, merges included) in it.
- backlog: tickets created before the end and not closed at it; age = end (or now, if sooner)
  minus creation, median and p90.
- first response: for tickets opened in the period, creation to the first message an agent
  sent on the ticket (automatic acknowledgements do not count). A merge moves the source's thread
  to the target, answers included; an answer still counts for the ticket it was sent on, as its
  SLA clock did: the source was answered then, by that agent, and the target's customer was not
  (their claim was another thread until the merge). So a ticket merged away keeps its first
  response, and answers that came with a merged-in thread are not the target's. The outbox keeps
  the reference each answer was queued under; it is read only for the tickets merges touched.
  Resolution: creation to the last closing in the period, for tickets closed in it. Median and
  p90 (nearest rank), each twice: in clock hours (`..._h`) and in business hours
  (`..._business_h`), the latter counted on the business calendar of the ticket's SLA policy
  (the "business" calendar when it has none), as its SLA clocks count: a mail at 17:00 on a
  Wednesday answered at 08:30 on Saturday is 63.5 clock hours, and 4.5 business hours
  (Thursday's half day and Saturday's first half hour).
- SLA: the clocks of tickets opened in the period (when the SLA tables exist), each one counted,
  a replaced one too (the next response after every customer message, the resolution after a
  reopen), each in one outcome: met in time; breached (a breach recorded, or a clock still
  running past its due instant that the scheduler has not fired yet: it is late all the same);
  pending (still running, not yet due, paused included: it has not complied yet); cancelled
  (stopped before its due instant with nothing owed: a response clock when the ticket closed
  unanswered, the clocks of a ticket merged away, a replaced clock that was neither met nor late
  when it was replaced). sla_clocks = met + breached + pending + cancelled; compliance % = met /
  (met + breached): a clock counts once it is decided, and only if something was owed.
  Breaches = clocks whose breach falls in the period (an unfired one's at its due instant, as the
  scheduler will date it).
- time in status: hours every ticket spent in each status inside the period (the bottleneck view).
- reopen rate: of the tickets opened in the period that were ever closed, the share reopened.
- channel mix: customer messages received in the period, per channel (auto-replies and bounces
  threaded onto a ticket are not the customer's: they do not count, here or below).
- contacts per claim: customer messages per ticket opened in the period.
Closings, the backlog and time in status are rebuilt from the timeline's `status_changed`
events, not from `closed_at` (which a reopen clears): later events do not change a past period.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any

from persiantools.jdatetime import JalaliDate

from ingest.store import Store, iso, utcnow
from router.calendar import BusinessCalendar, parse_day
from router.claimref import TEHRAN

if TYPE_CHECKING:
    from config.policies import Policies

DIMENSIONS: dict[str, str] = {
    "insurer": "CASE t.insurer WHEN '' THEN '(none)' ELSE t.insurer END",
    "queue": "t.queue",
    "agent": "coalesce(t.assignee, '(unassigned)')",
    "channel": "t.channel",
    "line_of_business": "t.line_of_business",
}
FORMATS = ("table", "csv", "json", "html")
TOTAL = "total"

# Authors of automatic messages: the acknowledgement ('system'), workflow templates ('workflow':
# reminders, a rule's send_template), none of which meets a response target; as actors, what
# rules and the daemon itself do.
_AUTOMATIC = "('', 'system', 'workflow')"
# A message `m` an agent sent the customer; _ANSWERS: those on ticket `t`. A merge moves the
# source's to the target: see `_merged_first_answers`.
_ANSWER = f"m.direction = 'out' AND m.author NOT IN {_AUTOMATIC}"
_ANSWERS = f"FROM messages m WHERE m.ticket_id = t.id AND {_ANSWER}"


def _holder_at(instant: str) -> str:
    """SQL: the assignee of ticket `t` just before `instant`, from its assignment events."""
    return ("coalesce((SELECT json_extract(a.data, '$.new') FROM events a WHERE a.ticket_id = t.id"
            f" AND a.kind IN ('assigned', 'unassigned') AND a.at < {instant} ORDER BY a.at DESC, a.id DESC LIMIT 1),"
            " '(unassigned)')")


# By agent: who answered first (of tickets `t`), who closed (closings `c`), who held the ticket
# when its clock (`c`) was decided. See the module docstring.
_FIRST_ANSWERER = f"(SELECT m.author {_ANSWERS} ORDER BY m.created_at LIMIT 1)"
_CLOSER = f"CASE WHEN c.actor IN {_AUTOMATIC} THEN '(automatic)' ELSE c.actor END"
# An SLA clock `c` neither met, breached nor cancelled. Its state is written when the clock
# changes or the scheduler fires, so one past its due instant can still read 'ok' or 'warning'.
_UNDECIDED = "(c.breached_at IS NULL AND c.state NOT IN ('met', 'breached', 'cancelled'))"


@dataclass(frozen=True, slots=True)
class _ClockSql:
    """SQL over an SLA clock `c` of ticket `t` in one table (see the module docstring). `as_of`:
    the instant an undecided clock is judged at; `live`: whether an undecided clock can still be
    running (the live table) rather than stopped (a replaced one)."""

    table: str
    as_of: str
    live: bool

    @property
    def overdue(self) -> str:
        return f"({_UNDECIDED} AND c.due_at <= {self.as_of})"

    @property
    def outcome(self) -> str:
        pending = f"WHEN {_UNDECIDED} THEN 'pending' " if self.live else ""
        return (f"CASE WHEN c.breached_at IS NOT NULL OR c.state = 'breached' OR {self.overdue} THEN 'breached'"
                f" WHEN c.state = 'met' THEN 'met' {pending}ELSE 'cancelled' END")

    @property
    def breached_at(self) -> str:
        """When it breached: recorded, or the due instant of an overdue one the scheduler has not fired."""
        return f"coalesce(c.breached_at, CASE WHEN {self.overdue} THEN c.due_at END)"

    @property
    def holder(self) -> str:
        """By agent: who held the ticket when the clock was decided (see the module docstring)."""
        decided = f"coalesce({self.breached_at}, c.met_at)"
        return f"CASE WHEN {decided} IS NULL THEN {DIMENSIONS['agent']} ELSE {_holder_at(decided)} END"


# A live clock is judged now; a replaced one when it was replaced (a new clock of its kind took
# over what was owed).
_CLOCKS = (_ClockSql("sla_clocks", ":now", live=True),
           _ClockSql("sla_clock_history", "c.replaced_at", live=False))


# -- periods ------------------------------------------------------------------------------------


def period_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in Tehran time."""
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    start = datetime(first.year, first.month, first.day, tzinfo=TEHRAN)
    try:
        end = datetime(last.year, last.month, last.day, tzinfo=TEHRAN) + timedelta(days=1)
    except OverflowError:  # 9999-12-31 has no next day
        raise ValueError(f"the period ends ({last}) past the last day a report can end on") from None
    return start, end


def jalali(moment: datetime | date) -> str:
    day = moment.astimezone(TEHRAN).date() if isinstance(moment, datetime) else moment
    return JalaliDate(day).strftime("%Y/%m/%d")


# -- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _round(value: float | None) -> float | None:
    # + 0.0: a business-hours difference of -1e-12 (no business time) must read 0, not -0.
    return None if value is None else round(value, 2) + 0.0


@dataclass(frozen=True, slots=True)
class Figures:
    key: str
    opened: int = 0
    closed: int = 0
    backlog: int = 0
    backlog_age_median_h: float | None = None
    backlog_age_p90_h: float | None = None
    first_response_median_h: float | None = None
    first_response_p90_h: float | None = None
    first_responses: int = 0
    first_response_median_business_h: float | None = None
    first_response_p90_business_h: float | None = None
    resolution_median_h: float | None = None
    resolution_p90_h: float | None = None
    resolution_median_business_h: float | None = None
    resolution_p90_business_h: float | None = None
    sla_clocks: int | None = None
    sla_clocks_met: int | None = None
    sla_clocks_breached: int | None = None
    sla_clocks_pending: int | None = None
    sla_clocks_cancelled: int | None = None
    sla_compliance_pct: float | None = None
    sla_breaches: int | None = None
    reopen_rate_pct: float | None = None
    contacts_per_claim: float | None = None
    status_hours: dict[str, float] = field(default_factory=dict)
    channel_mix: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    start: str
    end: str
    start_jalali: str
    last_day_jalali: str
    by: str | None
    generated_at: str
    total: Figures
    groups: list[Figures]
    daily: list[dict[str, Any]]


@dataclass
class _Acc:
    """Per-group raw values, folded into Figures at the end."""

    opened: int = 0
    closed: int = 0
    backlog_ages: list[float] = field(default_factory=list)
    first_responses: list[float] = field(default_factory=list)
    first_responses_business: list[float] = field(default_factory=list)
    resolutions: list[float] = field(default_factory=list)
    resolutions_business: list[float] = field(default_factory=list)
    sla_outcomes: Counter = field(default_factory=Counter)  # met, breached, pending, cancelled
    sla_breaches: int = 0
    ever_closed: int = 0
    reopened: int = 0
    inbound: int = 0
    status_hours: Counter = field(default_factory=Counter)
    channel_mix: Counter = field(default_factory=Counter)

    def figures(self, key: str, has_sla: bool) -> Figures:
        return Figures(
            key=key, opened=self.opened, closed=self.closed, backlog=len(self.backlog_ages),
            backlog_age_median_h=_round(percentile(self.backlog_ages, 0.5)),
            backlog_age_p90_h=_round(percentile(self.backlog_ages, 0.9)),
            first_response_median_h=_round(percentile(self.first_responses, 0.5)),
            first_response_p90_h=_round(percentile(self.first_responses, 0.9)),
            first_responses=len(self.first_responses),
            first_response_median_business_h=_round(percentile(self.first_responses_business, 0.5)),
            first_response_p90_business_h=_round(percentile(self.first_responses_business, 0.9)),
            resolution_median_h=_round(percentile(self.resolutions, 0.5)),
            resolution_p90_h=_round(percentile(self.resolutions, 0.9)),
            resolution_median_business_h=_round(percentile(self.resolutions_business, 0.5)),
            resolution_p90_business_h=_round(percentile(self.resolutions_business, 0.9)),
            **self._sla(has_sla),
            reopen_rate_pct=_round(100 * self.reopened / self.ever_closed) if self.ever_closed else None,
            contacts_per_claim=_round(self.inbound / self.opened) if self.opened else None,
            status_hours={k: round(v, 2) for k, v in sorted(self.status_hours.items())},
            channel_mix=dict(sorted(self.channel_mix.items())),
        )

    def _sla(self, has_sla: bool) -> dict[str, Any]:
        if not has_sla:
            return {}
        outcomes = self.sla_outcomes
        decided = outcomes["met"] + outcomes["breached"]
        return {"sla_clocks": sum(outcomes.values()), "sla_clocks_met": outcomes["met"],
                "sla_clocks_breached": outcomes["breached"], "sla_clocks_pending": outcomes["pending"],
                "sla_clocks_cancelled": outcomes["cancelled"],
                "sla_compliance_pct": _round(100 * outcomes["met"] / decided) if decided else None,
                "sla_breaches": self.sla_breaches}


def _h(column: str) -> str:
    """SQL for a stored ISO instant as hours since the Unix epoch: arithmetic in floats, in
    SQLite, rather than parsing a hundred thousand timestamps in Python."""
    return f"((julianday({column}) - 2440587.5) * 24.0)"


def _epoch_h(moment: datetime) -> float:
    return moment.timestamp() / 3600


def _tehran_day(hours: float) -> date:
    return datetime.fromtimestamp(hours * 3600, TEHRAN).date()


@dataclass(frozen=True, slots=True)
class ReportCalendars:
    """The business calendar each ticket's business hours are counted on: its SLA policy's
    (`by_policy`, by policy name), else `default` (the configured "business" calendar; without a
    configuration, the Iranian week with the official holidays)."""

    default: BusinessCalendar = field(default_factory=BusinessCalendar)
    by_policy: Mapping[str, BusinessCalendar] = field(default_factory=dict)

    @classmethod
    def from_policies(cls, policies: Policies) -> ReportCalendars:
        business = policies.business
        return cls(business, {p.name: policies.calendars.get(p.calendar, business) for p in policies.sla})

    def for_policy(self, name: str | None) -> BusinessCalendar:
        return self.by_policy.get(name, self.default) if name else self.default


class _BusinessHours:
    """Business hours between instants (epoch hours) on one calendar, for many tickets: an
    instant's offset from an origin day is the business hours of the whole days in between plus
    its overlap with its own day's open intervals; the difference of two offsets is the
    calendar's `business_time_between` of the two instants, whatever their span. Which hours are
    open (week, half days, holidays, zone) is the calendar's `open_intervals`, asked once per
    local day; a ticket costs two offsets, not a walk over the days it spans."""

    __slots__ = ("_before", "_days", "_hi", "_lo", "calendar")

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._days: dict[date, tuple[tuple[float, float], ...]] = {}  # open intervals in epoch hours
        self._before: dict[date, float] = {}  # business hours from the origin day's start to the day's
        self._lo: date | None = None
        self._hi: date | None = None

    def _intervals(self, day: date) -> tuple[tuple[float, float], ...]:
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = tuple((_epoch_h(o), _epoch_h(c)) for o, c in self.calendar.open_intervals(day))
        return known

    def _day_hours(self, day: date) -> float:
        return sum(c - o for o, c in self._intervals(day))

    def _offset_of_day(self, day: date) -> float:
        known = self._before.get(day)
        if known is not None:
            return known
        if self._lo is None or self._hi is None:
            self._lo = self._hi = day
            self._before[day] = 0.0
            return 0.0
        one = timedelta(days=1)
        while day > self._hi:
            self._before[self._hi + one] = self._before[self._hi] + self._day_hours(self._hi)
            self._hi += one
        while day < self._lo:
            self._lo -= one
            self._before[self._lo] = self._before[self._lo + one] - self._day_hours(self._lo)
        return self._before[day]

    def offset(self, hours: float) -> float:
        day = datetime.fromtimestamp(hours * 3600, self.calendar.tz).date()
        offset = self._offset_of_day(day)
        for o, c in self._intervals(day):  # in order
            if o >= hours:
                break
            offset += (c if c < hours else hours) - o
        return offset

    def between(self, a: float, b: float) -> float:
        return self.offset(b) - self.offset(a)


async def build_report(store: Store, start: datetime, end: datetime, by: str | None = None,
                       now: datetime | None = None, calendars: ReportCalendars | None = None) -> Report:
    """The figures for [start, end). `calendars` says which business calendar each ticket's
    business hours are counted on (default: ReportCalendars(), the Iranian week)."""
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"--by {by!r}: expected one of {', '.join(DIMENSIONS)}")
    now = now or utcnow()
    horizon = _epoch_h(min(end, now))
    dim = DIMENSIONS[by] if by else f"'{TOTAL}'"
    lo, hi = iso(start), iso(end)
    groups: dict[str, _Acc] = defaultdict(_Acc)
    total = _Acc()

    def both(key: str) -> tuple[_Acc, ...]:
        return (groups[key], total) if by else (total,)

    daily_opened: Counter = Counter()
    daily_closed: Counter = Counter()
    calendars = calendars or ReportCalendars()
    # One day-offset table per calendar, shared by the tickets whose policies use it.
    on_calendar: dict[int, _BusinessHours] = {}
    by_policy: dict[str | None, _BusinessHours] = {}

    def business(policy: str | None) -> _BusinessHours:
        found = by_policy.get(policy)
        if found is None:
            calendar = calendars.for_policy(policy)
            found = by_policy[policy] = on_calendar.setdefault(id(calendar), _BusinessHours(calendar))
        return found

    by_agent = by == "agent"
    # Opened in the period: first agent answer and customer messages per ticket, from the index;
    # the first answer of a ticket a merge touched, from its own answers wherever they are now.
    opened = await store.fetchall(
        f"SELECT {dim} AS g, t.id, t.ref, t.sla_policy AS policy, {_h('t.created_at')} AS created,"
        f" {_h(f'(SELECT min(m.created_at) {_ANSWERS})')} AS first_answer,"
        f" {_FIRST_ANSWERER if by_agent else 'NULL'} AS answered_by,"
        " (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in' AND m.auto_reason = '')"
        " AS inbound"
        " FROM tickets t WHERE t.created_at >= ? AND t.created_at < ?", (lo, hi))
    merged = await _merged_first_answers(store, opened, lo)
    for row in opened:
        daily_opened[_tehran_day(row["created"])] += 1
        first_answer, answered_by = row["first_answer"], row["answered_by"]
        if row["ref"] in merged:
            first_answer, author = merged[row["ref"]]
            answered_by = author if by_agent else None
        answered = first_answer is not None
        business_h = business(row["policy"]).between(row["created"], first_answer) if answered else 0.0
        for acc in both(row["g"]):
            acc.opened += 1
            acc.inbound += row["inbound"]
        if answered:
            for acc in both(answered_by or row["g"]):
                acc.first_responses.append(first_answer - row["created"])
                acc.first_responses_business.append(business_h)

    # Closed in the period: each ticket's last closing in it (through the events_closing index;
    # the actor is the max() row's, as SQLite defines a bare column beside it).
    for row in await store.fetchall(
        f"SELECT {_CLOSER if by_agent else dim} AS g, t.sla_policy AS policy, {_h('t.created_at')} AS created,"
        f" {_h('c.at')} AS closed FROM"
        f" (SELECT e.ticket_id, max(e.at) AS at{', e.actor' if by_agent else ''} FROM events e"
        " WHERE e.kind = 'status_changed'"
        "  AND json_extract(e.data, '$.new') = 'closed' AND e.at >= ? AND e.at < ? GROUP BY e.ticket_id) c"
        " JOIN tickets t ON t.id = c.ticket_id", (lo, hi)):
        daily_closed[_tehran_day(row["closed"])] += 1
        business_h = business(row["policy"]).between(row["created"], row["closed"])
        for acc in both(row["g"]):
            acc.closed += 1
            acc.resolutions.append(row["closed"] - row["created"])
            acc.resolutions_business.append(business_h)

    # Every ticket that existed and was not closed for good before the period (its last closing,
    # `closed_at`, is later; open ones through a partial index): the backlog at its end and the
    # time-in-status view both come from these.
    scope = await store.fetchall(
        f"SELECT t.id, {dim} AS g, {_h('t.created_at')} AS created FROM tickets t"
        " WHERE t.closed_at IS NULL AND t.created_at < ?"
        f" UNION ALL SELECT t.id, {dim}, {_h('t.created_at')} FROM tickets t"
        " WHERE t.closed_at >= ? AND t.created_at < ?", (hi, lo, hi))

    await _status_figures(store, scope, _epoch_h(start), _epoch_h(end), horizon, both)
    has_sla = await _sla_figures(store, None if by_agent else dim, lo, hi, iso(now), both)

    for row in await store.fetchall(
        f"SELECT {dim} AS g, m.channel, count(*) AS n FROM messages m"
        f"{' JOIN tickets t ON t.id = m.ticket_id' if by else ''}"
        " WHERE m.created_at >= ? AND m.created_at < ? AND m.direction = 'in' AND m.auto_reason = ''"
        " GROUP BY 1, 2", (lo, hi)):
        for acc in both(row["g"]):
            acc.channel_mix[row["channel"]] += row["n"]

    days = []
    day = start.astimezone(TEHRAN).date()
    while day < end.astimezone(TEHRAN).date():
        days.append({"date": day.isoformat(), "jalali": jalali(day), "opened": daily_opened[day],
                     "closed": daily_closed[day]})
        day += timedelta(days=1)
    return Report(
        start=iso(start) or "", end=iso(end) or "", start_jalali=jalali(start),
        last_day_jalali=jalali(end - timedelta(seconds=1)), by=by, generated_at=iso(now) or "",
        total=total.figures(TOTAL, has_sla),
        groups=[groups[k].figures(k, has_sla) for k in sorted(groups)] if by else [],
        daily=days,
    )


async def _merged_first_answers(store: Store, opened: list[Any],
                                since: str | None) -> dict[str, tuple[float | None, str | None]]:
    """The first answer (epoch hours, author; None, None for none) sent on each ticket of
    `opened` (rows with `id` and `ref`) that a merge moved answers away from or onto, wherever its
    thread is now: its own, known by the reference the outbox queued it under. Tickets no merge
    touched are left out: their answers are on them, and only theirs."""
    # The merges that can touch a ticket opened since `since` (its own, or one into it) came after
    # it was opened. A source's `closed_at` is its merge, and stays (a merged ticket takes no
    # action): the tickets_closed index finds them.
    merges: dict[str, tuple[str, int]] = {
        row["source"]: (row["target"], row["target_id"]) for row in await store.fetchall(
            "SELECT s.ref AS source, t.ref AS target, t.id AS target_id FROM tickets s"
            " JOIN tickets t ON t.ref = s.merged_into WHERE s.closed_at >= ? AND s.merged_into IS NOT NULL",
            (since,))}
    targets = {target for target, _ in merges.values()}
    thread_on: dict[str, int] = {}  # ticket ref -> the ticket holding its thread now
    for row in opened:
        if row["ref"] not in merges and row["ref"] not in targets:
            continue
        ref, ticket_id = row["ref"], row["id"]
        seen = {ref}
        while ref in merges and merges[ref][0] not in seen:  # along a chain of merges; a cycle ends it
            ref, ticket_id = merges[ref]
            seen.add(ref)
        thread_on[row["ref"]] = ticket_id
    if not thread_on:
        return {}
    first: dict[str, tuple[float | None, str | None]] = dict.fromkeys(thread_on, (None, None))
    # The answers on those threads, through their `outbound_queued` events (the outbox has no
    # index by ticket or message).
    for row in await store.fetchall(
        f"SELECT json_extract(o.payload, '$.ticket_ref') AS ref, m.author, {_h('m.created_at')} AS at"
        " FROM json_each(?) j JOIN events e ON e.ticket_id = j.value AND e.kind = 'outbound_queued'"
        " JOIN outbox o ON o.id = json_extract(e.data, '$.outbox_id') JOIN messages m ON m.id = o.message_row"
        f" WHERE {_ANSWER}", (json.dumps(sorted(set(thread_on.values()))),)):
        known = first.get(row["ref"])
        if known is not None and (known[0] is None or row["at"] < known[0]):
            first[row["ref"]] = (row["at"], row["author"])
    return first


async def _status_figures(store: Store, tickets: list[Any], start: float, end: float, horizon: float,
                          both: Any) -> None:
    """Hours in each status inside [start, horizon) rebuilt from the status changes, the backlog
    (not closed at `end`), and the reopen rate of the tickets opened in [start, end). Instants in
    epoch hours."""
    if not tickets:
        return
    changes: dict[int, list[tuple[float, int, str, str]]] = defaultdict(list)
    # The ids go in as one JSON array (no variable limit), joined through json_each.
    for row in await store.fetchall(
        f"SELECT e.ticket_id, e.id, {_h('e.at')} AS at, json_extract(e.data, '$.old') AS old,"
        " json_extract(e.data, '$.new') AS new"
        " FROM json_each(?) j JOIN events e ON e.ticket_id = j.value AND e.kind = 'status_changed'",
            (json.dumps([t["id"] for t in tickets]),)):
        changes[row["ticket_id"]].append((row["at"], row["id"], row["old"] or "", row["new"] or ""))
    for ticket in tickets:
        created = ticket["created"]
        # In time order: a closing given afterwards to a ticket merged before merges recorded one
        # (migration 5) has a later id than the changes that followed it.
        moves = sorted(changes.get(ticket["id"], ()))
        status, since = (moves[0][2] if moves else "new"), created
        at_end = status
        spans: list[tuple[str, float]] = []
        for at, _, _, new in moves:
            spans.append((status, min(at, horizon) - max(since, start)))
            status, since = new, at
            if at < end:
                at_end = new
        spans.append((status, horizon - max(since, start)))
        accs = both(ticket["g"])
        if at_end != "closed":
            for acc in accs:
                acc.backlog_ages.append(horizon - created)
        for name, hours in spans:
            if hours > 0 and name != "closed":
                for acc in accs:
                    acc.status_hours[name] += hours
        if start <= created < end:
            news = {move[3] for move in moves}
            if "closed" in news or "reopened" in news:
                for acc in accs:
                    acc.ever_closed += 1
                    acc.reopened += "reopened" in news


async def _sla_figures(store: Store, dim: str | None, lo: str | None, hi: str | None, now: str | None,
                      both: Any) -> bool:
    """The period's tickets' clocks by outcome, and the breaches in the period. `dim`: the group
    expression, None for the holder of each clock (by agent)."""
    exists = await store.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sla_clocks'")
    if not exists:
        return False
    span = {"lo": lo, "hi": hi, "now": now}
    # The live clocks and the ones they replaced: one query each, so each keeps its index.
    for clocks in _CLOCKS:
        group = dim or clocks.holder
        for row in await store.fetchall(
            f"SELECT {group} AS g, {clocks.outcome} AS outcome, count(*) AS n FROM {clocks.table} c"
            " JOIN tickets t ON t.id = c.ticket_id WHERE t.created_at >= :lo AND t.created_at < :hi GROUP BY 1, 2",
                span):
            for acc in both(row["g"]):
                acc.sla_outcomes[row["outcome"]] += row["n"]
        breaches = (f"SELECT {group} AS g, count(*) AS n FROM {clocks.table} c JOIN tickets t ON t.id = c.ticket_id"
                    " WHERE c.breached_at >= :lo AND c.breached_at < :hi GROUP BY 1")
        if clocks.live:
            # Breaches the scheduler has not fired yet, from its own index: a running clock's next
            # action (its warning or its due instant) is no later than its due instant.
            breaches += (f" UNION ALL SELECT {group}, count(*) FROM {clocks.table} c JOIN tickets t ON t.id = c.ticket_id"
                         f" WHERE c.next_at <= :now AND {clocks.overdue} AND c.due_at >= :lo AND c.due_at < :hi"
                         " GROUP BY 1")
        for row in await store.fetchall(breaches, span):
            for acc in both(row["g"]):
                acc.sla_breaches += row["n"]
    return True


# -- renderings ---------------------------------------------------------------------------------

HOURS_NOTE = ("clock h: elapsed hours; business h: working hours on the business calendar of each ticket's "
              "SLA policy (the \"business\" calendar when it has none), as its SLA clocks count them.")
SLA_NOTE = ("SLA: the clocks of the tickets opened in the period, each met in time, breached, pending (still "
            "running, not yet due) or cancelled (stopped with nothing owed); SLA % = met / (met + breached). "
            "Breaches in period: clocks whose breach falls in the period, of tickets opened at any time.")
_COLUMNS: list[tuple[str, str]] = [
    ("opened", "opened"), ("closed", "closed"), ("backlog", "backlog"),
    ("backlog_age_median_h", "backlog age med clock h"),
    ("first_response_median_h", "1st resp med clock h"), ("first_response_p90_h", "1st resp p90 clock h"),
    ("first_response_median_business_h", "1st resp med business h"),
    ("first_response_p90_business_h", "1st resp p90 business h"),
    ("resolution_median_h", "resol med clock h"), ("resolution_p90_h", "resol p90 clock h"),
    ("resolution_median_business_h", "resol med business h"), ("resolution_p90_business_h", "resol p90 business h"),
    ("sla_clocks", "SLA clocks"), ("sla_clocks_met", "SLA met"), ("sla_clocks_breached", "SLA breached"),
    ("sla_clocks_pending", "SLA pending"), ("sla_clocks_cancelled", "SLA cancelled"),
    ("sla_compliance_pct", "SLA %"), ("sla_breaches", "breaches in period"),
    ("reopen_rate_pct", "reopen %"), ("contacts_per_claim", "contacts/claim"),
]


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _rows(report: Report) -> list[Figures]:
    return [*report.groups, report.total]


def render_table(report: Report) -> str:
    head = f"Report {report.start_jalali} – {report.last_day_jalali}" + (f", by {report.by}" if report.by else "")
    names = [report.by or "", *(label for _, label in _COLUMNS)]
    body = [[f.key, *(_cell(getattr(f, attr)) for attr, _ in _COLUMNS)] for f in _rows(report)]
    widths = [max(len(r[i]) for r in [names, *body]) for i in range(len(names))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [head, "", line(names), line(["-" * w for w in widths]), *(line(r) for r in body), ""]
    out.append("Time in status (hours): " + ", ".join(f"{k} {v:g}" for k, v in report.total.status_hours.items()))
    out.append("Channel mix (messages in): " + ", ".join(f"{k} {v}" for k, v in report.total.channel_mix.items()))
    out += [HOURS_NOTE, SLA_NOTE]
    return "\n".join(out) + "\n"


def _flat(f: Figures, statuses: list[str], channels: list[str]) -> dict[str, Any]:
    row = {k: v for k, v in asdict(f).items() if k not in ("status_hours", "channel_mix")}
    row |= {f"hours_in_{s}": f.status_hours.get(s, 0) for s in statuses}
    row |= {f"messages_{c}": f.channel_mix.get(c, 0) for c in channels}
    return row


def render_csv(report: Report) -> str:
    statuses = sorted({s for f in _rows(report) for s in f.status_hours})
    channels = sorted({c for f in _rows(report) for c in f.channel_mix})
    rows = [_flat(f, statuses, channels) for f in _rows(report)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def render_json(report: Report) -> str:
    return json.dumps(asdict(report), ensure_ascii=False, indent=2) + "\n"


# Inline SVG charts: no scripts, fonts or images from anywhere, so the file can be mailed.
_PALETTE = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#718096", "#b7791f"]


def _svg_daily(days: list[dict[str, Any]]) -> str:
    width, height, pad = 720, 220, 30
    peak = max([1, *(max(d["opened"], d["closed"]) for d in days)])
    step = (width - 2 * pad) / max(1, len(days))
    bar = max(1.0, step / 2 - 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
             f' aria-label="tickets opened and closed per day">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>']
    for i, d in enumerate(days):
        x = pad + i * step
        for j, (kind, colour) in enumerate((("opened", _PALETTE[0]), ("closed", _PALETTE[1]))):
            h = (height - 2 * pad) * d[kind] / peak
            parts.append(f'<rect x="{x + j * bar:.1f}" y="{height - pad - h:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                         f' fill="{colour}"><title>{escape(d["jalali"])} {kind}: {d[kind]}</title></rect>')
        if len(days) <= 31 or i % max(1, len(days) // 15) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - pad + 14}" font-size="9">{escape(d["jalali"][5:])}</text>')
    parts.append(f'<text x="{pad}" y="14" font-size="11">max {peak}/day — '
                 f'<tspan fill="{_PALETTE[0]}">■ opened</tspan> <tspan fill="{_PALETTE[1]}">■ closed</tspan></text>')
    return "".join(parts) + "</svg>"


def _svg_bars(values: dict[str, float], unit: str, label: str) -> str:
    if not values:
        return "<p>No data.</p>"
    width, row_h, left = 720, 22, 190
    peak = max(values.values()) or 1
    height = row_h * len(values) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
             f' aria-label="{escape(label)}">']
    for i, (name, value) in enumerate(sorted(values.items(), key=lambda kv: -kv[1])):
        y = 5 + i * row_h
        w = (width - left - 90) * value / peak
        parts.append(f'<text x="{left - 6}" y="{y + 15}" font-size="12" text-anchor="end">{escape(name)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}"'
                     f' fill="{_PALETTE[i % len(_PALETTE)]}"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 15}" font-size="12">{_cell(value)} {escape(unit)}</text>')
    return "".join(parts) + "</svg>"


def render_html(report: Report) -> str:
    title = f"Parvandeh report {report.start_jalali} – {report.last_day_jalali}"
    header = "".join(f"<th>{escape(label)}</th>" for label in [report.by or "", *(l for _, l in _COLUMNS)])
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in [f.key, *(getattr(f, a) for a, _ in _COLUMNS)])
        + "</tr>" for f in _rows(report))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr:last-child td {{ font-weight: bold; }}
h2 {{ margin-top: 1.6em; font-size: 1.1em; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>Period {escape(report.start_jalali)} to {escape(report.last_day_jalali)} (Tehran days){
        escape(f', by {report.by}') if report.by else ''}; generated {escape(jalali(datetime.fromisoformat(report.generated_at)))}.</p>
<h2>Figures</h2>
<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>
<p>{escape(HOURS_NOTE)}</p>
<p>{escape(SLA_NOTE)}</p>
<h2>Tickets opened and closed per day</h2>
{_svg_daily(report.daily)}
<h2>Where claims wait: hours in each status</h2>
{_svg_bars(report.total.status_hours, "h", "hours in each status")}
<h2>Channel mix: customer messages received</h2>
{_svg_bars({k: float(v) for k, v in report.total.channel_mix.items()}, "", "messages per channel")}
</body></html>
"""


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json, "html": render_html}


# -- CLI ----------------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """`report` arguments, for run.py's `report` sub-command."""
    parser.add_argument("--from", dest="first", required=True, help="first day, Jalali (1404-07-01) or Gregorian")
    parser.add_argument("--to", dest="last", required=True, help="last day (inclusive)")
    parser.add_argument("--by", choices=list(DIMENSIONS), default=None)
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--output", default="-", help="file to write (default: standard output)")


def cli_report(settings: Any, args: argparse.Namespace) -> int:
    from config.loader import ConfigError
    from config.policies import load_policies

    try:
        start, end = period_bounds(parse_day(args.first), parse_day(args.last))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    # Business hours on the configured calendars ([calendar], [[sla.policies]] calendar = ...);
    # settings without the policy sections (no `extra`) count on the default Iranian week.
    try:
        calendars = (ReportCalendars.from_policies(load_policies(settings)) if hasattr(settings, "extra")
                     else ReportCalendars())
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2

    async def work() -> str:
        store = Store(settings.store.path, synchronous=settings.store.synchronous)
        await store.open()
        try:
            return RENDERERS[args.format](await build_report(store, start, end, args.by, calendars=calendars))
        finally:
            await store.close()

    text = asyncio.run(work())
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:  # a missing directory, no permission: say so, not a traceback
        print(f"--output {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
