"""Routing, assignment, SLA and workflow policies: the `[calendar]`, `[[queues]]`, `[routing]`,
`[sla]` and `[workflow]` sections of the config, validated into the values `router/` works on.

`load_policies(settings)` raises `ConfigError` naming the section, the rule's index and its
line in the TOML file (tomllib keeps no positions, so lines come from scanning the file text
for the Nth `[[section]]` header).

    [calendar]                      # the "business" calendar; "24x7" is always there too
    official_holidays = "IR"
    extra_closed = [2026-04-01]
    extra_open = []                 # official holidays worked (an estimated date that proved wrong)
    [calendar.hours]
    saturday = [["08:00", "16:00"]]

    [[queues]]
    name = "auto"
    assignment = "least_loaded"     # or "round_robin", or "none" (agents take tickets)
    reassign_on_offline = true

    [sla]
    supervisor_email = "supervisor@example.com"
    [[sla.policies]]
    name = "standard"
    first_response = 4              # business hours
    on_breach = ["raise_priority", "notify", "reassign"]
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from persiantools.jdatetime import JalaliDate
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from config.loader import ConfigError, Settings
from router.calendar import IRANIAN_WEEK, BusinessCalendar, official_year, parse_day, week_from_names
from router.rules import CHANNELS, Priority, RouteAction, Rule, RuleError, parse_rules
from router.sla import SlaPolicy
from router.workflow import Assign, Notify, SendTemplate, WorkflowRule, WorkflowRuleError, parse_workflow_rules

QueueAssignment = Literal["least_loaded", "round_robin", "none"]
Escalation = Literal["raise_priority", "notify", "reassign"]
CalendarName = Literal["business", "24x7"]
# What tickets carry in `insurer`: the name `insurer add` gives the client (ingest/insurers.py
# takes no other), so a rule or policy for "Asia" would never match the insurer "asia".
INSURER_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,62}")
INSURER_EXPECTED = "an insurer name as `insurer add` takes it: lower-case letters, digits, '-' or '_'"
TWENTY_FOUR_SEVEN = BusinessCalendar(twenty_four_seven=True, official_holidays=None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalendarConfig(_Model):
    timezone: str = "Asia/Tehran"
    # weekday -> [[open, close], ...]; omitted: the Iranian week (Sat-Wed 08-16, Thu 08-12).
    hours: dict[str, list[tuple[str, str]]] | None = None
    official_holidays: str | None = "IR"
    # A Jalali day is read as a TOML date (1405-12-19), or as a string where it is no Gregorian
    # date at all ("1406-02-31": TOML and pydantic refuse February 31st).
    extra_closed: list[date | str] = []
    extra_open: list[date | str] = []


class QueueConfig(_Model):
    name: str = Field(min_length=1)
    assignment: QueueAssignment = "least_loaded"
    reassign_on_offline: bool = True


class PolicyConfig(_Model):
    name: str = Field(min_length=1)
    insurer: str | None = None
    priority: Priority | None = None
    first_response: float | None = Field(None, gt=0, description="business hours")
    next_response: float | None = Field(None, gt=0)
    resolution: float | None = Field(None, gt=0)
    warn_at: float = Field(0.75, gt=0, le=1)
    calendar: CalendarName = "business"
    on_warning: tuple[Escalation, ...] = ("notify",)
    on_breach: tuple[Escalation, ...] = ("raise_priority", "notify")


class SlaSection(_Model):
    supervisor_email: str = ""
    supervisor_telegram: str = ""
    policies: list[dict[str, Any]] = []

    @field_validator("supervisor_email")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if value and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value):
            raise ValueError("a bare address such as 'supervisor@example.ir', or \"\" for none")
        return value


class TemplateText(_Model):
    """A text Parvandeh sends on its own, in both languages; `{ref}` is the claim reference."""

    subject: str = ""
    fa: str
    en: str


# Shipped texts for the default workflow; `[workflow.templates.NAME]` overrides or adds.
DEFAULT_TEMPLATES: dict[str, TemplateText] = {
    "documents_reminder": TemplateText(
        subject="Documents needed",
        fa="با سلام،\nبرای ادامه بررسی پرونده {ref} هنوز منتظر مدارک شما هستیم. لطفاً آن‌ها را در پاسخ همین پیام بفرستید.",
        en="Hello,\nWe are still waiting for your documents to continue claim {ref}. Please send them in reply to this message.",
    ),
    "documents_final_notice": TemplateText(
        subject="Claim closed",
        fa="با سلام،\nچون مدارک پرونده {ref} نرسید، پرونده بسته شد. با پاسخ به همین پیام می‌توانید آن را دوباره باز کنید.",
        en="Hello,\nAs the documents for claim {ref} did not arrive, the file has been closed. Reply to this message to reopen it.",
    ),
}


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    name: str
    assignment: QueueAssignment
    reassign_on_offline: bool


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    on_warning: tuple[Escalation, ...]
    on_breach: tuple[Escalation, ...]


@dataclass(frozen=True, slots=True)
class Policies:
    calendars: dict[str, BusinessCalendar]
    queues: dict[str, QueuePolicy]
    rules: tuple[Rule, ...]
    default_route: RouteAction
    sla: tuple[SlaPolicy, ...]
    escalation: dict[str, EscalationPolicy]
    supervisor_email: str
    supervisor_telegram: str
    workflow: tuple[WorkflowRule, ...]
    templates: dict[str, TemplateText] = field(default_factory=dict)
    # Valid but doubtful (official holidays known only by estimate): check-config prints them,
    # serve logs them at start.
    warnings: tuple[str, ...] = ()

    @property
    def business(self) -> BusinessCalendar:
        return self.calendars["business"]

    def sla_policy(self, name: str) -> SlaPolicy | None:
        return next((p for p in self.sla if p.name == name), None)


def header_lines(text: str, header: str) -> list[int]:
    """1-based lines of every `[[header]]` array-of-tables header, in file order."""
    pattern = re.compile(rf"^[ \t]*\[\[[ \t]*{re.escape(header)}[ \t]*\]\]", re.MULTILINE)
    return [text.count("\n", 0, m.start()) + 1 for m in pattern.finditer(text)]


def _where(label: str, index: int, lines: list[int]) -> str:
    line = f" (line {lines[index]})" if index < len(lines) else ""
    return f"{label} {index + 1}{line}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return f"{key}: missing; it is required"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key (value {err.get('input')!r}); check the spelling against the documented keys"
    expected = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    return f"{key} = {err.get('input')!r}: expected {expected}"


def _calendar(raw: Any) -> BusinessCalendar:
    try:
        conf = CalendarConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"calendar.{_first_error(exc)}") from None
    try:
        tz = ZoneInfo(conf.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"calendar.timezone = {conf.timezone!r}: expected an IANA zone like 'Asia/Tehran'") from None
    if conf.official_holidays:
        # Checked here, not on the first business-time sum: an unknown code would otherwise pass
        # check-config and then stop the daemon at start (NotImplementedError from `holidays`).
        try:
            holidays.country_holidays(conf.official_holidays)
        except NotImplementedError:
            raise ConfigError(f"calendar.official_holidays = {conf.official_holidays!r}: expected a country code of "
                              "the `holidays` package, like 'IR', or \"\" for none") from None
    closed, opened = _days("extra_closed", conf.extra_closed), _days("extra_open", conf.extra_open)
    if both := sorted(closed & opened):
        raise ConfigError(f"calendar.extra_open: {both[0].isoformat()} is in extra_closed too; expected each day in "
                          "one of them")
    try:
        week = IRANIAN_WEEK if conf.hours is None else week_from_names(conf.hours)
        return BusinessCalendar(tz=tz, week=week, official_holidays=conf.official_holidays or None,
                                extra_closed=closed, extra_open=opened)
    except ValueError as exc:
        raise ConfigError(f"calendar: {exc}") from None


def _days(key: str, days: list[date | str]) -> frozenset[date]:
    """Gregorian days; a year before 1700 is a Jalali day (1405-01-11), as `report --from` reads them."""
    gregorian: set[date] = set()
    for day in days:
        text = day if isinstance(day, str) else day.isoformat()
        try:
            gregorian.add(parse_day(text))
        except ValueError:
            year = text.strip()[:4]
            what = "a Jalali day" if year.isdigit() and int(year) < 1700 else "a day"
            raise ConfigError(f"calendar.{key}: {text} is not {what}; expected a Gregorian (2026-03-31) or Jalali"
                              ' (1405-01-11; "1406-06-31" quoted, as it is no Gregorian date) date') from None
    return frozenset(gregorian)


def holiday_warnings(calendar: BusinessCalendar, years: Iterable[int]) -> list[str]:
    """What the operator should know about the official holidays of `years`: a year the `holidays`
    package has none for would count every day as a working day, and its estimated (lunar) dates
    may be a day off. An estimated day listed in extra_closed (confirmed) or extra_open (moved or
    cancelled) is settled and not named again."""
    country = calendar.official_holidays
    if country is None:
        return []
    warnings = []
    for year in years:
        table = official_year(country, year)
        if not table.days:
            warnings.append(f"calendar.official_holidays = {country!r}: the `holidays` package "
                            f"({holidays.__version__}) has no holidays for {year}, so every day of it counts as a "
                            "working day; upgrade it, or list that year's holidays in [calendar] extra_closed")
            continue
        unsettled = sorted(table.estimated - calendar.extra_closed - calendar.extra_open)
        if unsettled:
            days = ", ".join(f"{day.isoformat()} ({JalaliDate(day).isoformat()})" for day in unsettled)
            warnings.append(f"calendar.official_holidays = {country!r}: {len(unsettled)} holidays of {year} are only "
                            f"estimates of the `holidays` package (lunar dates, often a day off): {days}; once "
                            "announced, confirm each in [calendar] extra_closed, or list a wrong one in extra_open "
                            "and the real day in extra_closed")
    return warnings


def _queues(raw: Any, default_queue: str, lines: list[int]) -> dict[str, QueuePolicy]:
    if not isinstance(raw, list):
        raise ConfigError(f"queues = {raw!r}: expected tables [[queues]] with a name")
    queues: dict[str, QueuePolicy] = {}
    for index, item in enumerate(raw):
        where = _where("queue", index, lines)
        try:
            conf = QueueConfig.model_validate(item)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_error(exc)}") from None
        if conf.name in queues:
            raise ConfigError(f"{where}: name = {conf.name!r}: expected a name not used by another queue")
        queues[conf.name] = QueuePolicy(conf.name, conf.assignment, conf.reassign_on_offline)
    # The claims default queue always exists; undeclared, nobody is auto-assigned to it.
    queues.setdefault(default_queue, QueuePolicy(default_queue, "none", False))
    return queues


def _sla(raw: Any, lines: list[int]) -> tuple[SlaSection, list[SlaPolicy], dict[str, EscalationPolicy]]:
    try:
        section = SlaSection.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"sla.{_first_error(exc)}") from None
    policies: list[SlaPolicy] = []
    escalation: dict[str, EscalationPolicy] = {}
    for index, item in enumerate(section.policies):
        where = _where("sla policy", index, lines)
        try:
            conf = PolicyConfig.model_validate(item)
            policy = SlaPolicy(
                name=conf.name, insurer=conf.insurer, priority=conf.priority, warn_at=conf.warn_at,
                calendar=conf.calendar,
                **{k: timedelta(hours=h) if h is not None else None
                   for k, h in (("first_response", conf.first_response), ("next_response", conf.next_response),
                                ("resolution", conf.resolution))},
            )
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_error(exc)}") from None
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if policy.name in escalation:
            raise ConfigError(f"{where}: name = {policy.name!r}: expected a name not used by another policy")
        if policy.insurer is not None and not INSURER_NAME.fullmatch(policy.insurer):
            raise ConfigError(f"{where}: insurer = {policy.insurer!r}: expected {INSURER_EXPECTED}")
        twin = next((p for p in policies if (p.insurer, p.priority) == (policy.insurer, policy.priority)), None)
        if twin is not None:  # select_policy takes the first listed: this one would never apply
            raise ConfigError(f"{where}: {policy.name!r} (insurer = {policy.insurer!r}, priority = "
                              f"{policy.priority!r}) is for the same tickets as {twin.name!r}, listed before it and "
                              "always chosen; expected another insurer or priority")
        policies.append(policy)
        escalation[policy.name] = EscalationPolicy(conf.on_warning, conf.on_breach)
    if policies and not any(p.insurer is None and p.priority is None for p in policies):
        raise ConfigError("sla.policies: expected a default policy with neither insurer nor priority")
    return section, policies, escalation


def _templates(raw: Any) -> dict[str, TemplateText]:
    templates = dict(DEFAULT_TEMPLATES)
    if not isinstance(raw, dict):
        raise ConfigError(f"workflow.templates = {raw!r}: expected tables [workflow.templates.NAME]")
    for name, item in raw.items():
        try:
            templates[name] = TemplateText.model_validate(item)
        except ValidationError as exc:
            raise ConfigError(f"workflow.templates.{name}.{_first_error(exc)}") from None
        for language in ("fa", "en"):
            check_template(f"workflow.templates.{name}.{language}", getattr(templates[name], language), ("ref",))
    return templates


def check_template(key: str, text: str, placeholders: Collection[str]) -> None:
    """Test-fill `text` as str.format fills it when sent, with a sample for each placeholder: a
    misspelt one ({costumer}) or a lone brace failed every message (or reached the customer)."""
    try:
        text.format(**{name: "x" for name in placeholders})
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        names = ", ".join(f"{{{name}}}" for name in placeholders)
        raise ConfigError(f"{key} = {text!r}: {type(exc).__name__} {exc}; expected {names} as placeholders, none "
                          "other, and {{ }} for a literal brace") from None


def _plugin_channels() -> frozenset[str]:
    """Channels an operator's own connector (an entry point outside our `connectors` package)
    sends on; ours are CHANNELS (the insurer API's webhooks only leave, so no rule matches them)."""
    from connectors.registry import connector_classes

    return frozenset(channel for cls in connector_classes().values() if not cls.__module__.startswith("connectors.")
                     for channel in cls.sends)


def _check_supervisor_targets(section: SlaSection, settings: Settings) -> None:
    """A supervisor address no configured connector can reach was dropped at every escalation
    without a word (the console alert alone remained). Judged by each instance's channels: a
    [telegram] table set to `channel = "bale"` sends on Bale only."""
    from connectors.registry import connector_classes

    classes = connector_classes()
    sending = {channel for kind, _, conf in settings.connector_instances() if kind in classes
               for channel in conf.channels(classes[kind].sends)}
    for key, value, channel, wanted in (
        ("supervisor_email", section.supervisor_email, "email", "a [outbound_smtp] table"),
        ("supervisor_telegram", section.supervisor_telegram, "telegram",
         'a [telegram] table (with channel = "telegram", the default)'),
    ):
        if value and channel not in sending:
            raise ConfigError(f"sla.{key} = {value!r}: no configured connector sends on {channel}; expected "
                              f"{wanted}, or {key} = \"\"")


def load_policies(settings: Settings) -> Policies:
    """Validate the policy sections of `settings.extra`; raise ConfigError at the first fault.
    What is valid but doubtful (this year's and next year's holidays known only by estimate) is
    in `warnings`."""
    extra = settings.extra
    try:
        text = Path(settings.source).read_text(encoding="utf-8") if settings.source else ""
    except OSError:
        text = ""
    business = _calendar(extra.get("calendar", {}))
    queues = _queues(extra.get("queues", []), settings.claims.default_queue, header_lines(text, "queues"))

    routing = extra.get("routing", {})
    if not isinstance(routing, dict):
        raise ConfigError(f"routing = {routing!r}: expected a table [routing]")
    unknown = set(routing) - {"rules", "default"}
    if unknown:
        raise ConfigError(f"routing.{sorted(unknown)[0]}: unknown key; expected rules or default")
    rule_lines = header_lines(text, "routing.rules")
    rules_raw = routing.get("rules", [])
    if not isinstance(rules_raw, list):  # [routing.rules] for [[routing.rules]]
        raise ConfigError(f"routing.rules = {rules_raw!r}: expected [[routing.rules]] tables")
    try:
        rules = parse_rules(rules_raw, set(queues), rule_lines, channels=CHANNELS | _plugin_channels())
    except RuleError as exc:
        raise ConfigError(str(exc)) from None
    for index, rule in enumerate(rules):
        for insurer in rule.when.insurer:
            if not INSURER_NAME.fullmatch(insurer):
                raise ConfigError(f"{_where('routing rule', index, rule_lines)} {rule.name!r}: when.insurer = "
                                  f"{insurer!r}: expected {INSURER_EXPECTED}")
    try:
        default_route = RouteAction.model_validate(routing.get("default", {"queue": settings.claims.default_queue}))
    except ValidationError as exc:
        raise ConfigError(f"routing.default.{_first_error(exc)}") from None
    if default_route.queue not in queues:
        raise ConfigError(f"routing.default.queue = {default_route.queue!r}: unknown queue; expected one of "
                          f"{', '.join(sorted(queues))}")

    sla_raw = extra.get("sla", {})
    section, policies, escalation = _sla(sla_raw, header_lines(text, "sla.policies"))
    names = {p.name for p in policies}
    for index, rule in enumerate(rules):
        if rule.then.sla_policy is not None and rule.then.sla_policy not in names:
            raise ConfigError(f"{_where('routing rule', index, rule_lines)} {rule.name!r}: "
                              f"then.sla_policy = {rule.then.sla_policy!r}: unknown policy; expected one of "
                              f"{', '.join(sorted(names)) or '(none: add [[sla.policies]])'}")
    if default_route.sla_policy is not None and default_route.sla_policy not in names:
        raise ConfigError(f"routing.default.sla_policy = {default_route.sla_policy!r}: unknown policy; expected one of "
                          f"{', '.join(sorted(names)) or '(none: add [[sla.policies]])'}")
    _check_supervisor_targets(section, settings)

    workflow = extra.get("workflow", {})
    if not isinstance(workflow, dict):
        raise ConfigError(f"workflow = {workflow!r}: expected [[workflow.rules]] tables")
    unknown = set(workflow) - {"rules", "templates"}
    if unknown:
        raise ConfigError(f"workflow.{sorted(unknown)[0]}: unknown key; expected rules ([[workflow.rules]]) or "
                          "templates ([workflow.templates.NAME])")
    wf_lines = header_lines(text, "workflow.rules")
    wf_raw = workflow.get("rules", [])
    if not isinstance(wf_raw, list):
        raise ConfigError(f"workflow.rules = {wf_raw!r}: expected [[workflow.rules]] tables")
    wf_rules: list[WorkflowRule] = []
    for index, item in enumerate(wf_raw):
        try:  # one at a time, so the error can carry this rule's index and line
            wf_rules += parse_workflow_rules([item])
        except WorkflowRuleError as exc:
            detail = str(exc).removeprefix("workflow rule 1")
            raise ConfigError(f"{_where('workflow rule', index, wf_lines)}{detail}") from None
    templates = _templates(workflow.get("templates", {}))
    for index, rule in enumerate(wf_rules):
        where = f"{_where('workflow rule', index, wf_lines)} {rule.name!r}"
        for action in rule.then:
            if isinstance(action, (SendTemplate, Notify)) and action.template not in templates:
                raise ConfigError(f"{where}: template = {action.template!r}: unknown template; expected one of "
                                  f"{', '.join(sorted(templates))} or a [workflow.templates.{action.template}] table")
            if isinstance(action, Assign) and action.queue is not None and action.queue not in queues:
                raise ConfigError(f"{where}: queue = {action.queue!r}: unknown queue; expected one of "
                                  f"{', '.join(sorted(queues))}")
        for insurer in rule.if_.insurer:
            if not INSURER_NAME.fullmatch(insurer):
                raise ConfigError(f"{where}: if.insurer = {insurer!r}: expected {INSURER_EXPECTED}")
    year = date.today().year
    return Policies(
        calendars={"business": business, "24x7": TWENTY_FOUR_SEVEN},
        queues=queues, rules=tuple(rules), default_route=default_route, sla=tuple(policies),
        escalation=escalation, supervisor_email=section.supervisor_email,
        supervisor_telegram=section.supervisor_telegram, workflow=tuple(wf_rules), templates=templates,
        warnings=tuple(holiday_warnings(business, (year, year + 1))),
    )
