"""Business calendars: when the firm is open, and business-time arithmetic over that.

Working hours are wall-clock times per weekday in the calendar's zone; durations are measured in
absolute time (UTC), so a zone with DST would still count real minutes. Every method is pure and
takes the moment it reasons about as an argument: there is no hidden clock.

Default calendar (the Iranian week, Asia/Tehran):
    Saturday-Wednesday 08:00-16:00, Thursday 08:00-12:00, Friday closed,
    closed on the official holidays of `holidays.country_holidays("IR")` and on `extra_closed`,
    open on an official holiday listed in `extra_open`.
The package only estimates lunar holidays it has no announced dates for (IR: from 2027, Jalali
1406; a day off either way is common) and knows none at all after its last year (IR: 2100): see
`official_year`, which config/policies.py uses to warn about both.
With these defaults a message at 16:50 on a Wednesday with a 4 working-hour target is due on
Thursday at 12:00 (the whole Thursday half day); it is due on Saturday only when the Thursday
half day is shorter than the target or Thursday is closed (see tests/test_calendar.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from persiantools.jdatetime import JalaliDate

Interval = tuple[time, time]
"""Opening hours within one day, [open, close). A close of 00:00 means midnight at day's end."""

DayHours = tuple[Interval, ...]

MIDNIGHT = time(0)
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_FULL_DAY: DayHours = ((time(8), time(16)),)
# Indexed by date.weekday(): Monday=0 ... Sunday=6.
IRANIAN_WEEK: tuple[DayHours, ...] = (
    _FULL_DAY,  # Monday (Doshanbeh)
    _FULL_DAY,  # Tuesday (Seshanbeh)
    _FULL_DAY,  # Wednesday (Chaharshanbeh)
    ((time(8), time(12)),),  # Thursday (Panjshanbeh): half day
    (),  # Friday (Jomeh): closed
    _FULL_DAY,  # Saturday (Shanbeh)
    _FULL_DAY,  # Sunday (Yekshanbeh)
)
TEHRAN = ZoneInfo("Asia/Tehran")


@dataclass(frozen=True, slots=True)
class OfficialYear:
    """A country's official holidays in one Gregorian year, per the `holidays` package."""

    days: frozenset[date]
    estimated: frozenset[date]
    """Days the package computed rather than took from an announcement (lunar holidays ahead)."""


@lru_cache(maxsize=64)
def official_year(country: str, year: int) -> OfficialYear:
    # Building a year of holidays costs milliseconds; calendars ask for the same few years
    # over and over, so compute each (country, year) once.
    table = holidays.country_holidays(country, years=year)
    # The package marks an estimate by the label in its names ("%s (estimated)" in English).
    label = getattr(table, "estimated_label", None)
    suffix = table.tr(label) % "" if label else None
    estimated = {day for day in table if suffix and any(name.endswith(suffix) for name in table.get_list(day))}
    return OfficialYear(frozenset(table), frozenset(estimated))


def week_from_names(spec: Mapping[str, Sequence[tuple[str, str]]]) -> tuple[DayHours, ...]:
    """Build a week from config data: {"saturday": [("08:00", "16:00")], ...}.

    Days not named are closed. Times are "HH:MM"; "24:00" as a close means end of day.
    Raises ValueError naming the day and value at fault.
    """
    week: list[DayHours] = [() for _ in WEEKDAY_NAMES]
    for name, intervals in spec.items():
        key = name.strip().lower()
        if key not in WEEKDAY_NAMES:
            raise ValueError(
                f"unknown weekday {name!r}: expected one of {', '.join(WEEKDAY_NAMES)}"
            )
        parsed: list[Interval] = []
        for opens, closes in intervals:
            try:
                parsed.append((time.fromisoformat(opens), _parse_close(closes)))
            except ValueError:
                raise ValueError(
                    f"{key}: bad hours {opens!r}-{closes!r}: expected 'HH:MM'-'HH:MM'"
                ) from None
        week[WEEKDAY_NAMES.index(key)] = tuple(parsed)
    return tuple(week)


def _parse_close(text: str) -> time:
    return MIDNIGHT if text.strip() == "24:00" else time.fromisoformat(text)


