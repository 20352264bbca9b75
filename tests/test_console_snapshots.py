"""Snapshots of the main screens, with Persian text, from fixed data at a fixed instant (the
pilot tests in test_console.py cover the same screens against a real daemon).

Update after a deliberate change: pytest tests/test_console_snapshots.py --snapshot-update"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from textual.pilot import Pilot

from console.app import ConsoleApp
from console.client import AgentClient
from console.main_screen import MainScreen
from console.render import Prefs
from console.ticket_screen import TicketScreen

NOW = datetime(2025, 3, 21, 8, 30, tzinfo=UTC)  # 1404/01/01 12:00 in Tehran
SIZE = (150, 36)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def ticket(ref: str, subject: str, name: str, identity: str, channels: list[str], status: str, priority: str,
           assignee: str | None, waiting_minutes: float | None, target: float = 480) -> dict[str, Any]:
    waiting = at(waiting_minutes) if waiting_minutes is not None else None
    return {
        "reference": ref, "subject": subject, "status": status, "queue": "intake", "priority": priority,
        "assignee": assignee, "contact": {"id": 1, "name": name, "identity": identity}, "channels": channels,
        "message_count": 3, "insurer": "", "line_of_business": "motor", "created_at": at(600), "updated_at": at(5),
        "last_inbound_at": waiting, "last_outbound_at": None, "closed_at": None, "waiting_since": waiting,
        "merged_into": None,
        "sla_due_at": at(waiting_minutes - target) if waiting_minutes is not None else None,
        "sla_warn_at": at(waiting_minutes - target * 0.75) if waiting_minutes is not None else None,
    }


TICKETS = [
    ticket("PV-1404-000003", "تصادف در بزرگراه همت؛ سپر عقب", "علی رضایی", "+989121234567", ["sms", "telegram"],
           "new", "urgent", None, 40, target=30),
    ticket("PV-1404-000002", "Windscreen claim, policy 88-123", "Sara Ahmadi", "sara@example.com", ["email"],
           "assigned", "normal", "sara", 400),
    ticket("PV-1404-000001", "آب‌گرفتگی انبار [bold red]فوری[/]", "مریم کاظمی", "maryam@example.com",
           ["email", "call"], "awaiting_documents", "high", "reza", None),
]
THREAD = {
    **TICKETS[0],
    "messages": [
        {"id": 1, "direction": "in", "kind": "message", "channel": "sms", "sender": "+989121234567",
         "sender_name": "", "subject": "", "text": "سلام، امروز صبح در بزرگراه همت تصادف کردم. پلاک ۲۲ی۴۵۶",
         "display_text": "سلام، امروز صبح در بزرگراه همت تصادف کردم. پلاک ۲۲ی۴۵۶", "auto_reason": None,
         "author": None, "created_at": at(60), "attachments": []},
        {"id": 2, "direction": "out", "kind": "message", "channel": "sms", "sender": "", "sender_name": "",
         "subject": "", "text": "پرونده PV-1404-000003 ثبت شد.", "display_text": "پرونده PV-1404-000003 ثبت شد.",
         "auto_reason": None, "author": "system", "created_at": at(59), "attachments": []},
        {"id": 3, "direction": "in", "kind": "message", "channel": "telegram", "sender": "telegram:5501",
         "sender_name": "Ali R", "subject": "", "text": "عکس‌ها را فرستادم \x1b[31m[bold]",
         "display_text": "عکس‌ها را فرستادم \x1b[31m[bold]", "auto_reason": None, "author": None,
         "created_at": at(40),
         "attachments": [{"filename": "bumper.jpg", "content_type": "image/jpeg", "size": 183_204}]},
        {"id": 4, "direction": "internal", "kind": "note", "channel": "internal", "sender": "sara",
         "sender_name": "", "subject": "", "text": "Garage quote expected tomorrow", "display_text":
         "Garage quote expected tomorrow", "auto_reason": None, "author": "sara", "created_at": at(30),
         "attachments": []},
    ],
    "timeline": [{"at": at(35), "kind": "priority_changed", "actor": "sara", "old": "normal", "new": "urgent"}],
    "reply_channels": [{"channel": "telegram", "recipient": "5501", "default": True},
                       {"channel": "sms", "recipient": "+989121234567", "default": False}],
    "no_reply_reason": None,
    "contact_panel": {"id": 1, "display_name": "علی رضایی", "organisation": "", "role": "policyholder", "tags": "",
                      "identities": [{"kind": "phone", "value": "+989121234567", "display_name": ""},
                                     {"kind": "telegram", "value": "5501", "display_name": "Ali R"}],
                      "tickets": [{"ref": "PV-1404-000003", "status": "new", "queue": "intake", "insurer": "",
                                   "subject": "تصادف در بزرگراه همت؛ سپر عقب", "updated_at": at(5)}]},
}
QUEUES = [
    {"queue": "intake", "open": 3, "unassigned": 1, "waiting": 2, "oldest_waiting": at(400), "at_risk": 2,
     "breached": 1},
    {"queue": "motor", "open": 0, "unassigned": 0, "waiting": 0, "oldest_waiting": None, "at_risk": 0, "breached": 0},
]
SUPERVISOR = {
    "agents": [
        {"name": "reza", "role": "agent", "queues": ["motor"], "active": 1,
         "load": {"open": 1, "waiting": 0, "oldest_waiting": None}},
        {"name": "sara", "role": "supervisor", "queues": [], "active": 1,
         "load": {"open": 1, "waiting": 1, "oldest_waiting": at(400)}},
    ],
    "other_assignees": [],
    "queues": QUEUES,
    "at_risk": [{**TICKETS[0], "breached": True}, {**TICKETS[1], "breached": False}],
}


class CannedClient(AgentClient):
    """Answers the console's requests with the fixed data above."""

    def __init__(self) -> None:
        super().__init__("ws://canned.invalid", "canned", reconnect=False)

    async def connect(self) -> dict[str, Any]:
        self.agent = {"name": "sara", "role": "supervisor", "queues": []}
        self.server_now = NOW.isoformat()
        self.last_event_id = 0
        self.on_state("connected")
        return {"type": "welcome", "agent": self.agent, "last_event_id": 0, "now": self.server_now}

    async def request(self, op: str, **args: Any) -> Any:
        answers: dict[str, Any] = {
            "queues": QUEUES, "list_tickets": {"total": len(TICKETS), "tickets": TICKETS, "next_cursor": None},
            "open_ticket": THREAD, "supervisor": SUPERVISOR, "search": {"tickets": TICKETS[:1]},
            "templates": {"templates": []},
        }
        return copy.deepcopy(answers[op])

    async def close(self) -> None:
        pass


