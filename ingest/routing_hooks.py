"""Routing, assignment, SLA clocks and workflow rules applied to the store: the glue between the
pure decisions in `router/` and the write operations of `ingest/apply.py`.

Every function here runs inside a write operation (it gets the batch's `Tx`), so a decision and
the timeline events recording it commit together. Clock changes end with `arm(tx, ticket_id)`,
which publishes the ticket's next due instant on the store's bus for the SLA scheduler
(ingest/sla_engine.py) to sleep on; nothing here waits or scans.

Status changes are made by operations built without the apply context (the agent API's
`change_status`, `assign_ticket`); they find it on the transaction (`tx.context`, bound to the
store by the daemon's Ingest).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, get_args
from zoneinfo import ZoneInfo

import structlog
from persiantools.jdatetime import JalaliDateTime

from config.policies import Policies
from ingest.agents import write_audit
from ingest.apply import (
    RouteResult, TicketActionError, agent_reply, assign_ticket, change_priority, change_status, enqueue_outbound,
    record_event,
)
from ingest.analysis import TextFacts
from ingest.persian import looks_persian
from ingest.records import InboundMessage
from ingest.store import Tx, iso
from router.assignment import AgentState, AgentStatus, AssignedTicket, choose_agent, tickets_to_reassign
from router.calendar import zone_label
from router.rules import RoutingFacts, raise_priority, route
from router.sla import Pause, SlaClock, SlaPolicy, mark_met, pause, resume, select_policy, start_clock
from router.sla import due_at as sla_due_at
from router.sla import state as sla_state
from router.sla import warn_at as sla_warn_at
from router.workflow import (
    PAUSING_STATUSES, AddTag, Assign, Event, MessageReceived, Notify, RaisePriority, SendTemplate, SetStatus,
    StatusChanged, TicketFacts, evaluate_workflow, reply_timeouts,
)

if TYPE_CHECKING:
    from ingest.apply import ApplyContext

log = structlog.get_logger(__name__)

TIMER_EVENT = "timer_armed"
"""Bus-only event (not on the timeline): `ticket_id` and `at`, its next due instant or None."""
MAX_WORKFLOW_DEPTH = 4
AGENT_STATUSES: tuple[str, ...] = get_args(AgentStatus)



# -- facts --------------------------------------------------------------------------------------

def _contact_tags(tx: Tx, contact_id: int) -> frozenset[str]:
    row = tx.one("SELECT role, tags FROM contacts WHERE id = ?", (contact_id,))
    if row is None:
        return frozenset()
    tags = {t.strip().casefold() for t in row["tags"].split(",") if t.strip()}
    if row["role"] and row["role"] != "policyholder":  # a broker or reinsurer is a tag too
        tags.add(row["role"].casefold())
    return frozenset(tags)


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    ref: str
    status: str
    priority: str
    queue: str
    assignee: str | None
    skill: str | None
    sla_policy: str | None
    insurer: str
    line_of_business: str
    tags: frozenset[str]
    last_inbound_at: datetime | None
    status_since: datetime | None

    def facts(self) -> TicketFacts:
        return TicketFacts(self.id, self.status, self.priority, self.insurer or None,  # type: ignore[arg-type]
                           self.line_of_business, self.tags)  # type: ignore[arg-type]


def load_ticket(tx: Tx, ticket_id: int) -> Ticket:
    row = tx.one(
        "SELECT id, ref, status, priority, queue, assignee, skill, sla_policy, insurer, line_of_business, tags,"
        " last_inbound_at, status_since FROM tickets WHERE id = ?", (ticket_id,))
    assert row is not None, ticket_id
    return Ticket(row["id"], row["ref"], row["status"], row["priority"], row["queue"], row["assignee"], row["skill"],
                   row["sla_policy"], row["insurer"], row["line_of_business"],
                   frozenset(t for t in row["tags"].split(",") if t), _parse(row["last_inbound_at"]),
                   _parse(row["status_since"]))


# -- SLA clock rows -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockRow:
    ticket_id: int
    policy: str
    calendar: str
    clock: SlaClock
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    cancelled: bool = False
    due_at: datetime | None = None
    warn_at: datetime | None = None


def load_clocks(tx: Tx, ticket_id: int) -> dict[str, ClockRow]:
    rows = tx.execute("SELECT * FROM sla_clocks WHERE ticket_id = ?", (ticket_id,)).fetchall()
    return {row["kind"]: clock_from_row(row) for row in rows}


def clock_from_row(row: Any) -> ClockRow:
    pauses = tuple(Pause(datetime.fromisoformat(s), _parse(e)) for s, e in json.loads(row["pauses"]))
    clock = SlaClock(kind=row["kind"], started_at=datetime.fromisoformat(row["started_at"]),
                     target=timedelta(seconds=row["target_seconds"]), warn_fraction=row["warn_fraction"],
                     pauses=pauses, met_at=_parse(row["met_at"]))
    return ClockRow(row["ticket_id"], row["policy"], row["calendar"], clock, _parse(row["warned_at"]),
                    _parse(row["breached_at"]), row["state"] == "cancelled", _parse(row["due_at"]),
                    _parse(row["warn_at"]))


def save_clock(tx: Tx, policies: Policies, row: ClockRow) -> ClockRow:
    """Recompute the clock's due instants as of now and store it with its next action time."""
    calendar = policies.calendars[row.calendar]
    clock = row.clock
    due = sla_due_at(clock, calendar, tx.now)
    warn = sla_warn_at(clock, calendar, tx.now)
    # A recorded breach stands (router/sla.py): a new target after a priority change (the breach's
    # own raise_priority) must neither turn it back to "ok" beside its breached_at nor move its
    # due instant on, where every view (supervisors', countdowns, the insurer's) reads it as not due.
    if row.breached_at is not None and due is not None:
        due = row.breached_at
    state = ("cancelled" if row.cancelled else "breached" if row.breached_at is not None
             else sla_state(clock, calendar, tx.now))
    if row.cancelled:
        next_at = None
    elif row.warned_at is None and warn is not None:
        next_at = warn
    elif row.breached_at is None and due is not None:
        next_at = due
    else:
        next_at = None
    tx.execute(
        "INSERT OR REPLACE INTO sla_clocks (ticket_id, kind, policy, calendar, started_at, target_seconds,"
        " warn_fraction, pauses, due_at, warn_at, met_at, warned_at, breached_at, state, next_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row.ticket_id, clock.kind, row.policy, row.calendar, iso(clock.started_at), clock.target.total_seconds(),
         clock.warn_fraction, json.dumps([[iso(p.start), iso(p.end)] for p in clock.pauses]), iso(due), iso(warn),
         iso(clock.met_at), iso(row.warned_at), iso(row.breached_at), state, iso(next_at)),
    )
    return replace(row, due_at=due, warn_at=warn)


