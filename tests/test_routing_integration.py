"""Routing rules and assignment in the running daemon: mail over real SMTP is routed by the TOML
rules, handed to agents in the store by the queue's mode, waits visibly when nobody can take it,
and moves when its agent goes offline."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from config.loader import ConfigError
from config.policies import load_policies
from ingest import queries
from ingest.agents import create_agent, new_token
from ingest.daemon import Daemon
from ingest.routing_hooks import set_agent_status, update_agent
from tests.conftest import settings_from, write_config
from tests.mailgen import mail
from tests.test_smtp import send

RULES = """
[[queues]]
name = "intake"
assignment = "none"

[[queues]]
name = "auto"
assignment = "least_loaded"
reassign_on_offline = true

[[routing.rules]]
name = "motor-accident"
when = { keywords = ["تصادف"], language = "fa" }
then = { queue = "auto", priority = "high", skill = "motor", tags = ["motor"] }

[routing.default]
queue = "intake"
"""


async def add_agent(daemon: Daemon, name: str, *, skills: frozenset[str] = frozenset({"motor"}),
                    queues: frozenset[str] = frozenset({"auto"}), status: str = "available", cap: int = 25) -> None:
    await daemon.store.write(create_agent(name, "agent", queues, new_token()))
    await daemon.store.write(update_agent(name, skills=skills, load_cap=cap))
    if status != "available":
        await daemon.store.write(set_agent_status(name, status))


async def accident(daemon: Daemon, n: int) -> None:
    code, _ = await send(daemon, mail(subject=f"تصادف خودرو شماره {n}", body="سلام، ماشینم تصادف کرده است.",
                                      sender=f"driver{n}@example.com", message_id=f"<accident-{n}@example.com>"))
    assert code == 250


async def tickets(daemon: Daemon) -> list[dict[str, Any]]:
    await daemon.ingest.drained()
    return sorted(await queries.list_tickets(daemon.store), key=lambda t: t["reference"])


async def events(daemon: Daemon, ref: str, kind: str) -> list[dict[str, Any]]:
    detail = await queries.ticket_detail(daemon.store, ref)
    assert detail is not None
    return [e for e in detail["timeline"] if e["kind"] == kind]


async def test_persian_accident_mail_is_routed_to_the_auto_queue_with_high_priority(make_daemon: Any) -> None:
    daemon = await make_daemon(RULES)
    await accident(daemon, 1)
    code, _ = await send(daemon, mail(subject="Question about my policy", body="When does it renew?",
                                      sender="other@example.com"))
    assert code == 250
    routed, plain = await tickets(daemon)
    assert (routed["queue"], routed["priority"]) == ("auto", "high")
    assert (plain["queue"], plain["priority"]) == ("intake", "normal")
    (event,) = await events(daemon, routed["reference"], "routed")
    assert (event["rule"], event["skill"], event["tags"]) == ("motor-accident", "motor", ["motor"])
    assert (await events(daemon, plain["reference"], "routed"))[0]["rule"] is None


async def test_least_loaded_assignment_spreads_over_available_agents_with_the_skill(make_daemon: Any) -> None:
    daemon = await make_daemon(RULES)
    await add_agent(daemon, "ali")
    await add_agent(daemon, "sara")
    await add_agent(daemon, "reza", status="away")
    await add_agent(daemon, "mina", skills=frozenset({"health"}))
    for n in range(6):
        await accident(daemon, n)
        await daemon.ingest.drained()  # one at a time, so each choice sees the previous ones
    rows = await tickets(daemon)
    assert Counter(t["assignee"] for t in rows) == {"ali": 3, "sara": 3}
    assert all(t["status"] == "assigned" for t in rows)


async def test_nobody_available_leaves_the_ticket_waiting_visibly_until_an_agent_comes(make_daemon: Any) -> None:
    daemon = await make_daemon(RULES)
    await add_agent(daemon, "ali", status="offline")
    await accident(daemon, 1)
    (ticket,) = await tickets(daemon)
    assert (ticket["queue"], ticket["assignee"], ticket["status"]) == ("auto", None, "new")
    (queued,) = await events(daemon, ticket["reference"], "queued")
    assert queued["reason"] == "no agent available"

    taken = await daemon.store.write(set_agent_status("ali", "available"))
    assert taken == [(ticket["reference"], "ali")]
    assert (await tickets(daemon))[0]["assignee"] == "ali"


async def test_an_agent_going_offline_hands_open_tickets_to_colleagues(make_daemon: Any) -> None:
    daemon = await make_daemon(RULES)
    await add_agent(daemon, "ali")
    await add_agent(daemon, "sara", status="away")
    for n in range(2):
        await accident(daemon, n)
    assert {t["assignee"] for t in await tickets(daemon)} == {"ali"}
    await daemon.store.write(set_agent_status("sara", "available"))

    moved = await daemon.store.write(set_agent_status("ali", "offline"))
    rows = await tickets(daemon)
    assert sorted(moved) == sorted((t["reference"], "sara") for t in rows)
    assert {t["assignee"] for t in rows} == {"sara"}
    assigned = await events(daemon, rows[0]["reference"], "assigned")
    assert (assigned[-1]["old"], assigned[-1]["new"]) == ("ali", "sara")


async def test_offline_agent_with_nobody_to_take_over_returns_tickets_to_the_queue(make_daemon: Any) -> None:
    daemon = await make_daemon(RULES)
    await add_agent(daemon, "ali")
    await accident(daemon, 1)
    await daemon.store.write(set_agent_status("ali", "offline"))
    (ticket,) = await tickets(daemon)
    assert (ticket["assignee"], ticket["status"]) == (None, "new")


def test_check_config_names_the_rule_and_line_of_an_unknown_queue(tmp_path: Path) -> None:
    bad = RULES + """
