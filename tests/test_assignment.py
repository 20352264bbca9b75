"""Assignment: fairness over many tickets, eligibility, and reassignment on going offline."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from router.assignment import (
    AgentState,
    AssignedTicket,
    Reassignment,
    choose_agent,
    tickets_to_reassign,
)


def agent(name: str, load: int = 0, *, cap: int = 10_000, status: str = "available",
          skills: frozenset[str] = frozenset({"motor"}),
          queues: frozenset[str] = frozenset({"motor"})) -> AgentState:
    return AgentState(name, skills, queues, status, load, cap)  # type: ignore[arg-type]


TEAM = [agent(n) for n in ("sara", "ali", "maryam", "reza", "neda", "omid", "leila")]


def simulate(mode: str, agents: list[AgentState], tickets: int) -> Counter[str]:
    by_name = {a.name: a for a in agents}
    counts: Counter[str] = Counter()
    last: str | None = None
    for _ in range(tickets):
        last = choose_agent(mode, list(by_name.values()), "motor", "motor", last)  # type: ignore[arg-type]
        assert last is not None
        by_name[last] = replace(by_name[last], load=by_name[last].load + 1)
        counts[last] += 1
    return counts


def test_least_loaded_spreads_1000_tickets_within_one_of_even() -> None:
    counts = simulate("least_loaded", TEAM, 1000)
    assert sum(counts.values()) == 1000
    assert max(counts.values()) - min(counts.values()) <= 1


def test_least_loaded_evens_out_unequal_starting_loads() -> None:
    team = [replace(a, load=i * 20) for i, a in enumerate(TEAM)]  # 0, 20, ... 120
    counts = simulate("least_loaded", team, 1000)
    final = [a.load + counts[a.name] for a in team]
    assert max(final) - min(final) <= 1


def test_least_loaded_always_picks_a_minimum_while_tickets_close() -> None:
    rng = random.Random(1405)
    loads = {a.name: 0 for a in TEAM}
    last: str | None = None
    for _ in range(1000):
        for name in loads:  # each agent closes an open ticket now and then
            if loads[name] and rng.random() < 0.1:
                loads[name] -= 1
        agents = [replace(a, load=loads[a.name]) for a in TEAM]
        last = choose_agent("least_loaded", agents, "motor", None, last)
        assert last is not None
        assert loads[last] == min(loads.values())
        loads[last] += 1


def test_round_robin_cycles_in_name_order() -> None:
    names = [choose_agent("round_robin", TEAM[:3], "motor", None, None)]
    for _ in range(5):
        names.append(choose_agent("round_robin", TEAM[:3], "motor", None, names[-1]))
    assert names == ["ali", "maryam", "sara", "ali", "maryam", "sara"]
    counts = simulate("round_robin", TEAM, 1000)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_round_robin_ignores_load_and_skips_the_ineligible() -> None:
    team = [agent("ali", 50), agent("maryam", status="away"), agent("reza", 3, cap=3),
            agent("sara", 9)]
    assert choose_agent("round_robin", team, "motor", None, "ali") == "sara"
    # The last assignee may have left the team since; the cycle continues after their name.
    assert choose_agent("round_robin", team, "motor", None, "bahram") == "sara"
    assert choose_agent("round_robin", team, "motor", None, "sara") == "ali"


def test_nobody_available_means_no_assignment() -> None:
    assert choose_agent("least_loaded", [], "motor", None, None) is None
    away = [agent("ali", status="away"), agent("sara", status="offline")]
    assert choose_agent("least_loaded", away, "motor", None, None) is None
    full = [agent("ali", 5, cap=5)]
    assert choose_agent("round_robin", full, "motor", None, None) is None
    assert choose_agent("least_loaded", TEAM, "motor", "health", None) is None
    assert choose_agent("least_loaded", TEAM, "health", None, None) is None


def test_skill_and_queue_filter_candidates() -> None:
    team = [agent("ali", 0), agent("sara", 5, skills=frozenset({"motor", "health"}),
                                   queues=frozenset({"motor", "health"}))]
    assert choose_agent("least_loaded", team, "motor", "health", None) == "sara"
    assert choose_agent("least_loaded", team, "health", None, None) == "sara"
    assert choose_agent("least_loaded", team, "motor", None, None) == "ali"


def test_agent_going_offline_hands_open_work_to_colleagues() -> None:
    team = [
        agent("ali", status="offline"),
        agent("maryam", 2),
        agent("reza", 0),
        agent("sara", 1, skills=frozenset({"motor", "health"}),
              queues=frozenset({"motor", "health"})),
    ]
    tickets = [
        AssignedTicket(4, "ali", "motor", None),
        AssignedTicket(1, "ali", "motor", None),
        AssignedTicket(2, "ali", "health", "health"),
        AssignedTicket(3, "ali", "motor", None),
        AssignedTicket(9, "reza", "motor", None),  # not ali's: untouched
        AssignedTicket(5, "ali", "marine", None),  # nobody serves marine: back to the queue
    ]
    plan = tickets_to_reassign("ali", tickets, team, {"motor": "least_loaded"}, {})
    assert plan == [
        Reassignment(1, "ali", "reza"),  # loads maryam 2, reza 0, sara 1
        Reassignment(2, "ali", "sara"),  # the only health agent
        Reassignment(3, "ali", "reza"),  # maryam 2, reza 1, sara 2
        Reassignment(4, "ali", "sara"),  # all at 2: the tie goes to the name after reza
        Reassignment(5, "ali", None),
    ]


def test_reassignment_follows_the_queue_mode() -> None:
    team = [agent("ali", status="offline"), agent("maryam", 9), agent("reza", 0)]
    tickets = [AssignedTicket(i, "ali", "motor", None) for i in range(3)]
    plan = tickets_to_reassign("ali", tickets, team, {"motor": "round_robin"}, {"motor": "maryam"})
    assert [r.to_agent for r in plan] == ["reza", "maryam", "reza"]
