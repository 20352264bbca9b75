"""Routing rules: parsing with errors that point at the rule, and first-match-wins routing."""

from __future__ import annotations

import tomllib
from typing import get_args

import pytest

from router.rules import (
    CHANNELS,
    RouteAction,
    RoutingFacts,
    RuleError,
    parse_rules,
    raise_priority,
    route,
)

QUEUES = {"motor", "health", "general", "night", "vip"}

CONFIG = """
[[routing.rules]]
name = "vip"
when = { contact_tags = ["VIP", "reinsurer"] }
then = { queue = "vip", priority = "high", sla_policy = "gold" }

[[routing.rules]]
name = "after-hours-accident"
when = { business_hours = false, keywords = ["تصادف"] }
then = { queue = "night", priority = "urgent", tags = ["after-hours"] }

[[routing.rules]]
name = "motor"
when = { line_of_business = "auto", keywords = ["تصادف", "خسارت", "accident"] }
then = { queue = "motor", skill = "motor" }

[[routing.rules]]
name = "hospital"
when = { keywords = ["بیمارستان"], language = "fa" }
then = { queue = "health", skill = "health" }

[[routing.rules]]
name = "iran-by-insurer-api"
when = { channel = ["api"], insurer = "iran" }
then = { queue = "motor", priority = "high" }
"""
RULES = parse_rules(tomllib.loads(CONFIG)["routing"]["rules"], QUEUES)
DEFAULT = RouteAction(queue="general")


def facts(**overrides: object) -> RoutingFacts:
    base: dict[str, object] = {
        "channel": "email",
        "insurer": None,
        "line_of_business": "other",
        "language": "fa",
        "business_hours": True,
    }
    return RoutingFacts(**(base | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("why", "message", "queue", "rule"),
    [
        ("nothing matches: default", facts(text="سلام"), "general", None),
        ("tag any-of, case-insensitive", facts(contact_tags=frozenset({"vip"})), "vip", "vip"),
        ("first match wins over later rules",
         facts(contact_tags=frozenset({"Reinsurer"}), line_of_business="auto", text="تصادف"),
         "vip", "vip"),
        ("business hours condition",
         facts(business_hours=False, line_of_business="auto", text="تصادف در اتوبان"),
         "night", "after-hours-accident"),
        ("keyword inside a longer word", facts(line_of_business="auto", text="خسارت‌های وارده"),
         "motor", "motor"),
        ("keyword in the subject", facts(line_of_business="auto", subject="Car ACCIDENT"),
         "motor", "motor"),
        ("keyword needs the line of business too", facts(text="تصادف"), "general", None),
        # Arabic yeh and kaf, as from an Arabic keyboard or a windows-1256 mail.
        ("Arabic letters are normalised", facts(text="در بيمارستان بستري"), "health", "hospital"),
        ("language condition", facts(language="en", text="بیمارستان"), "general", None),
        ("channel and insurer", facts(channel="api", insurer="iran"), "motor",
         "iran-by-insurer-api"),
        ("insurer alone is not enough", facts(insurer="iran"), "general", None),
    ],
)
def test_route(why: str, message: RoutingFacts, queue: str, rule: str | None) -> None:
    decision = route(RULES, DEFAULT, message)
    assert (decision.queue, decision.rule) == (queue, rule)


def test_decision_carries_the_rule_actions() -> None:
    decision = route(RULES, DEFAULT, facts(business_hours=False, text="تصادف"))
    assert decision.priority == "urgent"
    assert decision.tags == ("after-hours",)
    assert decision.sla_policy is None
    vip = route(RULES, DEFAULT, facts(contact_tags=frozenset({"VIP"})))
    assert (vip.priority, vip.sla_policy, vip.skill) == ("high", "gold", None)
    default = route(RULES, DEFAULT, facts())
    assert (default.priority, default.skill, default.tags) == ("normal", None, ())


def test_persian_digits_in_keywords_match_ascii_text() -> None:
    rules = parse_rules([{"when": {"keywords": "ماده ۱۰"}, "then": {"queue": "motor"}}], QUEUES)
    assert rules[0].name == "rule-1"
    assert route(rules, DEFAULT, facts(text="طبق ماده 10 قانون")).queue == "motor"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"then": {"queue": "marine"}},
         "routing rule 2 (line 7): then.queue = 'marine': unknown queue: expected one of "
         "general, health, motor, night, vip"),
        ({"name": "de", "when": {"language": "de"}, "then": {"queue": "motor"}},
         "routing rule 2 (line 7) 'de': when.language.0 = 'de': Input should be 'fa' or 'en'"),
        ({"when": {"colour": "red"}, "then": {"queue": "motor"}},
         "routing rule 2 (line 7): when.colour: unknown key (value 'red'); check the spelling"),
        ({"when": {"channel": "sms"}},
         "routing rule 2 (line 7): then: missing; it is required"),
        ({"then": {"queue": "motor", "priority": "asap"}},
         "routing rule 2 (line 7): then.priority = 'asap': Input should be 'low', 'normal', "
         "'high' or 'urgent'"),
        ({"when": {"business_hours": "sometimes"}, "then": {"queue": "motor"}},
         "routing rule 2 (line 7): when.business_hours = 'sometimes': Input should be a valid "
         "boolean, unable to interpret input"),
        ("motor", "routing rule 2 (line 7): rule = 'motor': expected a table"),
        ({"then": {"queue": "motor", "skill": ""}},
         "routing rule 2 (line 7): then.skill = '': String should have at least 1 character"),
    ],
)
def test_bad_rule_names_index_line_key_and_value(rule: object, message: str) -> None:
    good = {"then": {"queue": "motor"}}
    with pytest.raises(RuleError) as caught:
        parse_rules([good, rule], QUEUES, lines=[3, 7])
    assert str(caught.value).startswith(message)
    assert caught.value.index == 1 and caught.value.line == 7


def test_empty_keyword_is_refused() -> None:
    with pytest.raises(RuleError, match="when.keywords"):
        parse_rules([{"when": {"keywords": ["\u200c"]}, "then": {"queue": "motor"}}], QUEUES)


def test_raise_priority_saturates() -> None:
    assert [raise_priority(p) for p in ("low", "normal", "high", "urgent")] == [
        "normal", "high", "urgent", "urgent",
    ]


def test_the_channels_rules_accept_are_those_our_connectors_produce() -> None:
    # CHANNELS is a list of its own (connectors declare what they send on, not what they receive):
    # a channel added to a connector and not here would be refused in every rule.
    from connectors.telegram.settings import TelegramSettings
    from connectors.twilio.inbound import message_channel
    from connectors.webchat.normalise import CHAT_CHANNEL, FORM_CHANNEL
    from ingest.claims_ops import API_CHANNEL
    from ingest.email_payload import EMAIL_CHANNEL

    produced = {EMAIL_CHANNEL, CHAT_CHANNEL, FORM_CHANNEL, API_CHANNEL, "call",
                message_channel("+989121234567"), message_channel("whatsapp:+989121234567"),
                *get_args(TelegramSettings.model_fields["channel"].annotation)}
    assert produced == CHANNELS


def test_a_rule_on_an_unknown_channel_is_refused() -> None:
    with pytest.raises(RuleError, match=r"when\.channel = 'insurer_api': unknown channel: expected one of api, bale"):
        parse_rules([{"when": {"channel": ["email", "insurer_api"]}, "then": {"queue": "motor"}}], QUEUES)
    assert parse_rules([{"when": {"channel": "eitaa"}, "then": {"queue": "motor"}}], QUEUES, channels={"eitaa"})