def save_new_clock(tx: Tx, policies: Policies, row: ClockRow) -> ClockRow:
    """Store a clock just started. The finished one of the same kind it replaces (the previous
    next response, the resolution before a reopen) goes to sla_clock_history first, so its
    outcome (met in time, breached) still counts in reports."""
    tx.execute(
        "INSERT INTO sla_clock_history (ticket_id, kind, policy, calendar, started_at, target_seconds,"
        " warn_fraction, pauses, due_at, warn_at, met_at, warned_at, breached_at, state, replaced_at)"
        " SELECT ticket_id, kind, policy, calendar, started_at, target_seconds, warn_fraction, pauses, due_at,"
        " warn_at, met_at, warned_at, breached_at, state, ? FROM sla_clocks WHERE ticket_id = ? AND kind = ?",
        (tx.stamp, row.ticket_id, row.clock.kind))
    return save_clock(tx, policies, row)


def arm(tx: Tx, ticket_id: int) -> None:
    """Tell the scheduler when this ticket next needs attention (after commit, via the bus)."""
    row = tx.one(
        "SELECT min(at) AS at FROM (SELECT min(next_at) AS at FROM sla_clocks WHERE ticket_id = ?"
        " UNION ALL SELECT min(fire_at) FROM workflow_timers WHERE ticket_id = ?)", (ticket_id, ticket_id))
    tx.emit(TIMER_EVENT, ticket_id=ticket_id, at=row["at"] if row else None)


# -- the hooks ----------------------------------------------------------------------------------


