"""Refusals of the agent API carry a stable `reason` and the values their words name (`params`)
beside the English `error`, and the console words them in the agent's language from those: a
Persian agent reads an illegal status change in Persian, an English one in English, and a reason
the console has no label for in the server's words."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from console.app import ConsoleApp
from console.client import AgentClient, ApiRequestError
from console.labels import refusal, shown
from console.pickers import STATUSES, Choice
from console.render import Prefs
from console.ticket_screen import TicketScreen
from tests.test_agent_api import Harness, running_harness
from tests.test_console import SIZE, console, until

PERSIAN = Prefs()
ENGLISH = Prefs(digits="latin", language="en")


@pytest.fixture
async def harness(make_daemon: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with running_harness(make_daemon) as h:
        yield h


async def refused(client: AgentClient, op: str, **args: Any) -> ApiRequestError:
    with pytest.raises(ApiRequestError) as caught:
        await client.request(op, **args)
    return caught.value


async def test_refusals_an_agent_meets_come_with_their_reason_and_values(harness: Harness) -> None:
    ref = await harness.mail(subject="تصادف", sender="ali@example.com")
    other = await harness.mail(subject="دوباره", sender="b@example.com")
    theirs = await harness.mail(subject="motor", sender="c@example.com")
    await harness.move_to_queue(theirs, "motor")
    sara = await harness.client(await harness.agent("sara"))
    reza = await harness.client(await harness.agent("reza"))
    boss = await harness.client(await harness.agent("boss", "supervisor"))

    await boss.request("set_status", ref=ref, status="closed")
    illegal = await refused(sara, "set_status", ref=ref, status="assessed")
    # The words stay the server's, for logs and other clients.
    assert illegal.code == "invalid"
    assert str(illegal) == f"{ref}: cannot move a ticket from 'closed' to 'assessed': allowed reopened"
    assert (illegal.reason, illegal.params) == ("illegal_transition", {"ref": ref, "old": "closed", "new": "assessed",
                                                                       "allowed": ["reopened"]})

    wrong = await refused(sara, "reply", ref=other, text="x", channel="sms")
    assert (wrong.reason, wrong.params) == ("wrong_reply_channel", {"ref": other, "channel": "sms",
                                                                    "channels": ["email"]})
    blank = await refused(sara, "note", ref=other, text="  ")
    assert (blank.reason, blank.params) == ("empty_text", {"field": "text"})

    await reza.request("take", ref=other)
    taken = await refused(sara, "take", ref=other)
    assert (taken.reason, taken.params) == ("assigned_to_colleague", {"ref": other, "agent": "reza"})
    elsewhere = await refused(sara, "open_ticket", ref=theirs)
    assert (elsewhere.code, elsewhere.reason, elsewhere.params) == (
        "forbidden", "not_your_queue", {"ref": theirs, "queue": "motor"})
    role = await refused(sara, "assign", ref=other, agent="reza")
    assert (role.code, role.reason, role.params) == ("forbidden", "needs_supervisor", {})
    nobody = await refused(boss, "assign", ref=other, agent="nobody")
    assert (nobody.reason, nobody.params) == ("unknown_agent", {"agent": "nobody"})
    itself = await refused(boss, "merge", source=other, target=other)
    assert itself.reason == "merge_into_itself"

    await boss.request("merge", source=other, target=theirs)
    again = await refused(boss, "merge", source=other, target=theirs)
    assert (again.reason, again.params) == ("already_merged", {"ref": other, "into": theirs})
    moved = await refused(boss, "set_status", ref=other, status="reopened")
    assert (moved.reason, moved.params) == ("merged_ticket", {"ref": other, "into": theirs})

    contact = (await boss.request("open_ticket", ref=ref))["contact"]["id"]
    same = await refused(boss, "merge_contacts", keep=contact, merge=contact)  # a contact's refusal too
    assert (same.code, same.reason, same.params) == ("invalid", "contact_merge_into_itself", {"contact": contact})


async def test_a_refusal_no_client_words_itself_comes_without_a_reason(harness: Harness) -> None:
    sara = await harness.client(await harness.agent("sara"))
    bad = await refused(sara, "list_tickets", limit=0)
    assert (bad.code, bad.reason, bad.params) == ("invalid", None, {})
    assert str(bad).startswith("expected 'limit' as a whole number")


def test_a_refusal_is_worded_from_its_reason_or_left_in_the_servers_words() -> None:
    params = {"ref": "PV-1405-000001", "old": "closed", "new": "assessed", "allowed": ["reopened", "closed"]}
    assert refusal("illegal_transition", params, "server words", ENGLISH) == (
        "PV-1405-000001: cannot move the ticket from closed to assessed; allowed: reopened, closed")
    assert refusal("illegal_transition", params, "server words", PERSIAN) == (
        "PV-1405-000001: پرونده را نمی‌توان از «بسته» به «ارزیابی شده» برد؛ مجاز: بازگشایی شده، بسته")
    # A reason a newer daemon added, none at all, or values the label needs missing: the words.
    assert refusal("quota_exceeded", {"limit": 3}, "you may hold 3 tickets", PERSIAN) == "you may hold 3 tickets"
    assert refusal(None, {}, "expected a JSON object", PERSIAN) == "expected a JSON object"
    assert refusal("illegal_transition", {"ref": "PV-1"}, "PV-1: cannot", PERSIAN) == "PV-1: cannot"
    # Numbers take the agent's digits; a value with no name here (a plugin's channel) stays as sent.
    assert refusal("merge_already_undone", {"merge": 12}, "", PERSIAN) == "ادغام ۱۲ پیش‌تر لغو شده است"
    assert refusal("wrong_reply_channel", {"ref": "PV-1", "channel": "pigeon", "channels": ["sms", "email"]}, "",
                   PERSIAN) == "به PV-1 نمی‌توان در pigeon پاسخ داد، فقط در پیامک، ایمیل"


async def try_assessing_a_closed_ticket(harness: Harness, app: ConsoleApp, ref: str) -> str:
    """Open the closed ticket, pick "assessed" in the status picker; the refusal shown."""
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.client.agent)
        app.open_ticket(ref)
        await until(pilot, lambda: isinstance(app.screen, TicketScreen) and app.screen.detail is not None)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, Choice))
        await pilot.press(*["down"] * STATUSES.index("assessed"), "enter")
        await until(pilot, lambda: any(n.severity == "error" for n in app._notifications))
        (shown_refusal,) = [n.message for n in app._notifications if n.severity == "error"]
    return shown_refusal


async def closed_ticket(harness: Harness) -> str:
    ref = await harness.mail(subject="claim", sender="ali@example.com")
    boss = await harness.client(await harness.agent("boss", "supervisor"))
    await boss.request("set_status", ref=ref, status="closed")
    return ref


async def test_a_persian_agent_reads_an_illegal_status_change_in_persian(harness: Harness) -> None:
    ref = await closed_ticket(harness)
    app = ConsoleApp(harness.url, await harness.agent("sara"), PERSIAN)
    message = await try_assessing_a_closed_ticket(harness, app, ref)
    assert message == shown("error.illegal_transition", PERSIAN, ref=ref, old="بسته", new="ارزیابی شده",
                            allowed="بازگشایی شده")
    assert "cannot" not in message and "closed" not in message


async def test_an_english_agent_reads_it_in_english(harness: Harness) -> None:
    ref = await closed_ticket(harness)
    app = await console(harness)
    message = await try_assessing_a_closed_ticket(harness, app, ref)
    assert message == f"{ref}: cannot move the ticket from closed to assessed; allowed: reopened"
