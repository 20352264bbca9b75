"""Claim statuses, the transitions allowed between them, and "when EVENT if CONDITION then
ACTION" workflow rules.

Statuses follow a loss adjuster's file: new, assigned, awaiting_documents (waiting for the
customer's documents), awaiting_insurer (waiting for the insurer's instructions or approval),
inspection_scheduled, assessed, awaiting_settlement (the insurer pays), closed, reopened.

A workflow rule in the TOML config:

    [[workflow.rules]]
    name = "documents-reminder"
    when = { event = "no_customer_reply", days = 3 }
    if = { status = "awaiting_documents" }
    then = [{ action = "send_template", template = "documents_reminder" }]

The shipped example (default config) reminds after 3 business days in awaiting_documents and
closes with a final notice after 14; see tests/test_workflow.py.

`evaluate_workflow` is pure: the daemon emits events (a scheduler emits `no_customer_reply`
once per threshold from `reply_timeouts`, counted in business days of the ticket's calendar)
and applies the returned actions in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.rules import LineOfBusiness, Priority, validation_problem
from router.sla import SlaTarget

Status = Literal[
    "new",
    "assigned",
    "awaiting_documents",
    "awaiting_insurer",
    "inspection_scheduled",
    "assessed",
    "awaiting_settlement",
    "closed",
    "reopened",
]

_WORKING: frozenset[Status] = frozenset(
    {"assigned", "awaiting_documents", "awaiting_insurer", "inspection_scheduled", "assessed"}
)
TRANSITIONS: dict[str, frozenset[str]] = {
    # Closing straight from "new" covers spam and duplicates.
    "new": frozenset({"assigned", "awaiting_documents", "awaiting_insurer", "closed"}),
    # Back to "new" is how a ticket returns to its queue when its agent leaves and nobody can
    # take it.
    "assigned": (_WORKING | {"new", "closed"}) - {"assigned"},
    "awaiting_documents": (_WORKING | {"closed"}) - {"awaiting_documents"},
    "awaiting_insurer": (_WORKING | {"closed"}) - {"awaiting_insurer"},
    "inspection_scheduled": (_WORKING | {"closed"}) - {"inspection_scheduled"},
    "assessed": frozenset(
        {"awaiting_settlement", "awaiting_documents", "awaiting_insurer", "assigned", "closed"}
    ),
    # A disputed settlement sends the file back for re-assessment.
    "awaiting_settlement": frozenset({"closed", "assessed", "awaiting_documents"}),
    "closed": frozenset({"reopened"}),
    "reopened": (_WORKING | {"awaiting_settlement", "closed"}),
}

# The SLA clock stops while the next move is someone else's: the customer's documents, the
# insurer's instructions, the insurer's payment.
PAUSING_STATUSES: frozenset[Status] = frozenset(
    {"awaiting_documents", "awaiting_insurer", "awaiting_settlement"}
)


class TransitionError(ValueError):
    def __init__(self, old: str, new: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(old, ()))) or "(unknown status)"
        super().__init__(f"cannot move a ticket from {old!r} to {new!r}: allowed {allowed}")
        self.old = old
        self.new = new


def check_transition(old: str, new: str) -> None:
    """Raise TransitionError unless `old` -> `new` is allowed (staying put is not a move)."""
    if new not in TRANSITIONS.get(old, frozenset()):
        raise TransitionError(old, new)


# ---- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What workflow conditions may look at."""

    ticket_id: int
    status: Status
    priority: Priority
    insurer: str | None = None
    line_of_business: LineOfBusiness = "other"
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MessageReceived:
    ticket: TicketFacts
    from_customer: bool


@dataclass(frozen=True, slots=True)
class StatusChanged:
    ticket: TicketFacts
    old: Status


@dataclass(frozen=True, slots=True)
class SlaWarning:
    ticket: TicketFacts
    target: SlaTarget


@dataclass(frozen=True, slots=True)
class SlaBreach:
    ticket: TicketFacts
    target: SlaTarget


@dataclass(frozen=True, slots=True)
class NoCustomerReply:
    ticket: TicketFacts
    days: int
    """Business days since the customer last wrote or the ticket entered its status."""


Event = MessageReceived | StatusChanged | SlaWarning | SlaBreach | NoCustomerReply
EventName = Literal[
    "message_received", "status_changed", "sla_warning", "sla_breach", "no_customer_reply"
]
_EVENT_NAMES: dict[type, EventName] = {
    MessageReceived: "message_received",
    StatusChanged: "status_changed",
    SlaWarning: "sla_warning",
    SlaBreach: "sla_breach",
    NoCustomerReply: "no_customer_reply",
}

