"""SLA policies and clocks: pure values and the arithmetic over them.

A clock is a target duration of business time that starts at an instant and stops counting
during its pauses. All functions take `now` (or the moment of the change) explicitly and return
new values; the daemon stores the clock and the due time these functions compute, and its
scheduler wakes at that due time.

Semantics, one rule each:
- Pauses take effect "as of now": a pause that starts after `now` is ignored, and a pause whose
  end is after `now` counts as still open. So evaluating a stored clock at a past instant
  replays what the state was then.
- The due instant itself is already late: `state` is "breached" when now >= due.
- A breach is permanent: pausing or meeting the target after it leaves the clock "breached".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from router.calendar import BusinessCalendar
from router.rules import Priority

SlaTarget = Literal["first_response", "next_response", "resolution"]
SlaState = Literal["ok", "warning", "breached", "paused", "met"]
SLA_TARGETS: tuple[SlaTarget, ...] = ("first_response", "next_response", "resolution")


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Targets in business time of the calendar named `calendar`; None means no target.

    `insurer` and `priority` say which tickets the policy is for; None matches any, so the policy
    with neither is the default (see `select_policy`).
    """

    name: str
    first_response: timedelta | None = None
    next_response: timedelta | None = None
    resolution: timedelta | None = None
    warn_at: float = 0.75
    calendar: str = "default"
    insurer: str | None = None
    priority: Priority | None = None

    def __post_init__(self) -> None:
        if not 0 < self.warn_at <= 1:
            raise ValueError(f"policy {self.name!r}: warn_at {self.warn_at} must be in (0, 1]")
        for kind in SLA_TARGETS:
            target = self.target(kind)
            if target is not None and target <= timedelta(0):
                raise ValueError(f"policy {self.name!r}: {kind} {target} must be positive")

    def target(self, kind: SlaTarget) -> timedelta | None:
        return getattr(self, kind)


@dataclass(frozen=True, slots=True)
class Pause:
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class SlaClock:
    kind: SlaTarget
    started_at: datetime
    target: timedelta
    warn_fraction: float = 0.75
    pauses: tuple[Pause, ...] = ()
    met_at: datetime | None = None


def select_policy(
    policies: Sequence[SlaPolicy], insurer: str | None, priority: Priority
) -> SlaPolicy:
    """The most specific policy: insurer and priority, then insurer, then priority, then the
    default (neither set). Among equally specific policies the first listed wins."""
    best: SlaPolicy | None = None
    best_score = -1
    for policy in policies:
        if policy.insurer is not None and policy.insurer != insurer:
            continue
        if policy.priority is not None and policy.priority != priority:
            continue
        # An insurer contract outranks a priority-wide rule: the contract is what was signed.
        score = 2 * (policy.insurer is not None) + (policy.priority is not None)
        if score > best_score:
            best, best_score = policy, score
    if best is None:
        raise LookupError(
            f"no SLA policy for insurer {insurer!r} and priority {priority!r}: "
            "expected a default policy with neither insurer nor priority"
        )
    return best


def start_clock(policy: SlaPolicy, kind: SlaTarget, at: datetime) -> SlaClock | None:
    """A running clock for `kind`, or None when the policy sets no such target."""
    target = policy.target(kind)
    if target is None:
        return None
    return SlaClock(kind=kind, started_at=at, target=target, warn_fraction=policy.warn_at)


def pause(clock: SlaClock, at: datetime) -> SlaClock:
    """Stop the clock at `at`; a clock already paused is returned unchanged."""
    if clock.pauses and clock.pauses[-1].end is None:
        return clock
    _check_not_before(clock, at)
    return replace(clock, pauses=(*clock.pauses, Pause(start=at)))


def resume(clock: SlaClock, at: datetime) -> SlaClock:
    """Restart the clock at `at`; a clock not paused is returned unchanged."""
    if not clock.pauses or clock.pauses[-1].end is not None:
        return clock
    _check_not_before(clock, at)
    last = clock.pauses[-1]
    return replace(clock, pauses=(*clock.pauses[:-1], Pause(start=last.start, end=at)))


def mark_met(clock: SlaClock, at: datetime) -> SlaClock:
    """Record the response or resolution that satisfies the target; the first one counts."""
    if clock.met_at is not None:
        return clock
    _check_not_before(clock, at)
    return replace(clock, met_at=at)


def elapsed(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> timedelta:
    """Business time counted against the target up to `now` (pauses excluded)."""
    until = min(now, clock.met_at) if clock.met_at is not None else now
    total = calendar.business_time_between(clock.started_at, max(until, clock.started_at))
    for p in clock.pauses:
        if p.start >= until:
            break
        end = until if p.end is None else min(p.end, until)
        total -= calendar.business_time_between(p.start, end)
    return total


def due_at(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> datetime | None:
    """When the target is breached if nothing changes; None once met, or while paused with time
    left (a clock that breached before its pause keeps that past due time)."""
    if _is_met(clock, now):
        return None
    return _deadline(clock, calendar, now, clock.target)


def warn_at(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> datetime | None:
    """When the warning threshold is reached if nothing changes; None as for `due_at`."""
    if _is_met(clock, now):
        return None
    return _deadline(clock, calendar, now, clock.target * clock.warn_fraction)


def state(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> SlaState:
    # A met clock is judged as of the moment it was met: late is "breached" for ever.
    met = clock.met_at if clock.met_at is not None and clock.met_at <= now else None
    as_of = met or now
    due = _deadline(clock, calendar, as_of, clock.target)
    if due is not None and due <= as_of:
        return "breached"
    if met is not None:
        return "met"
    if due is None:
        return "paused"
    warning = _deadline(clock, calendar, now, clock.target * clock.warn_fraction)
    return "warning" if warning is not None and warning <= now else "ok"


def _is_met(clock: SlaClock, now: datetime) -> bool:
    return clock.met_at is not None and clock.met_at <= now


def _deadline(
    clock: SlaClock, calendar: BusinessCalendar, as_of: datetime, amount: timedelta
) -> datetime | None:
    """The instant `amount` of active business time is used up, walking the running stretches
    between pauses. None when the clock is paused at `as_of` with time still left; a deadline
    reached before the current pause began is returned, because that breach already happened."""
    remaining = amount
    cursor = clock.started_at
    for p in clock.pauses:
        if p.start > as_of:
            break
        active = calendar.business_time_between(cursor, p.start)
        if remaining <= active:
            return calendar.add_business_time(cursor, remaining)
        remaining -= active
        if p.end is None or p.end > as_of:
            return None
        cursor = p.end
    return calendar.add_business_time(cursor, remaining)


def _check_not_before(clock: SlaClock, at: datetime) -> None:
    # Clock history is append-only: a change dated before the last one would rewrite the past.
    last = clock.started_at
    if clock.pauses:
        final = clock.pauses[-1]
        last = final.end if final.end is not None else final.start
    if at < last:
        raise ValueError(
            f"{clock.kind} clock change at {at.isoformat()} is before its last change at "
            f"{last.isoformat()}"
        )
