"""Business-time arithmetic over the Iranian week, official holidays and Tehran time."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.policies import holiday_warnings
from router.calendar import TEHRAN, BusinessCalendar, official_year, week_from_names

DEFAULT = BusinessCalendar()
H = timedelta(hours=1)


def teh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TEHRAN)


# Saturday-Wednesday 08:00-17:00, Thursday closed: the week under which the issue's example
# ("16:50 on Wednesday + 4 working hours is due on Saturday") holds.
THURSDAY_CLOSED = BusinessCalendar(
    week=week_from_names(
        {d: [("08:00", "17:00")] for d in ("saturday", "sunday", "monday", "tuesday", "wednesday")}
    )
)


# fmt: off
ADD_CASES = [
    # (why, start, duration, expected due) on the default calendar, October 2025 (no holidays)
    ("within a Saturday", teh(2025, 10, 4, 9), 2 * H, teh(2025, 10, 4, 11)),
    ("Wednesday evening rolls to Thursday", teh(2025, 10, 1, 15), 2 * H, teh(2025, 10, 2, 9)),
    ("Thursday half day then Friday off", teh(2025, 10, 2, 11), 2 * H, teh(2025, 10, 4, 9)),
    ("start on a Friday waits for Saturday", teh(2025, 10, 3, 10), H, teh(2025, 10, 4, 9)),
    ("start after hours", teh(2025, 10, 1, 20), H / 2, teh(2025, 10, 2, 8, 30)),
    ("start before opening", teh(2025, 10, 5, 6), H, teh(2025, 10, 5, 9)),
    ("zero duration is the start itself", teh(2025, 10, 2, 13), timedelta(0), teh(2025, 10, 2, 13)),
    # Default week: 16:50 Wednesday is after the 16:00 close, and the 4 h Thursday half day holds
    # the whole target, ending exactly at its close.
    ("16:50 Wed + 4h, default week", teh(2025, 10, 1, 16, 50), 4 * H, teh(2025, 10, 2, 12)),
    ("16:50 Wed + 4h01, default week", teh(2025, 10, 1, 16, 50), 4 * H + timedelta(minutes=1),
     teh(2025, 10, 4, 8, 1)),
    ("one full week is 44 hours", teh(2025, 10, 4, 8), 44 * H, teh(2025, 10, 9, 12)),
    ("four weeks", teh(2025, 10, 4, 8), 4 * 44 * H, teh(2025, 10, 30, 12)),
    # Nowruz 1405: Fri 20 Mar 2026 (29 Esfand, oil nationalisation day) to Tue 24 Mar (4 Farvardin)
    ("across Nowruz 1405", teh(2026, 3, 19, 11), 2 * H, teh(2026, 3, 25, 9)),
    # Tasua and Ashura 1448 fall on Wed 24 and Thu 25 June 2026
    ("across Tasua and Ashura 2026", teh(2026, 6, 23, 15), 2 * H, teh(2026, 6, 27, 9)),
    # ... and on Sat 5 and Sun 6 July 2025, eleven days later in the solar year
    ("across Tasua and Ashura 2025", teh(2025, 7, 3, 11), 2 * H, teh(2025, 7, 7, 9)),
    ("start given in UTC", datetime(2025, 10, 4, 5, 30, tzinfo=ZoneInfo("UTC")), H,
     teh(2025, 10, 4, 10)),
    # 1405 ends on Sat 20 Mar 2027 (29 Esfand, a holiday); Nowruz 1406 closes Sun 21 to Wed 24:
    # Wednesday's last hour, Thursday's half day, then Thursday 5 Farvardin.
    ("across the 1405/1406 year end", teh(2027, 3, 17, 15), 6 * H, teh(2027, 3, 25, 9)),
    # 20:00 UTC is already the next Tehran day (00:30 Thursday): its hours are Thursday's.
    ("a UTC evening is the next Tehran morning", datetime(2027, 3, 17, 20, tzinfo=ZoneInfo("UTC")), H,
     teh(2027, 3, 18, 9)),
]
# fmt: on


@pytest.mark.parametrize(("why", "start", "duration", "due"), ADD_CASES, ids=[c[0] for c in ADD_CASES])
def test_add_business_time(why: str, start: datetime, duration: timedelta, due: datetime) -> None:
    result = DEFAULT.add_business_time(start, duration)
    assert result == due
    assert result.tzinfo == TEHRAN
    assert DEFAULT.business_time_between(start, result) == duration


def test_issue_example_wednesday_1650_is_due_saturday_when_thursday_is_closed() -> None:
    start = teh(2025, 10, 1, 16, 50)  # a Wednesday
    assert start.strftime("%A") == "Wednesday"
    # 10 minutes on Wednesday, Thursday and Friday closed, 3 h 50 on Saturday.
    assert THURSDAY_CLOSED.add_business_time(start, 4 * H) == teh(2025, 10, 4, 11, 50)


def test_issue_example_unless_saturday_is_a_holiday() -> None:
    # Eid al-Ghadir fell on Saturday 14 June 2025.
    assert holidays.country_holidays("IR", years=2025).get(date(2025, 6, 14)) == "Eid al-Ghadir"
    start = teh(2025, 6, 11, 16, 50)
    assert THURSDAY_CLOSED.add_business_time(start, 4 * H) == teh(2025, 6, 15, 11, 50)
    extra = BusinessCalendar(week=THURSDAY_CLOSED.week, extra_closed=frozenset({date(2025, 10, 4)}))
    assert extra.add_business_time(teh(2025, 10, 1, 16, 50), 4 * H) == teh(2025, 10, 5, 11, 50)


def test_package_holidays_used_in_the_table() -> None:
    ir = holidays.country_holidays("IR", years=[2025, 2026])
    for day in (20, 21, 22, 23, 24):
        assert date(2026, 3, day) in ir
    assert "Nowruz" in ir[date(2026, 3, 21)]
    assert ir[date(2026, 6, 25)] == "Ashura" and ir[date(2025, 7, 6)] == "Ashura"


@pytest.mark.parametrize(
    ("moment", "is_open", "next_open"),
    [
        (teh(2025, 10, 4, 8), True, teh(2025, 10, 4, 8)),  # opening instant is open
        (teh(2025, 10, 4, 16), False, teh(2025, 10, 5, 8)),  # closing instant is closed
        (teh(2025, 10, 2, 11, 59), True, teh(2025, 10, 2, 11, 59)),  # Thursday morning
        (teh(2025, 10, 2, 12), False, teh(2025, 10, 4, 8)),  # Thursday afternoon
        (teh(2025, 10, 3, 10), False, teh(2025, 10, 4, 8)),  # Friday
        (teh(2026, 3, 21, 10), False, teh(2026, 3, 25, 8)),  # Nowruz
    ],
)
def test_is_open_and_next_open(moment: datetime, is_open: bool, next_open: datetime) -> None:
    assert DEFAULT.is_open(moment) is is_open
    assert DEFAULT.next_open(moment) == next_open


def test_business_time_between_counts_only_open_hours() -> None:
    assert DEFAULT.business_time_between(teh(2025, 10, 4, 8), teh(2025, 11, 1, 8)) == 4 * 44 * H
    assert DEFAULT.business_time_between(teh(2025, 10, 2, 11), teh(2025, 10, 4, 9)) == 2 * H
    assert DEFAULT.business_time_between(teh(2025, 10, 4, 9), teh(2025, 10, 2, 11)) == -2 * H
    assert DEFAULT.business_time_between(teh(2025, 10, 3, 0), teh(2025, 10, 3, 23)) == timedelta(0)


def test_tehran_has_no_dst_since_2023() -> None:
    assert teh(2022, 6, 1).utcoffset() == timedelta(hours=4, minutes=30)
    for month in range(1, 13):
        assert teh(2026, month, 15).utcoffset() == timedelta(hours=3, minutes=30)
    # Around the old 1 Farvardin and 31 Shahrivar switch dates a working day is still 8 hours.
    assert DEFAULT.business_time_between(teh(2026, 9, 21, 0), teh(2026, 9, 22, 23)) == 16 * H
    assert DEFAULT.add_business_time(teh(2026, 9, 21, 15), 2 * H) == teh(2026, 9, 22, 9)


def test_durations_are_absolute_time_in_a_zone_with_dst() -> None:
    berlin = BusinessCalendar(
        tz=ZoneInfo("Europe/Berlin"),
        week=week_from_names({d: [("00:00", "24:00")] for d in ("saturday", "sunday", "monday")}),
        official_holidays=None,
    )
    spring_forward = datetime(2025, 3, 30, tzinfo=berlin.tz)
    assert berlin.business_time_between(spring_forward, spring_forward + timedelta(days=1)) == 23 * H


def test_twenty_four_seven_counts_every_instant() -> None:
    always = BusinessCalendar(twenty_four_seven=True)
    start = teh(2026, 3, 20, 23)  # a Friday and a holiday
    assert always.is_open(start)
    assert always.next_open(start) == start
    assert always.add_business_time(start, 30 * H) == teh(2026, 3, 22, 5)
    assert always.business_time_between(start, teh(2026, 3, 22, 5)) == 30 * H


def test_add_business_days_counts_whole_open_days() -> None:
    # Wednesday + 3 business days: Thursday (half day counts as a day), Saturday, Sunday.
    assert DEFAULT.add_business_days(teh(2025, 10, 1, 10), 3) == teh(2025, 10, 5, 10)
    assert DEFAULT.add_business_days(teh(2026, 3, 18, 10), 2) == teh(2026, 3, 25, 10)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DEFAULT.add_business_time(datetime(2025, 10, 1, 10), H)


def test_bad_configuration_names_the_day() -> None:
    with pytest.raises(ValueError, match="thursday"):
        BusinessCalendar(week=week_from_names({"thursday": [("12:00", "08:00")]}))
    with pytest.raises(ValueError, match="unknown weekday 'jomeh'"):
        week_from_names({"jomeh": [("08:00", "12:00")]})
    with pytest.raises(ValueError, match="at least one open interval"):
        BusinessCalendar(week=((),) * 7)
    assert week_from_names({"Saturday": [("08:00", "24:00")]})[5] == ((time(8), time(0)),)


def test_a_year_long_target_is_fast() -> None:
    start = teh(2025, 1, 1, 9)
    due = DEFAULT.add_business_time(start, 2000 * H)
    assert DEFAULT.business_time_between(start, due) == 2000 * H


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(TEHRAN)
)


@settings(max_examples=150, deadline=None)
@given(start=moments, duration=st.timedeltas(timedelta(0), timedelta(hours=300)))
def test_add_then_measure_round_trips(start: datetime, duration: timedelta) -> None:
    due = DEFAULT.add_business_time(start, duration)
    assert due >= start
    assert DEFAULT.business_time_between(start, due) == duration
    if duration:
        # The earliest such instant: any earlier and the duration is not yet used up.
        assert DEFAULT.business_time_between(start, due - timedelta(microseconds=1)) < duration


@settings(max_examples=150, deadline=None)
@given(moment=moments)
def test_next_open_is_open_and_nothing_opens_before_it(moment: datetime) -> None:
    opened = DEFAULT.next_open(moment)
    assert DEFAULT.is_open(opened)
    assert DEFAULT.business_time_between(moment, opened) == timedelta(0)


# Open across midnight: Saturday's evening interval closes at 24:00 and Sunday opens at 00:00.
ACROSS_MIDNIGHT = BusinessCalendar(week=week_from_names({"saturday": [("08:00", "12:00"), ("18:00", "24:00")],
                                                          "sunday": [("00:00", "06:30")]}))


def test_a_deadline_crossing_midnight_goes_on_into_the_next_days_hours() -> None:
    # Sat 20 Mar 2027 is 29 Esfand (closed): the week after, one hour is Saturday's 24:00 close
    # itself (not Sunday's opening), and two run into Sunday.
    assert ACROSS_MIDNIGHT.is_closed_day(date(2027, 3, 20))
    assert ACROSS_MIDNIGHT.add_business_time(teh(2027, 3, 20, 23), H) == teh(2027, 3, 27, 9)
    assert ACROSS_MIDNIGHT.add_business_time(teh(2027, 3, 27, 23), H) == teh(2027, 3, 28, 0)
    assert ACROSS_MIDNIGHT.add_business_time(teh(2027, 3, 27, 23), 2 * H) == teh(2027, 3, 28, 1)
    assert ACROSS_MIDNIGHT.business_time_between(teh(2027, 3, 27, 23), teh(2027, 3, 28, 1)) == 2 * H


@settings(max_examples=150, deadline=None)
@given(start=moments, duration=st.timedeltas(timedelta(0), timedelta(hours=300)))
def test_add_then_measure_round_trips_across_midnight(start: datetime, duration: timedelta) -> None:
    due = ACROSS_MIDNIGHT.add_business_time(start, duration)
    assert due >= start and ACROSS_MIDNIGHT.business_time_between(start, due) == duration
    if duration:
        assert ACROSS_MIDNIGHT.business_time_between(start, due - timedelta(microseconds=1)) < duration


# -- official holidays the package only estimates, or does not know ----------------------------

EID_AL_FITR_2027 = date(2027, 3, 10)  # a Wednesday; the package's estimate, not an announcement


def test_lunar_holidays_ahead_are_marked_estimated_and_announced_ones_are_not() -> None:
    assert official_year("IR", 2026).estimated == frozenset()
    year = official_year("IR", 2027)
    assert EID_AL_FITR_2027 in year.estimated and EID_AL_FITR_2027 in year.days
    assert date(2027, 3, 21) in year.days and date(2027, 3, 21) not in year.estimated  # Nowruz: solar


def test_an_estimated_holiday_can_be_declared_open_and_the_real_one_closed() -> None:
    # Eid al-Fitr announced for Thursday 11 March rather than the estimated Wednesday.
    start = teh(2027, 3, 9, 15)  # Tuesday, an hour before closing
    assert DEFAULT.add_business_time(start, 2 * H) == teh(2027, 3, 13, 9)  # 10, 11 estimated, 12 Friday
    moved = BusinessCalendar(extra_open=frozenset({EID_AL_FITR_2027}), extra_closed=frozenset({date(2027, 3, 11)}))
    assert moved.add_business_time(start, 2 * H) == teh(2027, 3, 10, 9)
    assert not moved.is_closed_day(EID_AL_FITR_2027) and moved.is_closed_day(date(2027, 3, 11))
    assert BusinessCalendar(extra_open=frozenset({date(2027, 3, 12)})).is_closed_day(date(2027, 3, 12))  # a Friday


def test_estimated_holidays_are_named_until_settled_in_extra_closed_or_extra_open() -> None:
    (warning,) = holiday_warnings(DEFAULT, [2026, 2027])
    estimated = sorted(official_year("IR", 2027).estimated)
    assert f"{len(estimated)} holidays of 2027 are only estimates" in warning
    assert "2027-03-10 (1405-12-19)" in warning and "extra_open" in warning
    settled = BusinessCalendar(extra_closed=frozenset(estimated[1:]), extra_open=frozenset(estimated[:1]))
    assert holiday_warnings(settled, [2027]) == []
    assert holiday_warnings(BusinessCalendar(official_holidays=None), [2027]) == []


def test_a_year_past_the_package_data_is_not_silently_holiday_free() -> None:
    assert official_year("IR", 2101).days == frozenset()
    (warning,) = holiday_warnings(DEFAULT, [2101])
    assert "has no holidays for 2101, so every day of it counts as a working day" in warning