class RoutingHooks:
    """The policies, and what the apply step calls at each point of a ticket's life."""

    def __init__(self, policies: Policies) -> None:
        self.policies = policies
        self._depth = 0  # workflow rules that change status trigger rules again; bounded
        # Load the holiday tables now (the `holidays` import takes ~0.7 s), not inside the
        # first message's write.
        for calendar in policies.calendars.values():
            calendar.is_closed_day(datetime.now(calendar.tz).date())

    # ---- routing and assignment ------------------------------------------------------------

    def route(self, tx: Tx, msg: InboundMessage, contact_id: int, text: TextFacts) -> RouteResult:
        facts = RoutingFacts(
            channel=msg.channel,
            insurer=dict(msg.meta).get("insurer") or None,
            line_of_business=text.line_of_business,  # type: ignore[arg-type]
            language=text.language,  # type: ignore[arg-type]
            business_hours=self.policies.business.is_open(tx.now),
            contact_tags=_contact_tags(tx, contact_id),
            subject=msg.subject,
            text=text.sample,
            folded=text.folded,
        )
        decision = route(self.policies.rules, self.policies.default_route, facts)
        return RouteResult(queue=decision.queue, priority=decision.priority, tags=decision.tags, skill=decision.skill,
                           sla_policy=decision.sla_policy, rule=decision.rule, insurer=facts.insurer or "",
                           line_of_business=facts.line_of_business)

    def ticket_created(self, tx: Tx, ctx: ApplyContext, ticket_id: int, ref: str, route: RouteResult) -> None:
        policy = self._policy(route.sla_policy, route.insurer, route.priority)
        tx.execute(
            "UPDATE tickets SET skill = ?, sla_policy = ?, tags = ?, insurer = ?, line_of_business = ?,"
            " status_since = ? WHERE id = ?",
            (route.skill, policy.name if policy else None, ",".join(route.tags), route.insurer,
             route.line_of_business, tx.stamp, ticket_id))
        record_event(tx, ticket_id, ref, "routed", rule=route.rule, queue=route.queue, priority=route.priority,
                     skill=route.skill, tags=list(route.tags) or None, sla_policy=policy.name if policy else None)
        if policy is not None:
            started = {}
            for kind in ("first_response", "resolution"):
                clock = start_clock(policy, kind, tx.now)
                if clock is not None:
                    saved = save_clock(tx, self.policies, ClockRow(ticket_id, policy.name, policy.calendar, clock))
                    started[kind] = iso(saved.due_at)
            if started:
                record_event(tx, ticket_id, ref, "sla_started", policy=policy.name, due=started)
        self.assign(tx, ticket_id, ref, route.queue, route.skill)
        self._rearm_reply_timers(tx, ticket_id)
        arm(tx, ticket_id)

    def assign(self, tx: Tx, ticket_id: int, ref: str, queue: str, skill: str | None, *,
               exclude: str | None = None, actor: str = "routing") -> str | None:
        """Assign by the queue's mode; None (and a `queued` event) when nobody can take it."""
        conf = self.policies.queues.get(queue)
        if conf is None or conf.assignment == "none":
            return None
        agents = [a for a in agent_states(tx, queue) if a.name != exclude]
        cursor = tx.one("SELECT last_agent FROM assignment_cursor WHERE queue = ?", (queue,))
        chosen = choose_agent(conf.assignment, agents, queue, skill, cursor["last_agent"] if cursor else None)
        if chosen is None:
            record_event(tx, ticket_id, ref, "queued", queue=queue, skill=skill, reason="no agent available")
            return None
        tx.execute("INSERT INTO assignment_cursor (queue, last_agent) VALUES (?, ?)"
                   " ON CONFLICT (queue) DO UPDATE SET last_agent = excluded.last_agent", (queue, chosen))
        assign_ticket(ref, chosen, actor)(tx)
        return chosen

    # ---- messages ----------------------------------------------------------------------------

    def customer_message(self, tx: Tx, ctx: ApplyContext, ticket_id: int, ref: str, msg: InboundMessage) -> None:
        """A customer wrote: a next-response clock starts unless an answer is already owed."""
        if msg.is_automatic:
            return
        ticket = load_ticket(tx, ticket_id)
        clocks = load_clocks(tx, ticket_id)
        owed = any(k in clocks and clocks[k].clock.met_at is None for k in ("first_response", "next_response"))
        policy = self.policies.sla_policy(ticket.sla_policy) if ticket.sla_policy else None
        if policy is not None and not owed and ticket.status != "closed":
            clock = start_clock(policy, "next_response", tx.now)
            if clock is not None:
                if ticket.status in PAUSING_STATUSES:
                    clock = pause(clock, tx.now)
                saved = save_new_clock(tx, self.policies, ClockRow(ticket_id, policy.name, policy.calendar, clock))
                record_event(tx, ticket_id, ref, "sla_started", policy=policy.name,
                             due={"next_response": iso(saved.due_at)}, paused=ticket.status in PAUSING_STATUSES)
        self._rearm_reply_timers(tx, ticket_id)
        self.run_workflow(tx, ctx, MessageReceived(ticket.facts(), from_customer=True))
        arm(tx, ticket_id)

    def responded(self, tx: Tx, ticket_id: int, ref: str) -> None:
        """Someone answered the customer: the first- and next-response clocks are met."""
        clocks = load_clocks(tx, ticket_id)
        for kind in ("first_response", "next_response"):
            row = clocks.get(kind)
            if row is None or row.clock.met_at is not None:
                continue
            row = self._unfired_breach(tx, ticket_id, ref, row)
            save_clock(tx, self.policies, replace(row, clock=mark_met(row.clock, tx.now)))
            record_event(tx, ticket_id, ref, "sla_met", clock=kind, policy=row.policy, late=row.breached_at is not None)
        arm(tx, ticket_id)

    def _unfired_breach(self, tx: Tx, ticket_id: int, ref: str, row: ClockRow) -> ClockRow:
        """A clock stopping (met, or cancelled by the close) past its due instant while the
        scheduler has not fired the breach (the daemon was down, a reply from the CLI, the same
        instant): the breach is recorded now, as of its due instant, before the clock stops and
        its due instant is gone. Only the event: the policy's escalations and the breach workflow
        rules exist to get an owed answer sent, and it has just been sent (or is owed no more)."""
        calendar = self.policies.calendars[row.calendar]
        if row.breached_at is not None or sla_state(row.clock, calendar, tx.now) != "breached":
            return row
        due = sla_due_at(row.clock, calendar, tx.now)
        record_event(tx, ticket_id, ref, "sla_breached", clock=row.clock.kind, policy=row.policy, due_at=iso(due),
                     escalated=False)
        return replace(row, breached_at=due)

    def stop_clocks(self, tx: Tx, ticket_id: int, ref: str) -> None:
        """A ticket closed without the status hooks (merged into another): nothing more is owed on
        it, so every running clock is cancelled (a breach already due is recorded first) and its
        workflow timers go; the target's own clocks carry the conversation on."""
        running = {k: r for k, r in load_clocks(tx, ticket_id).items() if r.clock.met_at is None and not r.cancelled}
        for row in running.values():
            row = self._unfired_breach(tx, ticket_id, ref, row)
            save_clock(tx, self.policies, replace(row, clock=mark_met(row.clock, tx.now), cancelled=True))
        if running:
            record_event(tx, ticket_id, ref, "sla_stopped", kinds=sorted(running))
        tx.execute("DELETE FROM workflow_timers WHERE ticket_id = ?", (ticket_id,))
        arm(tx, ticket_id)

    # ---- status -------------------------------------------------------------------------------

    def status_changed(self, tx: Tx, ctx: ApplyContext, ticket_id: int, ref: str, old: str, new: str) -> None:
        tx.execute("UPDATE tickets SET status_since = ? WHERE id = ?", (tx.stamp, ticket_id))
        clocks = load_clocks(tx, ticket_id)
        running = {k: r for k, r in clocks.items() if r.clock.met_at is None and not r.cancelled}
        if new == "closed":
            for kind, row in running.items():
                resolved = kind == "resolution"
                row = self._unfired_breach(tx, ticket_id, ref, row)
                save_clock(tx, self.policies, replace(row, clock=mark_met(row.clock, tx.now), cancelled=not resolved))
                if resolved:
                    record_event(tx, ticket_id, ref, "sla_met", clock=kind, policy=row.policy,
                                 late=row.breached_at is not None)
            if running.keys() - {"resolution"}:
                record_event(tx, ticket_id, ref, "sla_stopped", kinds=sorted(running.keys() - {"resolution"}))
        elif new == "reopened":
            ticket = load_ticket(tx, ticket_id)
            policy = self.policies.sla_policy(ticket.sla_policy) if ticket.sla_policy else None
            clock = start_clock(policy, "resolution", tx.now) if policy else None
            if policy and clock:
                saved = save_new_clock(tx, self.policies, ClockRow(ticket_id, policy.name, policy.calendar, clock))
                record_event(tx, ticket_id, ref, "sla_started", policy=policy.name,
                             due={"resolution": iso(saved.due_at)})
        elif new in PAUSING_STATUSES and old not in PAUSING_STATUSES and running:
            for row in running.values():
                save_clock(tx, self.policies, replace(row, clock=pause(row.clock, tx.now)))
            record_event(tx, ticket_id, ref, "sla_paused", kinds=sorted(running), status=new)
        elif old in PAUSING_STATUSES and new not in PAUSING_STATUSES and running:
            due = {}
            for kind, row in running.items():
                due[kind] = iso(save_clock(tx, self.policies, replace(row, clock=resume(row.clock, tx.now))).due_at)
            record_event(tx, ticket_id, ref, "sla_resumed", due=due, status=new)
        self._rearm_reply_timers(tx, ticket_id)
        self.run_workflow(tx, ctx, StatusChanged(load_ticket(tx, ticket_id).facts(), old=old))  # type: ignore[arg-type]
        arm(tx, ticket_id)

    def priority_changed(self, tx: Tx, ticket_id: int, ref: str, old: str, new: str) -> None:
        """Policies are chosen per insurer and priority: a ticket whose policy was chosen that way
        moves to the policy of its new priority, its running clocks keep their start and pauses
        and take the new targets. A policy a routing rule named stays."""
        ticket = load_ticket(tx, ticket_id)
        if not ticket.sla_policy or not self.policies.sla or self._named_policy(tx, ticket_id):
            return
        policy = select_policy(self.policies.sla, ticket.insurer or None, new)  # type: ignore[arg-type]
        if policy.name == ticket.sla_policy:
            return
        tx.execute("UPDATE tickets SET sla_policy = ? WHERE id = ?", (policy.name, ticket_id))
        due = {}
        for kind, row in load_clocks(tx, ticket_id).items():
            target = policy.target(row.clock.kind)
            if row.clock.met_at is not None or row.cancelled or target is None:
                continue
            clock = replace(row.clock, target=target, warn_fraction=policy.warn_at)
            saved = save_clock(tx, self.policies, replace(row, policy=policy.name, calendar=policy.calendar, clock=clock))
            due[kind] = iso(saved.due_at)
        record_event(tx, ticket_id, ref, "sla_policy_changed", old=ticket.sla_policy, new=policy.name, due=due)
        arm(tx, ticket_id)

    def _named_policy(self, tx: Tx, ticket_id: int) -> str | None:
        """The SLA policy the routing rule (or default route) that placed the ticket named, if any."""
        routed = tx.one("SELECT data FROM events WHERE ticket_id = ? AND kind = 'routed' ORDER BY id LIMIT 1",
                        (ticket_id,))
        if routed is None:
            return None
        rule = json.loads(routed["data"]).get("rule")
        action = next((r.then for r in self.policies.rules if r.name == rule), None) if rule else None
        return (action or self.policies.default_route).sla_policy

    def _rearm_reply_timers(self, tx: Tx, ticket_id: int) -> None:
        thresholds = reply_timeouts(self.policies.workflow)
        if not thresholds:
            return
        tx.execute("DELETE FROM workflow_timers WHERE ticket_id = ?", (ticket_id,))
        ticket = load_ticket(tx, ticket_id)
        if ticket.status == "closed":
            return
        base = max([d for d in (ticket.last_inbound_at, ticket.status_since) if d] or [tx.now])
        for days in thresholds:
            fire = self.policies.business.add_business_days(base, days)
            tx.execute("INSERT INTO workflow_timers (ticket_id, days, fire_at) VALUES (?, ?, ?)",
                       (ticket_id, days, iso(fire)))

    # ---- workflow actions and notifications -----------------------------------------------------

    def run_workflow(self, tx: Tx, ctx: ApplyContext, event: Event) -> None:
        actions = evaluate_workflow(self.policies.workflow, event)
        if not actions:
            return
        if self._depth >= MAX_WORKFLOW_DEPTH:
            log.warning("workflow_depth_exceeded", ticket_id=event.ticket.ticket_id)
            return
        self._depth += 1
        try:
            for action in actions:
                ticket = load_ticket(tx, event.ticket.ticket_id)
                try:
                    self._apply_action(tx, ctx, ticket, action)
                except TicketActionError as exc:
                    record_event(tx, ticket.id, ticket.ref, "workflow_failed", action=action.action, error=str(exc))
        finally:
            self._depth -= 1

    def _apply_action(self, tx: Tx, ctx: ApplyContext, ticket: Ticket, action: Any) -> None:
        if isinstance(action, SetStatus):
            if ticket.status != action.status:
                change_status(ticket.ref, action.status, "workflow")(tx)
        elif isinstance(action, SendTemplate):
            self.send_template(tx, ctx, ticket, action.template)
        elif isinstance(action, Notify):
            template = self.policies.templates[action.template]
            text = template.en.format(ref=ticket.ref)
            if action.who == "supervisor":
                self.notify_supervisor(tx, ctx, ticket.id, ticket.ref, template.subject or action.template, text)
            else:
                record_event(tx, ticket.id, ticket.ref, "agent_alert", agent=ticket.assignee, text=text)
        elif isinstance(action, AddTag):
            if action.tag not in ticket.tags:
                tx.execute("UPDATE tickets SET tags = ? WHERE id = ?",
                           (",".join(sorted(ticket.tags | {action.tag})), ticket.id))
                record_event(tx, ticket.id, ticket.ref, "tag_added", "workflow", tag=action.tag)
        elif isinstance(action, Assign):
            queue = action.queue or ticket.queue
            if queue != ticket.queue:
                tx.execute("UPDATE tickets SET queue = ? WHERE id = ?", (queue, ticket.id))
                record_event(tx, ticket.id, ticket.ref, "queue_changed", "workflow", old=ticket.queue, new=queue)
            self.assign(tx, ticket.id, ticket.ref, queue, action.skill or ticket.skill, exclude=ticket.assignee,
                        actor="workflow")
        elif isinstance(action, RaisePriority):
            change_priority(ticket.ref, raise_priority(ticket.priority), "workflow")(tx)  # type: ignore[arg-type]

    def send_template(self, tx: Tx, ctx: ApplyContext, ticket: Ticket, name: str) -> None:
        """A template to the customer, on the channel of their latest message, in their language."""
        last = tx.one("SELECT subject, text FROM messages WHERE ticket_id = ? AND direction = 'in'"
                      " AND auto_reason = '' ORDER BY id DESC LIMIT 1", (ticket.id,))
        template = self.policies.templates[name]
        persian = last is None or looks_persian(f"{last['subject']} {last['text']}")
        text = (template.fa if persian else template.en).format(ref=ticket.ref)
        try:
            agent_reply(ticket.ref, text, "workflow", ctx, automatic=True)(tx)
        except Exception as exc:  # ReplyError: no channel to answer on; recorded, not fatal
            record_event(tx, ticket.id, ticket.ref, "workflow_failed", action="send_template", error=str(exc))

    def notify_supervisor(self, tx: Tx, ctx: ApplyContext, ticket_id: int, ref: str, subject: str, text: str) -> None:
        """A console alert (timeline + live feed) and, when configured, mail/Telegram via the outbox."""
        record_event(tx, ticket_id, ref, "supervisor_alert", subject=subject, text=text)
        targets = (("email", self.policies.supervisor_email), ("telegram", self.policies.supervisor_telegram))
        for channel, recipient in targets:
            connector = ctx.reply_connectors.get(channel)
            if recipient and connector:
                enqueue_outbound(tx, ctx, ticket_id=ticket_id, ref=ref, channel=channel, connector=connector,
                                 recipient=recipient, subject=f"[{ref}] {subject}", text=text, automatic=True,
                                 author="sla", internal=True)

    def _policy(self, name: str | None, insurer: str | None, priority: str) -> SlaPolicy | None:
        if name:
            return self.policies.sla_policy(name)
        if not self.policies.sla:
            return None
        return select_policy(self.policies.sla, insurer or None, priority)  # type: ignore[arg-type]

    # ---- the acknowledgement ------------------------------------------------------------------

    def expected_response(self, tx: Tx, ticket_id: int, persian: bool) -> str:
        row = tx.one("SELECT due_at FROM sla_clocks WHERE ticket_id = ? AND kind = 'first_response'", (ticket_id,))
        due = _parse(row["due_at"]) if row else None
        return format_due(due, persian, self.policies.business.tz) if due else ""


