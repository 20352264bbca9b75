"""Who gets a ticket: least-loaded or round-robin among available agents, or nobody.

"Nobody" is a real answer: the ticket then waits in its queue, visibly, rather than landing on
an agent who is away or already at their cap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

AgentStatus = Literal["available", "away", "offline"]
AssignmentMode = Literal["least_loaded", "round_robin"]


@dataclass(frozen=True, slots=True)
class AgentState:
    name: str
    skills: frozenset[str]
    queues: frozenset[str]
    status: AgentStatus
    load: int
    cap: int


@dataclass(frozen=True, slots=True)
class AssignedTicket:
    """An open ticket in someone's hands, as reassignment needs to see it."""

    ticket_id: int
    assignee: str
    queue: str
    skill: str | None


@dataclass(frozen=True, slots=True)
class Reassignment:
    ticket_id: int
    from_agent: str
    to_agent: str | None
    """None: nobody can take it now; the ticket goes back to its queue unassigned."""


def eligible(agents: Sequence[AgentState], queue: str, skill: str | None) -> list[AgentState]:
    """Available agents serving `queue`, with `skill` if one is required, under their cap."""
    return [
        a
        for a in agents
        if a.status == "available"
        and queue in a.queues
        and (skill is None or skill in a.skills)
        and a.load < a.cap
    ]


def choose_agent(
    mode: AssignmentMode,
    agents: Sequence[AgentState],
    queue: str,
    skill: str | None,
    last_assigned: str | None,
) -> str | None:
    """The agent to assign, or None when nobody eligible.

    round_robin: the next eligible agent by name after `last_assigned`, wrapping around.
    least_loaded: the lowest load; ties go round-robin the same way, so equally loaded agents
    take turns instead of the alphabetically first one always winning.
    """
    candidates = eligible(agents, queue, skill)
    if mode == "least_loaded" and candidates:
        lowest = min(a.load for a in candidates)
        candidates = [a for a in candidates if a.load == lowest]
    names = sorted(a.name for a in candidates)
    if not names:
        return None
    if last_assigned is None:
        return names[0]
    return next((n for n in names if n > last_assigned), names[0])


def tickets_to_reassign(
    agent: str,
    tickets: Sequence[AssignedTicket],
    agents: Sequence[AgentState],
    modes: Mapping[str, AssignmentMode],
    last_assigned: Mapping[str, str | None],
) -> list[Reassignment]:
    """Hand an agent's open tickets to others when the agent goes offline, in ticket order.

    Each choice counts the tickets already handed out in this plan, so one agent going offline
    does not pile their whole load on the least-loaded colleague. Queues missing from `modes`
    use least_loaded; `last_assigned` is the round-robin position per queue. Whether going
    offline (or away) triggers this at all is the caller's configuration.
    """
    others = {a.name: a for a in agents if a.name != agent}
    cursor = dict(last_assigned)
    plan: list[Reassignment] = []
    for ticket in sorted(tickets, key=lambda t: t.ticket_id):
        if ticket.assignee != agent:
            continue
        chosen = choose_agent(
            modes.get(ticket.queue, "least_loaded"),
            list(others.values()),
            ticket.queue,
            ticket.skill,
            cursor.get(ticket.queue),
        )
        if chosen is not None:
            others[chosen] = replace(others[chosen], load=others[chosen].load + 1)
            cursor[ticket.queue] = chosen
        plan.append(Reassignment(ticket.ticket_id, agent, chosen))
    return plan
