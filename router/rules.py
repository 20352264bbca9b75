"""Routing rules: config data in, a queue/priority/skill/SLA decision out. First match wins.

A rule in the TOML config:

    [[routing.rules]]
    name = "vip-motor"
    when = { line_of_business = "auto", contact_tags = ["VIP", "broker"], keywords = ["تصادف"] }
    then = { queue = "motor", priority = "high", skill = "motor", sla_policy = "gold" }

Every `when` key is optional and all given keys must hold; a key with a list holds when any
item matches. Keywords are compared after Persian normalisation (ي/ی, ك/ک, digits, ZWNJ...),
as substrings, so "تصادف" also finds "تصادفی".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.persian import normalize_for_matching

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
LineOfBusiness = Literal["auto", "health", "other"]
Language = Literal["fa", "en"]
# The channels messages arrive on (`InboundMessage.channel`): not the connector kinds, so mail
# through [smtp] or [[imap]] is "email", an insurer's filing through [insurer_api] is "api", and
# Twilio's are "sms" or "whatsapp". A plugin connector adds the channels it `sends` on.
CHANNELS: frozenset[str] = frozenset(
    {"email", "telegram", "bale", "sms", "whatsapp", "call", "webchat", "webform", "api"}
)


class RuleError(ValueError):
    """A routing rule that cannot be used; the message names the rule, the key and the value."""

    def __init__(
        self, index: int, name: str | None, key: str, value: object, expected: str,
        line: int | None = None, *, problem: str | None = None,
    ) -> None:
        where = f"routing rule {index + 1}"
        if line is not None:
            where += f" (line {line})"
        if name:
            where += f" {name!r}"
        super().__init__(f"{where}: {problem or f'{key} = {value!r}: {expected}'}")
        self.index = index
        self.line = line
        self.key = key
        self.value = value


def validation_problem(error: Mapping[str, Any]) -> str:
    """One pydantic error of a rule, worded as check-config words every other table's: pydantic's
    "Extra inputs are not permitted" hid that a key was misspelt, and a missing key was shown
    with the whole table as its value."""
    key = ".".join(str(part) for part in error["loc"]) or "rule"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (value {error['input']!r}); check the spelling against the documented keys"
    if error["type"] == "missing":
        return f"{key}: missing; it is required"
    return f"{key} = {error['input']!r}: {error['msg']}"


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: tuple[str, ...] = ()
    insurer: tuple[str, ...] = ()
    line_of_business: tuple[LineOfBusiness, ...] = ()
    contact_tags: tuple[str, ...] = ()
    language: tuple[Language, ...] = ()
    keywords: tuple[str, ...] = ()
    business_hours: bool | None = None

    @field_validator(
        "channel", "insurer", "line_of_business", "contact_tags", "language", "keywords",
        mode="before",
    )
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # `language = "fa"` reads better in TOML than `language = ["fa"]`; accept both.
        return (value,) if isinstance(value, str) else value

    @field_validator("contact_tags")
    @classmethod
    def _fold_tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(tag.casefold() for tag in value)

    @field_validator("keywords")
    @classmethod
    def _normalise_keywords(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Normalised once here so matching a message costs one normalisation of its text.
        keys = tuple(normalize_for_matching(k) for k in value)
        if any(not k for k in keys):
            raise ValueError("keywords must not be empty")
        return keys


class RouteAction(BaseModel):
    """Where a matched message goes. Also the shape of the default route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str
    priority: Priority = "normal"
    # "" would be a skill no agent has: the ticket would wait unassigned for ever.
    skill: str | None = Field(None, min_length=1)
    tags: tuple[str, ...] = ()
    sla_policy: str | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    when: Conditions = Conditions()
    then: RouteAction


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """What routing may look at. `business_hours` comes from the calendar at receipt time."""

    channel: str
    insurer: str | None
    line_of_business: LineOfBusiness
    language: Language
    business_hours: bool
    contact_tags: frozenset[str] = frozenset()
    subject: str = ""
    text: str = ""
    # normalize_for_matching(subject + "\n" + text) when the caller already has it.
    folded: str | None = None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    queue: str
    priority: Priority
    skill: str | None
    tags: tuple[str, ...]
    sla_policy: str | None
    rule: str | None
    """Name of the rule that matched; None when the default route was taken."""


def parse_rules(
    data: Sequence[Any], known_queues: set[str], lines: Sequence[int] | None = None,
    channels: Collection[str] = CHANNELS,
) -> list[Rule]:
    """Validate config rules in order. `lines[i]`, when given, is the config line of rule i.

    Raises RuleError for the first rule that is malformed, routes to a queue not in
    `known_queues`, or names a channel not in `channels` (it would never match).
    """
    rules: list[Rule] = []
    for index, raw in enumerate(data):
        line = lines[index] if lines is not None and index < len(lines) else None
        if not isinstance(raw, dict):
            raise RuleError(
                index, None, "rule", raw, "expected a table with 'when' and 'then'", line
            )
        name = raw.get("name") if isinstance(raw.get("name"), str) else None
        try:
            rule = Rule.model_validate({"name": f"rule-{index + 1}", **raw})
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"]) or "rule"
            value = error["input"] if error["type"] != "missing" else None
            raise RuleError(index, name, key, value, error["msg"], line, problem=validation_problem(error)) from None
        if rule.then.queue not in known_queues:
            raise RuleError(
                index, name, "then.queue", rule.then.queue,
                f"unknown queue: expected one of {', '.join(sorted(known_queues)) or '(none)'}",
                line,
            )
        for channel in rule.when.channel:
            if channel not in channels:
                raise RuleError(
                    index, name, "when.channel", channel,
                    f"unknown channel: expected one of {', '.join(sorted(channels))}", line,
                )
        rules.append(rule)
    return rules


def route(rules: Sequence[Rule], default: RouteAction, facts: RoutingFacts) -> RouteDecision:
    """The first rule whose conditions all hold decides; otherwise the default does."""
    haystack = facts.folded
    tags = frozenset(tag.casefold() for tag in facts.contact_tags)
    for rule in rules:
        when = rule.when
        if when.keywords and haystack is None:
            haystack = normalize_for_matching(f"{facts.subject}\n{facts.text}")
        if (
            _any_of(when.channel, facts.channel)
            and _any_of(when.insurer, facts.insurer)
            and _any_of(when.line_of_business, facts.line_of_business)
            and _any_of(when.language, facts.language)
            and (not when.contact_tags or not tags.isdisjoint(when.contact_tags))
            and (not when.keywords or any(k in (haystack or "") for k in when.keywords))
            and (when.business_hours is None or when.business_hours == facts.business_hours)
        ):
            return _decision(rule.then, rule.name)
    return _decision(default, None)


def raise_priority(priority: Priority) -> Priority:
    """One step up, saturating at "urgent" (an SLA escalation action)."""
    return PRIORITIES[min(PRIORITIES.index(priority) + 1, len(PRIORITIES) - 1)]


def _any_of(allowed: tuple[str, ...], value: str | None) -> bool:
    return not allowed or value in allowed


def _decision(action: RouteAction, rule: str | None) -> RouteDecision:
    return RouteDecision(
        queue=action.queue,
        priority=action.priority,
        skill=action.skill,
        tags=action.tags,
        sla_policy=action.sla_policy,
        rule=rule,
    )
