"""Claim statuses, transitions, and "when EVENT if CONDITION then ACTION" rules."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import get_args

import pytest

from config.loader import DEFAULT_CONFIG_PATH
from ingest import queries
from ingest.apply import merge_tickets
from router.calendar import TEHRAN, BusinessCalendar
from router.workflow import (
    PAUSING_STATUSES,
    TRANSITIONS,
    MessageReceived,
    NoCustomerReply,
    SendTemplate,
    SetStatus,
    SlaBreach,
    SlaWarning,
    Status,
    StatusChanged,
    TicketFacts,
    TransitionError,
    WorkflowRuleError,
    check_transition,
    evaluate_workflow,
    parse_workflow_rules,
    reply_timeouts,
)
from tests.test_reports import empty_dataset

STATUSES: tuple[str, ...] = get_args(Status)

# The example shipped in the default config, read from it: what ships is what is tested.
SHIPPED_RULES = parse_workflow_rules(tomllib.loads(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))["workflow"]["rules"])


def ticket(status: str = "awaiting_documents", **kw: object) -> TicketFacts:
    return TicketFacts(ticket_id=1, status=status, priority="normal", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("new", "assigned"),
        ("assigned", "awaiting_documents"),
        ("awaiting_documents", "assigned"),
        ("assigned", "inspection_scheduled"),
        ("inspection_scheduled", "assessed"),
        ("assessed", "awaiting_settlement"),
        ("awaiting_settlement", "closed"),
        ("closed", "reopened"),
        ("reopened", "assigned"),
        ("assigned", "new"),
        ("new", "closed"),
    ],
)
def test_allowed_transitions(old: str, new: str) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("closed", "assigned"),  # a closed file is reopened first
        ("new", "assessed"),
        ("awaiting_settlement", "inspection_scheduled"),
        ("assigned", "assigned"),
        ("assigned", "lost"),
        ("lost", "assigned"),
    ],
)
def test_refused_transitions_name_both_ends(old: str, new: str) -> None:
    with pytest.raises(TransitionError, match=f"from '{old}' to '{new}'"):
        check_transition(old, new)


def test_every_status_is_reachable_and_can_be_closed() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    reached, frontier = {"new"}, ["new"]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(STATUSES)
    for status in STATUSES:
        if status != "closed":
            assert "closed" in TRANSITIONS[status] or any(
                "closed" in TRANSITIONS[n] for n in TRANSITIONS[status]
            )


def test_waiting_on_customer_or_insurer_pauses_the_clock() -> None:
    assert {"awaiting_documents", "awaiting_insurer"} <= PAUSING_STATUSES
    assert not PAUSING_STATUSES & {"new", "assigned", "inspection_scheduled", "reopened"}


@pytest.mark.parametrize(
    ("status", "days", "templates", "new_status"),
    [
        ("awaiting_documents", 3, ["documents_reminder"], None),
        ("awaiting_documents", 14, ["documents_final_notice"], "closed"),
        ("awaiting_documents", 5, [], None),
        ("assigned", 3, [], None),
        ("assigned", 14, [], None),
    ],
)
def test_shipped_documents_rules(
    status: str, days: int, templates: list[str], new_status: str | None
) -> None:
    actions = evaluate_workflow(SHIPPED_RULES, NoCustomerReply(ticket(status), days))
    assert [a.template for a in actions if isinstance(a, SendTemplate)] == templates
    set_status = [a.status for a in actions if isinstance(a, SetStatus)]
    assert set_status == ([new_status] if new_status else [])
    if actions:
        assert isinstance(actions[0], SendTemplate)  # the notice goes before the close


def test_scheduler_thresholds_in_business_days() -> None:
    assert reply_timeouts(SHIPPED_RULES) == [3, 14]
    # Documents requested on a Wednesday: the reminder is due on Sunday (Thu, Sat, Sun).
    asked = datetime(2025, 10, 1, 10, tzinfo=TEHRAN)
    assert BusinessCalendar().add_business_days(asked, 3) == datetime(2025, 10, 5, 10, tzinfo=TEHRAN)


ESCALATION = parse_workflow_rules(
    [
        {
            "name": "breach-notify",
            "when": {"event": "sla_breach"},
            "then": {"action": "notify", "who": "supervisor", "template": "sla_breach"},
        },
        {
            "name": "breach-raise",
            "when": {"event": "sla_breach"},
            "if": {"target": ["first_response", "next_response"]},
            "then": [{"action": "raise_priority"}, {"action": "assign"}],
        },
        {
            "name": "vip-warning",
            "when": {"event": "sla_warning"},
            "if": {"tags": "VIP", "priority": ["normal", "high"]},
            "then": {"action": "add_tag", "tag": "at-risk"},
        },
        {
            "name": "customer-wrote",
            "when": {"event": "message_received"},
            "if": {"status": ["awaiting_documents"], "from_customer": True},
            "then": {"action": "set_status", "status": "assigned"},
        },
        {
            "name": "reopened-by-insurer",
            "when": {"event": "status_changed"},
            "if": {"status": "reopened", "from_status": "closed", "insurer": "iran"},
            "then": {"action": "notify", "who": "assignee", "template": "reopened"},
        },
    ]
)


def kinds(actions: list[object]) -> list[str]:
    return [a.action for a in actions]  # type: ignore[attr-defined]


def test_every_matching_rule_fires_in_order() -> None:
    breach = SlaBreach(ticket("assigned"), "first_response")
    assert kinds(evaluate_workflow(ESCALATION, breach)) == ["notify", "raise_priority", "assign"]
    resolution = SlaBreach(ticket("assigned"), "resolution")
    assert kinds(evaluate_workflow(ESCALATION, resolution)) == ["notify"]


def test_conditions_on_tags_priority_sender_and_previous_status() -> None:
    vip = ticket("assigned", tags=frozenset({"vip"}))
    assert kinds(evaluate_workflow(ESCALATION, SlaWarning(vip, "resolution"))) == ["add_tag"]
    assert evaluate_workflow(ESCALATION, SlaWarning(ticket("assigned"), "resolution")) == []
    assert kinds(evaluate_workflow(ESCALATION, MessageReceived(ticket(), True))) == ["set_status"]
    assert evaluate_workflow(ESCALATION, MessageReceived(ticket(), False)) == []
    reopened = ticket("reopened", insurer="iran")
    assert kinds(evaluate_workflow(ESCALATION, StatusChanged(reopened, "closed"))) == ["notify"]
    assert evaluate_workflow(ESCALATION, StatusChanged(ticket("reopened"), "closed")) == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"when": {"event": "sla_expired"}, "then": {"action": "raise_priority"}},
         "workflow rule 1: when.event = 'sla_expired'"),
        ({"when": {"event": "no_customer_reply"}, "then": {"action": "raise_priority"}},
         "workflow rule 1: when.days = None: expected a number of business days"),
        ({"when": {"event": "sla_breach", "days": 2}, "then": {"action": "raise_priority"}},
         "workflow rule 1: when.days = 2"),
        ({"name": "x", "when": {"event": "sla_breach"}, "then": {"action": "explode"}},
         "workflow rule 1 'x': then.0 = {'action': 'explode'}"),
        ({"when": {"event": "sla_breach"}, "then": []}, "workflow rule 1: then = []"),
        ({"when": {"event": "sla_breach"}, "if": {"status": "closed"},
          "then": {"action": "set_status", "status": "assigned"}},
         "workflow rule 1: cannot move a ticket from 'closed' to 'assigned'"),
        ("close", "workflow rule 1: expected a table"),
        ({"when": {"event": "sla_breach"}, "then": {"action": "assign", "skill": ""}},
         "workflow rule 1: then.0.assign.skill = '': String should have at least 1 character"),
    ],
)
def test_bad_workflow_rules_are_named(rule: object, message: str) -> None:
    with pytest.raises(WorkflowRuleError) as caught:
        parse_workflow_rules([rule])
    assert str(caught.value).startswith(message)


async def test_a_merge_moves_the_thread_and_leaves_the_source_its_own_history_with_its_closing(tmp_path: Path) -> None:
    d = await empty_dataset(tmp_path)
    x = await d.email(0, "x@example.com", "claim x")
    y = await d.email(0, "y@example.com", "claim y")
    await d.reply(1, x)
    await d.status(1, x, "assigned")
    d.clock.at(2)
    assert await d.store.write(merge_tickets(x, y, "maryam")) == 2
    source, target = await queries.ticket_detail(d.store, x), await queries.ticket_detail(d.store, y)
    await d.store.close()
    assert source is not None and target is not None
    assert [(e["kind"], e.get("old"), e.get("new")) for e in source["timeline"]] == [
        ("ticket_created", None, None), ("status_changed", "new", "assigned"),
        ("status_changed", "assigned", "closed"), ("merged_into", None, None)]
    closing = source["timeline"][2]
    assert (closing["actor"], closing["merged_into"]) == ("maryam", y)
    assert source["messages"] == []
    # The thread's own events go with its messages; the target's status history stays its own.
    assert [e["kind"] for e in target["timeline"]] == [
        "message_received", "ticket_created", "message_received", "outbound_queued", "merged_from"]
    assert [(m["direction"], m["subject"]) for m in target["messages"]] == [
        ("in", "claim x"), ("in", "claim y"), ("out", "claim x")]
