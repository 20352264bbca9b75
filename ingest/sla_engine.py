"""The SLA scheduler: one task sleeping until the earliest due instant of any ticket.

Due instants (SLA warnings and breaches, workflow "no customer reply" timers) are stored with
their clocks (sla_clocks.next_at, workflow_timers.fire_at). At start the scheduler loads each
ticket's earliest instant into a heap; afterwards every clock change publishes the ticket's new
earliest instant on the store's bus (routing_hooks.TIMER_EVENT) and the scheduler pushes it.
A heap entry that is no longer the ticket's current instant is skipped when popped (lazy
deletion), so nothing ever scans all tickets.

The scheduler asks the injected clock for "now" and sleeps at most `max_sleep` seconds at a time,
so a clock that jumps (a test's fake clock, NTP) is noticed within that bound. `fire_due()`
processes everything due now and returns when it is committed: tests advance their clock and
await it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from connectors.base import StoreUnavailable
from ingest.apply import ApplyContext, change_priority, record_event
from ingest.routing_hooks import (
    TIMER_EVENT, ClockRow, RoutingHooks, Ticket, arm, clock_from_row, format_due, load_ticket,
)
from ingest.store import StoreEvent, Store, Tx, iso, utcnow
from ingest.supervision import watched
from router.rules import raise_priority
from router.workflow import NoCustomerReply, SlaBreach, SlaWarning

log = structlog.get_logger(__name__)


FIRE_CHUNK = 64
"""Tickets fired per write operation: fewer futures and bus hops when many fall due at once."""


def fire_tickets(hooks: RoutingHooks, ctx: ApplyContext, ticket_ids: list[int]) -> Callable[[Tx], int]:
    """Fire whatever of these tickets is due at the batch's `now`: SLA warnings, breaches and
    their escalations, workflow reply timers. Each ticket in its own savepoint, so one failing
    ticket (logged, left unarmed until restart) does not hold back the others. Returns how
    many events fired."""

    def op(tx: Tx) -> int:
        fired = 0
        for ticket_id in ticket_ids:
            mark = len(tx.events)
            tx.execute("SAVEPOINT fire")
            try:
                fired += _fire_one(tx, hooks, ctx, ticket_id)
            except Exception as exc:
                tx.execute("ROLLBACK TO fire")
                del tx.events[mark:]
                log.error("sla_fire_failed", ticket_id=ticket_id, error=repr(exc))
            tx.execute("RELEASE fire")
        return fired

    return op


def _fire_one(tx: Tx, hooks: RoutingHooks, ctx: ApplyContext, ticket_id: int) -> int:
    fired = 0
    now = tx.stamp
    ticket = load_ticket(tx, ticket_id)
    if ticket.status == "closed":
        # Closed with clocks still running (merged away by a version that left them): nothing is
        # owed. The clocks' state is on the insurer's view of the claim.
        hooks.stop_clocks(tx, ticket_id, ticket.ref)
        return 0
    due_clocks = tx.execute("SELECT * FROM sla_clocks WHERE ticket_id = ? AND next_at <= ?", (ticket_id, now))
    for row in [clock_from_row(r) for r in due_clocks.fetchall()]:
        # The stored instants hold until the clock changes, and every change re-arms: no
        # calendar arithmetic is needed here.
        if row.warned_at is None and row.warn_at is not None and iso(row.warn_at) <= now:
            row = replace(row, warned_at=tx.now)
            _record_fired(tx, row)
            ticket = _escalate(tx, hooks, ctx, ticket, row, breached=False)
            fired += 1
        if row.breached_at is None and row.due_at is not None and iso(row.due_at) <= now:
            # The breach happened at the due instant, however late it is noticed (the daemon was
            # down): as `RoutingHooks._unfired_breach` records it, so reports put it in its period.
            row = replace(row, breached_at=row.due_at)
            _record_fired(tx, row)
            ticket = _escalate(tx, hooks, ctx, ticket, row, breached=True)
            fired += 1
    due_days = tx.execute("SELECT days FROM workflow_timers WHERE ticket_id = ? AND fire_at <= ? ORDER BY days",
                          (ticket_id, now)).fetchall()
    for (days,) in due_days:
        tx.execute("DELETE FROM workflow_timers WHERE ticket_id = ? AND days = ?", (ticket_id, days))
        ticket = load_ticket(tx, ticket_id)
        if ticket.status != "closed":
            hooks.run_workflow(tx, ctx, NoCustomerReply(ticket.facts(), days))
            fired += 1
    arm(tx, ticket_id)
    return fired


def _record_fired(tx: Tx, row: ClockRow) -> None:
    next_at = row.due_at if row.breached_at is None else None
    tx.execute("UPDATE sla_clocks SET warned_at = ?, breached_at = ?, state = ?, next_at = ? WHERE ticket_id = ?"
               " AND kind = ?", (iso(row.warned_at), iso(row.breached_at), "warning" if next_at else "breached",
                                 iso(next_at), row.ticket_id, row.clock.kind))


def _escalate(tx: Tx, hooks: RoutingHooks, ctx: ApplyContext, ticket: Ticket, row: ClockRow, *,
              breached: bool) -> Ticket:
    """Record the warning or breach, run the policy's escalations and the workflow rules for it;
    returns the ticket as it is afterwards."""
    kind, policy, due = row.clock.kind, row.policy, row.due_at
    record_event(tx, ticket.id, ticket.ref, "sla_breached" if breached else "sla_warning", clock=kind,
                 policy=policy, due_at=iso(due))
    escalation = hooks.policies.escalation.get(policy)
    actions = () if escalation is None else escalation.on_breach if breached else escalation.on_warning
    for action in actions:
        if action == "raise_priority":
            change_priority(ticket.ref, raise_priority(ticket.priority), "sla")(tx)  # type: ignore[arg-type]
        elif action == "notify":
            label = kind.replace("_", " ")
            when = format_due(due, False, hooks.policies.business.tz) if due else "now"
            subject = f"SLA {'breached' if breached else 'warning'}: {label}"
            text = (f"Claim {ticket.ref} ({ticket.queue}, {ticket.priority}, "
                    f"{'assigned to ' + ticket.assignee if ticket.assignee else 'unassigned'}): the {label} target "
                    f"of policy {policy} {'was due' if breached else 'is due'} {when}.")
            hooks.notify_supervisor(tx, ctx, ticket.id, ticket.ref, subject, text)
        elif action == "reassign":
            hooks.assign(tx, ticket.id, ticket.ref, ticket.queue, ticket.skill, exclude=ticket.assignee, actor="sla")
        ticket = load_ticket(tx, ticket.id) if action != "notify" else ticket
    event = SlaBreach(ticket.facts(), kind) if breached else SlaWarning(ticket.facts(), kind)  # type: ignore[arg-type]
    hooks.run_workflow(tx, ctx, event)
    return ticket


class SlaEngine:
    def __init__(self, store: Store, ctx: ApplyContext, *, clock: Callable[[], datetime] = utcnow,
                 max_sleep: float = 1.0) -> None:
        self.store = store
        self.ctx = ctx
        self.clock = clock
        self.max_sleep = max_sleep
        self._heap: list[tuple[float, int]] = []
        self._next: dict[int, float] = {}  # ticket -> its current instant; other heap entries are stale
        self._events: asyncio.Queue[StoreEvent] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.fired = 0
        self.failed = 0  # tickets whose firing failed in the last round (due again after a pause)

    @property
    def hooks(self) -> RoutingHooks | None:
        return self.ctx.routing

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._task]

    @property
    def pending(self) -> int:
        return len(self._next)

    async def start(self) -> None:
        if self.hooks is None:
            return
        # Unbounded: a dropped arming event would be a lost deadline until the next restart.
        self._events = self.store.bus.subscribe(maxsize=0, wants=TIMER_EVENT.__eq__)
        rows = await self.store.fetchall(
            "SELECT ticket_id, min(at) AS at FROM (SELECT ticket_id, next_at AS at FROM sla_clocks"
            " WHERE next_at IS NOT NULL UNION ALL SELECT ticket_id, fire_at FROM workflow_timers) GROUP BY ticket_id")
        for ticket_id, at in rows:
            self._next[ticket_id] = datetime.fromisoformat(at).timestamp()
        self._heap = [(at, ticket_id) for ticket_id, at in self._next.items()]
        heapq.heapify(self._heap)
        log.info("sla_scheduler_started", pending=len(self._heap))
        self._task = watched(asyncio.create_task(self._run(), name="sla-scheduler"))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._events is not None:
            self.store.bus.unsubscribe(self._events)

    def _take_events(self) -> None:
        assert self._events is not None
        while not self._events.empty():
            self._on_event(self._events.get_nowait())

    def _on_event(self, event: StoreEvent) -> None:
        ticket_id, at = event.data["ticket_id"], event.data["at"]
        if at is None:
            self._next.pop(ticket_id, None)
            return
        instant = datetime.fromisoformat(at).timestamp()
        if self._next.get(ticket_id) != instant:
            self._next[ticket_id] = instant
            heapq.heappush(self._heap, (instant, ticket_id))

    async def fire_due(self) -> int:
        """Fire every ticket due at the clock's now; returns the number of tickets handled."""
        async with self._lock:
            hooks = self.hooks
            if hooks is None or self._events is None:
                return 0
            self._take_events()
            now = self.clock().timestamp()
            due: list[int] = []
            while self._heap and self._heap[0][0] <= now:
                at, ticket_id = heapq.heappop(self._heap)
                if self._next.get(ticket_id) == at:
                    del self._next[ticket_id]
                    due.append(ticket_id)
            if not due:
                return 0
            chunks = [due[i:i + FIRE_CHUNK] for i in range(0, len(due), FIRE_CHUNK)]
            results = await asyncio.gather(
                *(self.store.submit(fire_tickets(hooks, self.ctx, c)) for c in chunks), return_exceptions=True)
            self.failed = 0
            for chunk, result in zip(chunks, results):
                if isinstance(result, BaseException):
                    # A write that failed (disk full, a read-only remount, the store stopping)
                    # fired nothing: the tickets stay due, and are tried again after a pause.
                    log.error("sla_fire_failed", tickets=chunk, error=f"{type(result).__name__}: {result}")
                    self._rearm(chunk, now)
                    self.failed += len(chunk)
                else:
                    self.fired += result
            self._take_events()  # the re-arming published by those writes
            return len(due)

    def _rearm(self, ticket_ids: list[int], at: float) -> None:
        for ticket_id in ticket_ids:
            if ticket_id not in self._next:  # an event taken since may have set a newer instant
                self._next[ticket_id] = at
                heapq.heappush(self._heap, (at, ticket_id))

    def _delay(self) -> float:
        if not self._heap:
            return self.max_sleep
        return max(0.0, min(self.max_sleep, self._heap[0][0] - self.clock().timestamp()))

    async def _run(self) -> None:
        assert self._events is not None
        while True:
            try:
                await self.fire_due()
            except StoreUnavailable:  # raised by submit() only once the store is closed
                return
            if self.failed:
                await asyncio.sleep(self.max_sleep)
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that
            # arrives as the queue yields an item, and stop() would then wait for ever.
            try:
                async with asyncio.timeout(self._delay()):
                    event = await self._events.get()
            except TimeoutError:
                continue
            self._on_event(event)
