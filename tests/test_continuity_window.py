"""The continuity window counts from the conversation's last word: the customer's message or an
answer to them. What else moves a ticket (an assignment, a priority an escalation raised, a
supervisor's notice, an auto-reply) does not keep a quiet conversation open for a new subject."""

from __future__ import annotations

from typing import Any

from ingest import queries
from ingest.apply import agent_reply, assign_ticket, change_priority
from tests.mailgen import mail
from tests.test_sla_engine import saturday_morning
from tests.test_smtp import send

SUBJECT_A, SUBJECT_B = "Car accident on Hemmat", "Another matter entirely"


async def write(daemon: Any, subject: str, headers: dict[str, str] | None = None) -> None:
    assert (await send(daemon, mail(subject=subject, body="سلام", headers=headers)))[0] == 250
    await daemon.ingest.drained()


async def subjects_by_ticket(daemon: Any) -> list[list[str]]:
    tickets = sorted(await queries.list_tickets(daemon.store), key=lambda t: t["reference"])
    return [[m["subject"] for m in (await queries.ticket_detail(daemon.store, t["reference"]))["messages"]
             if m["direction"] == "in"] for t in tickets]


async def test_a_colleagues_changes_do_not_hold_a_quiet_conversation_open(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(clock=clock)
    await write(daemon, SUBJECT_A)
    (ticket,) = await queries.list_tickets(daemon.store)
    clock.advance(hours=60)  # the customer has said nothing since; the office works on the claim
    await daemon.store.write(change_priority(ticket["reference"], "urgent", "sla"))
    await daemon.store.write(assign_ticket(ticket["reference"], None, "maryam"))
    clock.advance(hours=20)  # 80 hours after the customer's mail, 20 after the changes
    await write(daemon, SUBJECT_B)
    assert await subjects_by_ticket(daemon) == [[SUBJECT_A], [SUBJECT_B]]


async def test_an_auto_reply_does_not_hold_it_open_either(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(clock=clock)
    await write(daemon, SUBJECT_A)
    clock.advance(hours=60)
    await write(daemon, f"Out of office: {SUBJECT_A}", {"Auto-Submitted": "auto-replied"})
    clock.advance(hours=20)
    await write(daemon, SUBJECT_B)
    tickets = await subjects_by_ticket(daemon)
    assert len(tickets) == 2 and tickets[1] == [SUBJECT_B]


async def test_an_answer_to_the_customer_keeps_the_conversation_open(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(clock=clock)
    await write(daemon, SUBJECT_A)
    (ticket,) = await queries.list_tickets(daemon.store)
    clock.advance(hours=60)
    await daemon.store.write(agent_reply(ticket["reference"], "Please send the photos", "maryam",
                                         daemon.ingest.context))
    clock.advance(hours=20)  # 20 hours after the answer: the customer answers back, in other words
    await write(daemon, SUBJECT_B)
    assert await subjects_by_ticket(daemon) == [[SUBJECT_A, SUBJECT_B]]