_FA_WEEKDAYS = ("دوشنبه", "سه‌شنبه", "چهارشنبه", "پنجشنبه", "جمعه", "شنبه", "یکشنبه")  # Monday first


def format_due(moment: datetime, persian: bool, tz: ZoneInfo) -> str:
    """"تا ساعت 11:50 روز شنبه 10 آذر 1405" (Jalali; the template turns digits Persian) or
    "by 11:50 on Saturday 1 December 2026 (Tehran time)"."""
    local = moment.astimezone(tz)
    if persian:
        jalali = JalaliDateTime(local)
        month = jalali.strftime("%B", locale="fa")
        return (f"تا ساعت {local:%H:%M} روز {_FA_WEEKDAYS[local.weekday()]} "
                f"{jalali.day} {month} {jalali.year}")
    return f"by {local:%H:%M} on {local:%A} {local.day} {local:%B %Y} ({zone_label(tz)})"


# -- status hook and agents -------------------------------------------------------------------


def status_changed(tx: Tx, ticket_id: int, ref: str, old: str, new: str) -> None:
    """Called by the status operations of ingest/apply.py, which carry no apply context."""
    ctx: ApplyContext | None = tx.context
    if ctx is not None and ctx.routing is not None:
        ctx.routing.status_changed(tx, ctx, ticket_id, ref, old, new)