[[routing.rules]]
name = "hospital"
when = { keywords = ["بیمارستان"] }
then = { queue = "health" }
"""
    path = write_config(tmp_path, bad)
    lines = path.read_text(encoding="utf-8").splitlines()
    line = lines.index('name = "hospital"')  # 1-based: the header just above it
    assert lines[line - 1] == "[[routing.rules]]"
    with pytest.raises(ConfigError) as caught:
        load_policies(settings_from(path))
    message = str(caught.value)
    assert f"routing rule 2 (line {line}) 'hospital'" in message
    assert "then.queue = 'health': unknown queue: expected one of auto, intake" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[[sla.policies]]\nname = "gold"\ninsurer = "iran"\nfirst_response = 2\n',
         "expected a default policy with neither insurer nor priority"),
        ('[[sla.policies]]\nname = "std"\nfirst_response = -1\n', "sla policy 1 (line"),
        ('[[queues]]\nname = "x"\nassignment = "random"\n', "queue 1 (line"),
        ('[routing.default]\nqueue = "nowhere"\n', "routing.default.queue = 'nowhere': unknown queue"),
        ('[[workflow.rules]]\nname = "w"\nwhen = { event = "status_changed" }\n'
         'then = [{ action = "send_template", template = "nope" }]\n', "workflow rule 1 (line"),
        ('[calendar]\nofficial_holidays = "XY"\n', "calendar.official_holidays = 'XY': expected a country code"),
    ],
)
def test_policy_mistakes_fail_with_the_section_and_what_was_expected(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        load_policies(settings_from(write_config(tmp_path, extra)))


def test_the_shipped_default_config_has_valid_policies() -> None:
    from config.loader import load_settings
    from connectors.registry import settings_schemas

    policies = load_policies(load_settings(None, environ={}, connector_schemas=settings_schemas()))
    assert [r.name for r in policies.workflow] == ["documents-arrived", "documents-reminder", "documents-timeout"]
    assert policies.sla_policy("standard") is not None


SKILL_RULES = """
[[queues]]
name = "auto"
assignment = "least_loaded"

[[routing.rules]]
name = "motor-accident"
when = { keywords = ["تصادف"] }
then = { queue = "auto", skill = "motor" }

[[routing.rules]]
name = "other-auto"
when = { keywords = ["خودرو"] }
then = { queue = "auto" }

[routing.default]
queue = "auto"
"""


async def test_a_ticket_needing_a_skill_the_agent_lacks_does_not_block_the_ones_they_can_take(make_daemon: Any) -> None:
    daemon = await make_daemon(SKILL_RULES)
    await add_agent(daemon, "sara", skills=frozenset(), queues=frozenset({"auto"}), status="offline", cap=1)
    assert (await send(daemon, mail(subject="تصادف", body="تصادف کردم", sender="a@example.com")))[0] == 250
    await daemon.ingest.drained()
    assert (await send(daemon, mail(subject="خودرو", body="شیشه خودرو شکست", sender="b@example.com")))[0] == 250
    waiting = await tickets(daemon)
    assert [t["assignee"] for t in waiting] == [None, None]
    taken = await daemon.store.write(set_agent_status("sara", "available"))
    (glass,) = [t for t in await tickets(daemon) if t["subject"] == "خودرو"]
    assert taken == [(glass["reference"], "sara")], "the older motor claim needs a skill she lacks"


def test_extra_closed_days_may_be_jalali_like_report_days(tmp_path: Path) -> None:
    from datetime import date
    policies = load_policies(settings_from(write_config(tmp_path, "[calendar]\nextra_closed = [1405-09-10, 2026-12-02]\n")))
    assert policies.business.is_closed_day(date(2026, 12, 1))  # 10 Azar 1405, a Tuesday
    assert policies.business.is_closed_day(date(2026, 12, 2))
    with pytest.raises(ConfigError, match="1404-12-30 is not a Jalali day"):  # 1404 is not a leap year
        load_policies(settings_from(write_config(tmp_path, "[calendar]\nextra_closed = [1404-12-30]\n")))