def _minutes(t: time, *, is_close: bool) -> float:
    minutes = t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6
    return 24 * 60 if is_close and t == MIDNIGHT else minutes


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working hours per weekday in `tz`, minus official holidays and `extra_closed` dates. An
    official holiday in `extra_open` is a working day (an estimated date that proved wrong).

    `twenty_four_seven=True` makes every instant business time (week and holidays are ignored).
    `official_holidays` is a `holidays` country code, or None for no official holidays.
    """

    tz: ZoneInfo = TEHRAN
    week: tuple[DayHours, ...] = IRANIAN_WEEK
    official_holidays: str | None = "IR"
    extra_closed: frozenset[date] = field(default_factory=frozenset)
    extra_open: frozenset[date] = field(default_factory=frozenset)
    twenty_four_seven: bool = False

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError(f"week must have 7 days (Monday first), got {len(self.week)}")
        for weekday, intervals in enumerate(self.week):
            previous_close = -1.0
            for opens, closes in intervals:
                start = _minutes(opens, is_close=False)
                end = _minutes(closes, is_close=True)
                if not previous_close <= start < end:
                    raise ValueError(
                        f"{WEEKDAY_NAMES[weekday]}: hours {opens:%H:%M}-{closes:%H:%M} must open "
                        "before they close and not overlap the day's earlier hours"
                    )
                previous_close = end
        # Without any open hour, adding business time would never terminate.
        if not self.twenty_four_seven and not any(self.week):
            raise ValueError("a calendar needs at least one open interval in the week")

    def is_closed_day(self, day: date) -> bool:
        """True when `day` (a local date) has no working hours at all."""
        if self.twenty_four_seven:
            return False
        return (
            not self.week[day.weekday()]
            or day in self.extra_closed
            or (
                self.official_holidays is not None
                and day not in self.extra_open
                and day in official_year(self.official_holidays, day.year).days
            )
        )

    def is_open(self, moment: datetime) -> bool:
        at = _utc(moment)
        if self.twenty_four_seven:
            return True
        return any(o <= at < c for o, c in self._intervals(at.astimezone(self.tz).date()))

    def next_open(self, moment: datetime) -> datetime:
        """`moment` itself when open, else the next opening time."""
        cursor = _utc(moment)
        if self.twenty_four_seven:
            return cursor.astimezone(self.tz)
        day = cursor.astimezone(self.tz).date()
        while True:
            for o, c in self._intervals(day):
                if c > cursor:
                    return max(o, cursor).astimezone(self.tz)
            day += timedelta(days=1)

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant at which `duration` of business time has passed since `start`.

        A result that exhausts an interval exactly is that interval's close (Thursday 12:00), not
        the next opening. Cost is one step per calendar day spanned; closed days cost a set lookup.
        """
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative, got {duration}")
        cursor = _utc(start)
        if self.twenty_four_seven or not duration:
            return (cursor + duration).astimezone(self.tz)
        remaining = duration
        day = cursor.astimezone(self.tz).date()
        while True:
            for o, c in self._intervals(day):
                if c <= cursor:
                    continue
                begin = max(o, cursor)
                available = c - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(self.tz)
                remaining -= available
            day += timedelta(days=1)

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Business time in [a, b); negative when b is before a."""
        start, end = _utc(a), _utc(b)
        if end < start:
            return -self.business_time_between(b, a)
        if self.twenty_four_seven:
            return end - start
        total = timedelta(0)
        day = start.astimezone(self.tz).date()
        last = end.astimezone(self.tz).date()
        while day <= last:
            for o, c in self._intervals(day):
                overlap = min(c, end) - max(o, start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The same wall-clock time on the `days`-th business day after `start`'s date.

        Used for "N business days in a status" reminders, where the half-day Thursday must count
        as a day rather than as four hours.
        """
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        local = _utc(start).astimezone(self.tz)
        day = local.date()
        remaining = days
        while remaining:
            day += timedelta(days=1)
            if not self.is_closed_day(day):
                remaining -= 1
        return datetime.combine(day, local.time(), tzinfo=self.tz)

    def open_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The business intervals of a local date, [open, close) as UTC datetimes, in order: the
        whole day for a 24x7 calendar, nothing on a closed day. `business_time_between` is the sum
        of their overlaps with [a, b), so callers measuring many instants (reports) can keep a
        day's intervals instead of asking for them again."""
        if self.twenty_four_seven:
            return ((datetime.combine(day, MIDNIGHT, tzinfo=self.tz).astimezone(UTC),
                     datetime.combine(day + timedelta(days=1), MIDNIGHT, tzinfo=self.tz).astimezone(UTC)),)
        return tuple(self._intervals(day))

    def _intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals of a local date as UTC datetimes, in order."""
        if self.is_closed_day(day):
            return
        for opens, closes in self.week[day.weekday()]:
            close_day = day + timedelta(days=1) if closes == MIDNIGHT else day
            yield (
                datetime.combine(day, opens, tzinfo=self.tz).astimezone(UTC),
                datetime.combine(close_day, closes, tzinfo=self.tz).astimezone(UTC),
            )


def _utc(moment: datetime) -> datetime:
    # Naive datetimes would silently mean "server local time"; refuse them.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def zone_label(tz: ZoneInfo) -> str:
    """ "Tehran time" for Asia/Tehran: how a time shown to customers and agents names its zone."""
    return f"{str(tz.key).rsplit('/', 1)[-1].replace('_', ' ')} time"


def parse_day(text: str) -> date:
    """A day as YYYY-MM-DD (or with '/'), Jalali when the year is below 1700, else Gregorian:
    how a report's period and the calendar's extra days are written."""
    try:
        year, month, day = (int(part) for part in text.strip().replace("/", "-").split("-"))
        return JalaliDate(year, month, day).to_gregorian() if year < 1700 else date(year, month, day)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r}: expected a day as YYYY-MM-DD (Jalali like 1404-07-01, or Gregorian)") from None