def merged_away(tx: Tx, ticket_id: int, ref: str) -> None:
    """Called by `merge_tickets` of ingest/apply.py for the source ticket (`stop_clocks`)."""
    ctx: ApplyContext | None = tx.context
    if ctx is not None and ctx.routing is not None:
        ctx.routing.stop_clocks(tx, ticket_id, ref)


def priority_changed(tx: Tx, ticket_id: int, ref: str, old: str, new: str) -> None:
    """Called by `change_priority` of ingest/apply.py, which carries no apply context."""
    ctx: ApplyContext | None = tx.context
    if ctx is not None and ctx.routing is not None:
        ctx.routing.priority_changed(tx, ticket_id, ref, old, new)


def queue_changed(tx: Tx, ticket_id: int, ref: str, queue: str, skill: str | None) -> None:
    """Called by `change_queue` of ingest/apply.py: the new queue assigns the ticket its way."""
    ctx: ApplyContext | None = tx.context
    if ctx is not None and ctx.routing is not None:
        ctx.routing.assign(tx, ticket_id, ref, queue, skill, actor="routing")


def agent_states(tx: Tx, queue: str | None = None) -> list[AgentState]:
    """Active agents (serving `queue`, when given) with their open-ticket load.

    Loads are counted for available agents only and only up to each one's cap: nobody else can
    be chosen, so the cost is bounded by the caps, not by how many tickets are open."""
    rows = tx.execute("SELECT name, queues, skills, status, load_cap FROM agents WHERE active = 1").fetchall()
    agents = []
    for row in rows:
        queues = frozenset(q.strip() for q in row["queues"].split(",") if q.strip())
        if queue is not None and queue not in queues:
            continue
        load = 0
        if row["status"] == "available":
            load = tx.one("SELECT count(*) FROM (SELECT 1 FROM tickets WHERE assignee = ? AND status != 'closed'"
                          " LIMIT ?)", (row["name"], row["load_cap"]))[0]
        agents.append(AgentState(row["name"], frozenset(s.strip() for s in row["skills"].split(",") if s.strip()),
                                 queues, row["status"], load, row["load_cap"]))
    return agents