def app() -> ConsoleApp:
    # English labels: these snapshots were taken before the console spoke Persian (its Persian
    # labels: test_ticket_view_in_persian, and the pilot tests in test_console_i18n.py).
    return ConsoleApp("ws://canned.invalid", "canned", Prefs(language="en"), client=CannedClient(), clock=lambda: NOW)


async def settled(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the screen did not settle")
        await asyncio.sleep(0.01)
    await pilot.pause()


async def on_list(pilot: Pilot[Any]) -> None:
    await settled(pilot, lambda: isinstance(pilot.app.screen, MainScreen) and len(pilot.app.screen.tickets.order) == 3)


async def on_ticket(pilot: Pilot[Any]) -> None:
    await on_list(pilot)
    await pilot.press("enter")
    await settled(pilot, lambda: isinstance(pilot.app.screen, TicketScreen) and pilot.app.screen.detail is not None)


def test_ticket_list_with_queues_and_sla_countdowns(snap_compare: Any) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=on_list)


def test_ticket_view_with_a_cross_channel_persian_thread(snap_compare: Any) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=on_ticket)


def test_ticket_list_at_80x24_shows_claim_sla_subject_and_every_key(snap_compare: Any) -> None:
    assert snap_compare(app(), terminal_size=(80, 24), run_before=on_list)


def test_ticket_view_at_80x24_gives_the_thread_the_width(snap_compare: Any) -> None:
    assert snap_compare(app(), terminal_size=(80, 24), run_before=on_ticket)


def test_reply_composer_counts_sms_segments(snap_compare: Any) -> None:
    async def composing(pilot: Pilot[Any]) -> None:
        await on_ticket(pilot)
        await pilot.press("home", "r")
        await pilot.pause()
        await pilot.press(*"salam, kojaid?")

    assert snap_compare(app(), terminal_size=SIZE, run_before=composing)


def test_supervisor_view(snap_compare: Any) -> None:
    async def supervising(pilot: Pilot[Any]) -> None:
        await on_list(pilot)
        await pilot.press("v")
        await pilot.pause(0.1)

    assert snap_compare(app(), terminal_size=SIZE, run_before=supervising)


def test_ticket_view_in_persian(snap_compare: Any) -> None:
    """The console's own labels in Persian (the shipped default), reordered for a terminal
    without bidi like the customer text beside them."""
    persian = ConsoleApp("ws://canned.invalid", "canned", Prefs(), client=CannedClient(), clock=lambda: NOW)
    assert snap_compare(persian, terminal_size=SIZE, run_before=on_ticket)


def test_latin_digits_gregorian_dates_and_no_bidi(snap_compare: Any) -> None:
    plain = ConsoleApp("ws://canned.invalid", "canned", Prefs(calendar="gregorian", digits="latin", bidi=False, language="en"),
                       client=CannedClient(), clock=lambda: NOW)
    assert snap_compare(plain, terminal_size=SIZE, run_before=on_list)