# ---- rules ----------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    event: EventName
    days: int | None = Field(default=None, ge=1)
    """For no_customer_reply only: the business-day threshold that fires the rule."""


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class Condition(_Model):
    """All given keys must hold; list values are any-of."""

    status: tuple[Status, ...] = ()
    from_status: tuple[Status, ...] = ()
    priority: tuple[Priority, ...] = ()
    insurer: tuple[str, ...] = ()
    line_of_business: tuple[LineOfBusiness, ...] = ()
    tags: tuple[str, ...] = ()
    target: tuple[SlaTarget, ...] = ()
    from_customer: bool | None = None

    _many = field_validator(
        "status", "from_status", "priority", "insurer", "line_of_business", "tags", "target",
        mode="before",
    )(_one_or_many)


class SetStatus(_Model):
    action: Literal["set_status"]
    status: Status


class Notify(_Model):
    """Notify people inside the firm (console alert plus email/Telegram through the outbox)."""

    action: Literal["notify"]
    who: Literal["supervisor", "assignee"]
    template: str


class SendTemplate(_Model):
    """Send a template to the customer on the ticket's channel, in the customer's language."""

    action: Literal["send_template"]
    template: str


class AddTag(_Model):
    action: Literal["add_tag"]
    tag: str


class Assign(_Model):
    """Reassign within `queue` (or the ticket's queue) by the queue's assignment mode."""

    action: Literal["assign"]
    queue: str | None = None
    skill: str | None = Field(None, min_length=1)  # as a routing rule's: "" is no agent's skill


class RaisePriority(_Model):
    action: Literal["raise_priority"]


Action = Annotated[
    SetStatus | Notify | SendTemplate | AddTag | Assign | RaisePriority,
    Field(discriminator="action"),
]


class WorkflowRule(_Model):
    name: str
    when: Trigger
    if_: Condition = Field(default=Condition(), alias="if")
    then: tuple[Action, ...] = Field(min_length=1)

    @field_validator("then", mode="before")
    @classmethod
    def _single_action(cls, value: Any) -> Any:
        return (value,) if isinstance(value, dict) else value


class WorkflowRuleError(ValueError):
    pass


def parse_workflow_rules(data: Sequence[Any]) -> list[WorkflowRule]:
    """Validate config rules; raise WorkflowRuleError naming the rule, key and value at fault.

    Beyond the shape, a `set_status` action must be a legal move from every status the rule's
    condition allows, so an impossible rule fails at start-up rather than at 3 a.m.
    """
    rules: list[WorkflowRule] = []
    for index, raw in enumerate(data):
        label = f"workflow rule {index + 1}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" {raw['name']!r}"
        if not isinstance(raw, dict):
            raise WorkflowRuleError(
                f"{label}: expected a table with 'when' and 'then', got {raw!r}"
            )
        try:
            rule = WorkflowRule.model_validate({"name": f"workflow-{index + 1}", **raw})
        except ValidationError as exc:
            raise WorkflowRuleError(f"{label}: {validation_problem(exc.errors()[0])}") from None
        if (rule.when.days is None) != (rule.when.event != "no_customer_reply"):
            raise WorkflowRuleError(
                f"{label}: when.days = {rule.when.days!r}: expected a number of business days "
                "for no_customer_reply and nothing for other events"
            )
        for action in rule.then:
            if isinstance(action, SetStatus):
                for status in rule.if_.status:
                    if action.status not in TRANSITIONS[status]:
                        error = TransitionError(status, action.status)
                        raise WorkflowRuleError(f"{label}: {error}")
        rules.append(rule)
    return rules


def evaluate_workflow(rules: Sequence[WorkflowRule], event: Event) -> list[Action]:
    """The actions of every rule that matches `event`, in rule order (not first-match: a
    breach may both notify the supervisor and raise the priority through separate rules)."""
    name = _EVENT_NAMES[type(event)]
    actions: list[Action] = []
    for rule in rules:
        if rule.when.event != name:
            continue
        if isinstance(event, NoCustomerReply) and rule.when.days != event.days:
            continue
        if _holds(rule.if_, event):
            actions.extend(rule.then)
    return actions


def reply_timeouts(rules: Sequence[WorkflowRule]) -> list[int]:
    """The business-day thresholds at which the scheduler should emit NoCustomerReply."""
    return sorted({r.when.days for r in rules if r.when.days is not None})


def _holds(cond: Condition, event: Event) -> bool:
    ticket = event.ticket
    tags = {t.casefold() for t in ticket.tags}
    return (
        (not cond.status or ticket.status in cond.status)
        and (not cond.priority or ticket.priority in cond.priority)
        and (not cond.insurer or ticket.insurer in cond.insurer)
        and (not cond.line_of_business or ticket.line_of_business in cond.line_of_business)
        and (not cond.tags or any(t.casefold() in tags for t in cond.tags))
        and (
            not cond.from_status
            or (isinstance(event, StatusChanged) and event.old in cond.from_status)
        )
        and (
            not cond.target
            or (isinstance(event, (SlaWarning, SlaBreach)) and event.target in cond.target)
        )
        and (
            cond.from_customer is None
            or (isinstance(event, MessageReceived) and event.from_customer == cond.from_customer)
        )
    )