def set_agent_status(name: str, status: str, actor: str = "system") -> Callable[[Tx], list[tuple[str, str | None]]]:
    """Shift changes. Going offline hands the agent's open tickets to colleagues (queues with
    `reassign_on_offline`; nobody able: back to the queue); becoming available takes waiting
    tickets of the agent's queues up to the load cap. Returns (ticket ref, new assignee) pairs."""
    if status not in AGENT_STATUSES:
        raise ValueError(f"agent status {status!r}: expected one of {', '.join(AGENT_STATUSES)}")

    def op(tx: Tx) -> list[tuple[str, str | None]]:
        row = tx.one("SELECT status FROM agents WHERE name = ?", (name,))
        if row is None:
            raise ValueError(f"no agent {name!r}")
        tx.execute("UPDATE agents SET status = ? WHERE name = ?", (status, name))
        write_audit(tx, actor, "agent_status", detail={"agent": name, "old": row["status"], "new": status})
        hooks = tx.context.routing if tx.context is not None else None
        if hooks is None or row["status"] == status:
            return []
        if status == "offline":
            return _reassign_from(tx, hooks, name)
        if status == "available":
            return _pull_waiting(tx, hooks, name)
        return []

    return op


def update_agent(name: str, *, skills: frozenset[str] | None = None, load_cap: int | None = None,
                 actor: str = "system") -> Callable[[Tx], None]:
    """Change an agent's skills or load cap (what assignment looks at besides status)."""
    if load_cap is not None and load_cap < 0:
        raise ValueError(f"load cap {load_cap}: expected 0 or more")

    def op(tx: Tx) -> None:
        if tx.one("SELECT 1 FROM agents WHERE name = ?", (name,)) is None:
            raise ValueError(f"no agent {name!r}")
        if skills is not None:
            tx.execute("UPDATE agents SET skills = ? WHERE name = ?", (",".join(sorted(skills)), name))
        if load_cap is not None:
            tx.execute("UPDATE agents SET load_cap = ? WHERE name = ?", (load_cap, name))
        write_audit(tx, actor, "agent_updated", detail={
            "agent": name, "skills": sorted(skills) if skills is not None else None, "load_cap": load_cap})

    return op


