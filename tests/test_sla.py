"""SLA clocks: due and warning times in business time, pauses, breaches, policy selection."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.calendar import TEHRAN, BusinessCalendar
from router.sla import (
    SlaClock,
    SlaPolicy,
    due_at,
    elapsed,
    mark_met,
    pause,
    resume,
    select_policy,
    start_clock,
    state,
    warn_at,
)

CAL = BusinessCalendar()
H = timedelta(hours=1)
POLICY = SlaPolicy("standard", first_response=4 * H, resolution=40 * H)


def teh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TEHRAN)


WED_10 = teh(2025, 10, 1, 10)  # a Wednesday in a month without holidays


def clock() -> SlaClock:
    started = start_clock(POLICY, "first_response", WED_10)
    assert started is not None
    return started


def test_running_clock_warns_at_75_percent_and_breaches_at_due() -> None:
    c = clock()
    assert due_at(c, CAL, WED_10) == teh(2025, 10, 1, 14)
    assert warn_at(c, CAL, WED_10) == teh(2025, 10, 1, 13)
    assert state(c, CAL, teh(2025, 10, 1, 12, 59)) == "ok"
    assert state(c, CAL, teh(2025, 10, 1, 13)) == "warning"
    assert state(c, CAL, teh(2025, 10, 1, 14)) == "breached"  # the due instant is already late


def test_no_target_means_no_clock() -> None:
    assert start_clock(POLICY, "next_response", WED_10) is None


@pytest.mark.parametrize(
    ("why", "pauses", "now", "expected_due", "expected_state"),
    [
        ("paused: no due time", [(teh(2025, 10, 1, 11), None)], teh(2025, 10, 1, 12), None, "paused"),
        # 1 h used before the pause, 3 h left from Saturday 09:00 (Thursday is spent paused).
        ("resumed on Saturday", [(teh(2025, 10, 1, 11), teh(2025, 10, 4, 9))], teh(2025, 10, 4, 9),
         teh(2025, 10, 4, 12), "ok"),
        # A pause over closed hours costs nothing: the due time does not move.
        ("pause outside hours", [(teh(2025, 10, 1, 17), teh(2025, 10, 2, 7))], teh(2025, 10, 2, 7),
         teh(2025, 10, 1, 14), "breached"),
        ("two pauses", [(teh(2025, 10, 1, 11), teh(2025, 10, 1, 12)),
                        (teh(2025, 10, 1, 13), teh(2025, 10, 1, 15))],
         teh(2025, 10, 1, 15), teh(2025, 10, 2, 9), "ok"),
        # Evaluated as of a moment before the pause began: as if the pause had not happened yet.
        ("as of before the pause", [(teh(2025, 10, 1, 13, 30), None)], teh(2025, 10, 1, 13, 15),
         teh(2025, 10, 1, 14), "warning"),
        # The deadline passed before the pause began: the breach and its time stand.
        ("breached, then paused", [(teh(2025, 10, 1, 15), None)], teh(2025, 10, 1, 16),
         teh(2025, 10, 1, 14), "breached"),
    ],
)
def test_pauses_and_resumptions(
    why: str,
    pauses: list[tuple[datetime, datetime | None]],
    now: datetime,
    expected_due: datetime | None,
    expected_state: str,
) -> None:
    c = clock()
    for start, end in pauses:
        c = pause(c, start)
        if end is not None:
            c = resume(c, end)
    assert due_at(c, CAL, now) == expected_due
    assert state(c, CAL, now) == expected_state


def test_a_clock_resumed_during_nowruz_waits_for_the_first_working_day() -> None:
    """Started Wed 26 Esfand 1405 10:00, paused at 12:00 (2 h used), resumed on Mon 2 Farvardin
    1406 (a Nowruz holiday): the 2 h left run from Thu 5 Farvardin 08:00."""
    c = start_clock(POLICY, "first_response", teh(2027, 3, 17, 10))
    assert c is not None
    c = resume(pause(c, teh(2027, 3, 17, 12)), teh(2027, 3, 22, 10))
    assert due_at(c, CAL, teh(2027, 3, 22, 10)) == teh(2027, 3, 25, 10)
    assert warn_at(c, CAL, teh(2027, 3, 22, 10)) == teh(2027, 3, 25, 9)
    assert elapsed(c, CAL, teh(2027, 3, 24, 23)) == 2 * H
    assert state(c, CAL, teh(2027, 3, 25, 9, 59)) == "warning"
    assert state(c, CAL, teh(2027, 3, 25, 10)) == "breached"


def test_elapsed_excludes_pauses_and_closed_hours() -> None:
    c = resume(pause(clock(), teh(2025, 10, 1, 11)), teh(2025, 10, 4, 9))
    assert elapsed(c, CAL, teh(2025, 10, 4, 10)) == 2 * H
    assert elapsed(c, CAL, teh(2025, 10, 2, 10)) == H  # still paused then


def test_met_in_time_is_met_and_late_stays_breached() -> None:
    c = clock()
    on_time = mark_met(c, teh(2025, 10, 1, 13, 30))
    assert state(on_time, CAL, teh(2025, 10, 5, 10)) == "met"
    assert due_at(on_time, CAL, teh(2025, 10, 5, 10)) is None
    assert state(on_time, CAL, teh(2025, 10, 1, 13, 15)) == "warning"  # not met yet then
    late = mark_met(c, teh(2025, 10, 1, 14, 30))
    assert state(late, CAL, teh(2025, 10, 5, 10)) == "breached"
    met_while_paused = mark_met(pause(c, teh(2025, 10, 1, 11)), teh(2025, 10, 5, 9))
    assert state(met_while_paused, CAL, teh(2025, 10, 6, 9)) == "met"


def test_pause_and_resume_are_idempotent_and_refuse_the_past() -> None:
    c = pause(clock(), teh(2025, 10, 1, 11))
    assert pause(c, teh(2025, 10, 1, 12)) is c
    running = clock()
    assert resume(running, teh(2025, 10, 1, 12)) is running
    with pytest.raises(ValueError, match="before its last change"):
        resume(c, teh(2025, 10, 1, 10, 30))
    with pytest.raises(ValueError, match="before its last change"):
        pause(running, teh(2025, 10, 1, 9))


def test_warning_threshold_comes_from_the_policy() -> None:
    strict = SlaPolicy("strict", first_response=4 * H, warn_at=0.5)
    c = start_clock(strict, "first_response", WED_10)
    assert c is not None
    assert warn_at(c, CAL, WED_10) == teh(2025, 10, 1, 12)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="warn_at"):
        SlaPolicy("bad", warn_at=1.5)
    with pytest.raises(ValueError, match="resolution"):
        SlaPolicy("bad", resolution=timedelta(0))


POLICIES = [
    SlaPolicy("default", first_response=8 * H),
    SlaPolicy("urgent", first_response=H, priority="urgent"),
    SlaPolicy("iran-insurance", first_response=4 * H, insurer="iran"),
    SlaPolicy("iran-urgent", first_response=H / 2, insurer="iran", priority="urgent"),
    SlaPolicy("asia-high", first_response=2 * H, insurer="asia", priority="high"),
]


@pytest.mark.parametrize(
    ("insurer", "priority", "expected"),
    [
        ("iran", "urgent", "iran-urgent"),
        ("iran", "normal", "iran-insurance"),
        ("dana", "urgent", "urgent"),
        ("asia", "high", "asia-high"),
        ("asia", "urgent", "urgent"),
        ("asia", "low", "default"),
        (None, "normal", "default"),
    ],
)
def test_select_policy_most_specific_wins(insurer: str | None, priority: str, expected: str) -> None:
    assert select_policy(POLICIES, insurer, priority).name == expected  # type: ignore[arg-type]


def test_select_policy_without_default_names_what_is_missing() -> None:
    with pytest.raises(LookupError, match="'dana'.*'low'"):
        select_policy(POLICIES[1:], "dana", "low")


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(TEHRAN)
)
targets = st.timedeltas(timedelta(minutes=1), timedelta(hours=120))


@settings(max_examples=100, deadline=None)
@given(start=moments, a=targets, b=targets)
def test_due_time_is_monotonic_in_the_target(start: datetime, a: timedelta, b: timedelta) -> None:
    short, long = sorted((a, b))
    due_short = due_at(SlaClock("resolution", start, short), CAL, start)
    due_long = due_at(SlaClock("resolution", start, long), CAL, start)
    assert due_short is not None and due_long is not None
    assert due_short <= due_long


@settings(max_examples=100, deadline=None)
@given(
    start=moments,
    target=targets,
    gaps=st.lists(st.timedeltas(timedelta(0), timedelta(days=3)), min_size=1, max_size=6),
)
def test_pausing_never_makes_a_ticket_due_sooner(
    start: datetime, target: timedelta, gaps: list[timedelta]
) -> None:
    plain = SlaClock("resolution", start, target)
    paused = plain
    at = start
    for i, gap in enumerate(gaps):
        at += gap
        paused = pause(paused, at) if i % 2 == 0 else resume(paused, at)
    now = at
    due_plain = due_at(plain, CAL, now)
    due_paused = due_at(paused, CAL, now)
    assert due_plain is not None
    if due_paused is not None:
        assert due_paused >= due_plain
    if state(plain, CAL, now) != "breached":
        assert state(paused, CAL, now) != "breached"


@settings(max_examples=150, deadline=None)
@given(
    start=moments,
    target=targets,
    gaps=st.lists(st.timedeltas(timedelta(0), timedelta(days=3)), max_size=6),
    later=st.timedeltas(timedelta(0), timedelta(days=20)),
)
def test_breached_exactly_when_the_counted_time_reaches_the_target(
    start: datetime, target: timedelta, gaps: list[timedelta], later: timedelta
) -> None:
    """`state` and `elapsed` agree at any instant, paused or not, and a running clock's due
    instant is where its counted time reaches the target."""
    clock = SlaClock("resolution", start, target)
    at = start
    for i, gap in enumerate(gaps):
        at += gap
        clock = pause(clock, at) if i % 2 == 0 else resume(clock, at)
    now = at + later
    assert (state(clock, CAL, now) == "breached") == (elapsed(clock, CAL, now) >= target)
    due = due_at(clock, CAL, now)
    if due is not None and due > now:
        assert elapsed(clock, CAL, due) == target