def _reassign_from(tx: Tx, hooks: RoutingHooks, name: str) -> list[tuple[str, str | None]]:
    queues = hooks.policies.queues
    rows = tx.execute("SELECT id, ref, queue, skill FROM tickets WHERE assignee = ? AND status != 'closed'"
                      " ORDER BY id", (name,)).fetchall()
    rows = [r for r in rows if r["queue"] in queues and queues[r["queue"]].reassign_on_offline]
    if not rows:
        return []
    refs = {r["id"]: r["ref"] for r in rows}
    cursors = dict(tx.execute("SELECT queue, last_agent FROM assignment_cursor").fetchall())
    modes = {q: c.assignment for q, c in queues.items() if c.assignment != "none"}
    plan = tickets_to_reassign(
        name, [AssignedTicket(r["id"], name, r["queue"], r["skill"]) for r in rows], agent_states(tx),
        modes, cursors)  # type: ignore[arg-type]
    moved = []
    for step in plan:
        queue = next(r["queue"] for r in rows if r["id"] == step.ticket_id)
        to = step.to_agent if queue in modes else None
        assign_ticket(refs[step.ticket_id], to, "system")(tx)
        if to is not None:
            tx.execute("INSERT INTO assignment_cursor (queue, last_agent) VALUES (?, ?)"
                       " ON CONFLICT (queue) DO UPDATE SET last_agent = excluded.last_agent", (queue, to))
        else:
            record_event(tx, step.ticket_id, refs[step.ticket_id], "queued", queue=queue, reason="agent offline")
        moved.append((refs[step.ticket_id], to))
    return moved


def _pull_waiting(tx: Tx, hooks: RoutingHooks, name: str) -> list[tuple[str, str | None]]:
    me = next((a for a in agent_states(tx) if a.name == name), None)
    if me is None:
        return []
    room = me.cap - me.load
    queues = [q for q in sorted(me.queues) if q in hooks.policies.queues
              and hooks.policies.queues[q].assignment != "none"]
    if room <= 0 or not queues:
        return []
    taken: list[tuple[str, str | None]] = []
    # The skill filter in SQL: tickets needing a skill this agent lacks must not use up the LIMIT
    # and keep them from the ones they could take.
    skills = sorted(me.skills)
    # Oldest first per queue and status, along tickets_queue_status: no sort of the whole queue.
    for queue in queues:
        for status in ("new", "reopened"):
            waiting = tx.execute(
                "SELECT ref FROM tickets WHERE queue = ? AND status = ? AND assignee IS NULL"
                f" AND (skill IS NULL OR skill IN ({','.join('?' * len(skills))})) ORDER BY updated_at LIMIT ?",
                (queue, status, *skills, room - len(taken))).fetchall()
            for row in waiting:
                assign_ticket(row["ref"], name, "routing")(tx)
                taken.append((row["ref"], name))
    return taken
