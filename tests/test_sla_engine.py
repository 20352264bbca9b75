"""The SLA scheduler in the running daemon, on a clock the test controls: warnings, breaches and
escalations fire at their due instants, pauses stop the clock, and pending deadlines survive a
restart. Mail comes in over real SMTP and the supervisor's notice leaves through a real relay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import queries
from ingest.apply import agent_reply, change_priority, change_status
from ingest.daemon import Daemon
from ingest.reports import build_report
from ingest.store import iso
from tests.conftest import refuse_writes
from tests.mailgen import mail
from connectors.standins.smtp_sink import SmtpSink
from tests.test_smtp import send

TEHRAN = ZoneInfo("Asia/Tehran")

POLICY_24X7 = """
[sla]
supervisor_email = "boss@parvandeh.test"

[[sla.policies]]
name = "standard"
first_response = 4
resolution = 40
warn_at = 0.75
calendar = "24x7"
on_warning = ["notify"]
on_breach = ["raise_priority", "notify"]
"""


class FakeClock:
    """A mutable `now` shared by the store, the scheduler and the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def saturday_morning() -> FakeClock:
    # Saturday 7 Azar 1405, 09:00 in Tehran: a working day, no holiday near.
    return FakeClock(datetime(2026, 11, 28, 9, 0, tzinfo=TEHRAN).astimezone(UTC))


async def open_ticket(daemon: Daemon, subject: str = "Car accident claim", body: str = "My car was hit.") -> dict[str, Any]:
    code, _ = await send(daemon, mail(subject=subject, body=body))
    assert code == 250
    await daemon.ingest.drained()
    (ticket,) = await queries.list_tickets(daemon.store)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    assert detail is not None
    return detail


async def timeline(daemon: Daemon, ref: str) -> list[dict[str, Any]]:
    detail = await queries.ticket_detail(daemon.store, ref)
    assert detail is not None
    return detail["timeline"]


def kinds(events: list[dict[str, Any]], *wanted: str) -> list[str]:
    return [e["kind"] for e in events if e["kind"] in wanted]


async def test_ticket_warns_breaches_escalates_and_supervisor_mail_leaves_through_the_outbox(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    clock = saturday_morning()
    start = clock.now
    try:
        daemon = await make_daemon(POLICY_24X7, outbound_port=sink.port, clock=clock)
        ticket = await open_ticket(daemon)
        ref = ticket["reference"]
        (ack,) = await sink.wait_for(1)
        assert "Expected response: by 13:00 on Saturday 28 November 2026 (Tehran time)" in ack.get_content()

        clock.advance(hours=2, minutes=59)
        assert await daemon.sla.fire_due() == 0  # not yet 75 %

        clock.advance(minutes=1)
        await daemon.sla.fire_due()
        mails = await sink.wait_for(2)
        warning = mails[1]
        assert warning["To"] == "boss@parvandeh.test"
        assert warning["Subject"].endswith(f"[{ref}] SLA warning: first response")
        assert "is due by 13:00" in warning.get_content()

        clock.advance(hours=1)
        await daemon.sla.fire_due()
        mails = await sink.wait_for(3)
        assert mails[2]["Subject"].endswith(f"[{ref}] SLA breached: first response")

        events = await timeline(daemon, ref)
        sla = [e for e in events if e["kind"] in ("sla_started", "sla_warning", "sla_breached", "priority_changed",
                                                   "supervisor_alert")]
        assert [e["kind"] for e in sla] == [
            "sla_started", "sla_warning", "supervisor_alert", "sla_breached", "priority_changed", "supervisor_alert",
        ]
        at = {e["kind"]: datetime.fromisoformat(e["at"]) for e in sla}
        assert at["sla_started"] == start
        assert at["sla_warning"] == start + timedelta(hours=3)
        assert at["sla_breached"] == start + timedelta(hours=4)
        breach = next(e for e in sla if e["kind"] == "sla_breached")
        assert (breach["clock"], datetime.fromisoformat(breach["due_at"])) == ("first_response", start + timedelta(hours=4))
        assert next(e for e in sla if e["kind"] == "priority_changed")["new"] == "high"
        (row,) = await queries.list_tickets(daemon.store)
        assert row["priority"] == "high"
        # Each deadline fires once: nothing left to do at the same instant or later.
        clock.advance(hours=1)
        assert await daemon.sla.fire_due() == 0
    finally:
        await sink.stop()


async def test_the_scheduler_fires_on_its_own_when_the_clock_reaches_the_due_time(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    ticket = await open_ticket(daemon)
    clock.advance(hours=4)
    deadline = asyncio.get_running_loop().time() + 10
    while "sla_breached" not in kinds(await timeline(daemon, ticket["reference"]), "sla_breached"):
        assert asyncio.get_running_loop().time() < deadline, "the scheduler did not wake up"
        await asyncio.sleep(0.05)


async def test_a_breach_due_while_the_store_refuses_writes_is_recorded_once_it_accepts_them(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    ticket = await open_ticket(daemon)
    await refuse_writes(daemon, True)
    clock.advance(hours=4)
    deadline = asyncio.get_running_loop().time() + 10
    while not daemon.sla.failed:
        assert asyncio.get_running_loop().time() < deadline, "the scheduler did not try"
        await asyncio.sleep(0.05)
    assert not kinds(await timeline(daemon, ticket["reference"]), "sla_breached")
    await refuse_writes(daemon, False)
    deadline = asyncio.get_running_loop().time() + 10
    while not kinds(await timeline(daemon, ticket["reference"]), "sla_breached"):
        assert asyncio.get_running_loop().time() < deadline, "the breach was dropped with the failed write"
        await asyncio.sleep(0.05)
    assert kinds(await timeline(daemon, ticket["reference"]), "sla_breached") == ["sla_breached"]


async def test_an_agent_reply_meets_the_first_response_and_nothing_fires(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    ref = (await open_ticket(daemon))["reference"]
    clock.advance(hours=1)
    await daemon.store.write(agent_reply(ref, "We are on it.", "ali", daemon.ingest.context))
    clock.advance(hours=5)
    await daemon.sla.fire_due()
    events = await timeline(daemon, ref)
    assert kinds(events, "sla_met", "sla_warning", "sla_breached") == ["sla_met"]
    assert next(e for e in events if e["kind"] == "sla_met")["late"] is False


async def test_a_pause_stops_the_clock_and_resuming_continues_it(make_daemon: Any) -> None:
    clock = saturday_morning()
    start = clock.now
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    ref = (await open_ticket(daemon))["reference"]
    clock.advance(hours=1)
    await daemon.store.write(change_status(ref, "awaiting_documents", "ali"))
    clock.advance(hours=10)  # far past the original due time, but paused
    assert await daemon.sla.fire_due() == 0
    await daemon.store.write(change_status(ref, "assigned", "ali"))
    # One hour was used before the pause: three remain from the resumption.
    clock.advance(hours=2, minutes=59)
    await daemon.sla.fire_due()
    assert kinds(await timeline(daemon, ref), "sla_breached") == []
    clock.advance(minutes=1)
    await daemon.sla.fire_due()
    events = await timeline(daemon, ref)
    assert kinds(events, "sla_paused", "sla_resumed", "sla_warning", "sla_breached") == [
        "sla_paused", "sla_resumed", "sla_warning", "sla_breached"]
    breach = next(e for e in events if e["kind"] == "sla_breached")
    assert datetime.fromisoformat(breach["at"]) == start + timedelta(hours=14)


async def test_a_pending_breach_survives_a_restart(make_daemon: Any) -> None:
    clock = saturday_morning()
    start = clock.now
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    ref = (await open_ticket(daemon))["reference"]
    await daemon.stop()

    clock.advance(hours=6)  # the daemon was down while the deadline passed
    again = await make_daemon(POLICY_24X7, clock=clock)
    assert again.sla.pending == 1
    await again.sla.fire_due()
    events = await timeline(again, ref)
    assert kinds(events, "sla_warning", "sla_breached") == ["sla_warning", "sla_breached"]
    due = next(e for e in events if e["kind"] == "sla_breached")["due_at"]
    assert datetime.fromisoformat(due) == start + timedelta(hours=4)


BUSINESS = """
[calendar]
official_holidays = "IR"

[[sla.policies]]
name = "standard"
first_response = 4
calendar = "business"
"""


async def test_persian_acknowledgement_states_the_due_time_in_jalali_with_persian_digits(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    # Wednesday 16:50 (4 Azar 1405): the business day is over; Thursday's half day holds the 4 hours.
    clock = FakeClock(datetime(2026, 11, 25, 16, 50, tzinfo=TEHRAN).astimezone(UTC))
    try:
        daemon = await make_daemon(BUSINESS, outbound_port=sink.port, clock=clock)
        await open_ticket(daemon, subject="خسارت تصادف", body="سلام، ماشینم تصادف کرده است.")
        (ack,) = await sink.wait_for(1)
        assert "زمان تقریبی پاسخ: تا ساعت ۱۲:۰۰ روز پنجشنبه ۵ آذر ۱۴۰۵" in ack.get_content()
    finally:
        await sink.stop()


WORKFLOW = POLICY_24X7 + """
[calendar]
official_holidays = ""
[calendar.hours]
saturday = [["08:00", "16:00"]]
sunday = [["08:00", "16:00"]]
monday = [["08:00", "16:00"]]
tuesday = [["08:00", "16:00"]]
wednesday = [["08:00", "16:00"]]
thursday = [["08:00", "12:00"]]

[[workflow.rules]]
name = "documents-reminder"
when = { event = "no_customer_reply", days = 3 }
if = { status = "awaiting_documents" }
then = [{ action = "send_template", template = "documents_reminder" }]

[[workflow.rules]]
name = "documents-timeout"
when = { event = "no_customer_reply", days = 14 }
if = { status = "awaiting_documents" }
then = [
  { action = "send_template", template = "documents_final_notice" },
  { action = "set_status", status = "closed" },
]
"""


def shipped_workflow() -> str:
    shipped = (Path(__file__).resolve().parent.parent / "config" / "default.toml").read_text(encoding="utf-8")
    rules = shipped[shipped.index("[[workflow.rules]]"):]
    return rules[:rules.index("\n# ")]


async def test_customer_writing_while_awaiting_documents_puts_the_claim_back_to_work(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    clock = saturday_morning()
    try:
        daemon = await make_daemon(BUSINESS + "next_response = 2\n" + shipped_workflow(), outbound_port=sink.port,
                                   clock=clock)
        ref = (await open_ticket(daemon))["reference"]
        await daemon.store.write(agent_reply(ref, "Please send the police report.", "ali", daemon.ingest.context))
        await daemon.store.write(change_status(ref, "awaiting_documents", "ali"))
        clock.advance(hours=1)
        code, _ = await send(daemon, mail(subject=f"Re: [{ref}] documents", body="Here is the police report."))
        assert code == 250
        await daemon.ingest.drained()
        (row,) = await queries.list_tickets(daemon.store)
        assert row["status"] == "assigned"
        events = await timeline(daemon, ref)
        assert [e["actor"] for e in events if e["kind"] == "status_changed"][-1] == "workflow"
        clock.advance(hours=3)  # the 2 business hours of the next response are up: Saturday 13:00
        await daemon.sla.fire_due()
        assert kinds(await timeline(daemon, ref), "sla_breached") == ["sla_breached"]
        clock.advance(days=10)
        await daemon.sla.fire_due()
        assert not [m for _, m in sink.received if "still waiting for your documents" in m.get_content()]
    finally:
        await sink.stop()


async def test_shipped_workflow_reminds_after_3_business_days_and_closes_after_14(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    clock = saturday_morning()
    try:
        daemon = await make_daemon(WORKFLOW, outbound_port=sink.port, clock=clock)
        ref = (await open_ticket(daemon))["reference"]
        await daemon.store.write(change_status(ref, "awaiting_documents", "ali"))
        await sink.wait_for(1)  # the acknowledgement
        # Saturday + 3 business days (Sunday, Monday, Tuesday) = Tuesday 09:00.
        clock.advance(days=2, hours=23)
        await daemon.sla.fire_due()
        assert len(sink.received) == 1
        clock.advance(hours=1)
        await daemon.sla.fire_due()
        reminder = (await sink.wait_for(2))[1]
        assert "still waiting for your documents" in reminder.get_content()
        assert (await queries.list_tickets(daemon.store))[0]["status"] == "awaiting_documents"

        clock.advance(days=20)
        await daemon.sla.fire_due()
        final = (await sink.wait_for(3))[2]
        assert "has been closed" in final.get_content()
        (row,) = await queries.list_tickets(daemon.store)
        assert row["status"] == "closed"
        events = await timeline(daemon, ref)
        closing = [e for e in events if e["kind"] == "status_changed" and e["new"] == "closed"]
        assert closing and closing[0]["actor"] == "workflow"
    finally:
        await sink.stop()


PER_PRIORITY = """
[[sla.policies]]
name = "standard"
first_response = 4
calendar = "24x7"

[[sla.policies]]
name = "fast"
priority = "high"
first_response = 1
calendar = "24x7"
"""


async def test_a_priority_change_moves_the_ticket_to_the_policy_of_its_new_priority(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(PER_PRIORITY, clock=clock)
    ticket = await open_ticket(daemon)
    ref, opened = ticket["reference"], clock.now
    assert ticket["sla_policy"] == "standard"
    clock.advance(minutes=30)
    await daemon.store.write(change_priority(ref, "high", "ali"))
    (changed,) = [e for e in await timeline(daemon, ref) if e["kind"] == "sla_policy_changed"]
    assert (changed["old"], changed["new"]) == ("standard", "fast")
    # The clock keeps its start: due one hour after the mail came, not after the change.
    assert datetime.fromisoformat(changed["due"]["first_response"]) == opened + timedelta(hours=1)
    clock.advance(minutes=45)
    await daemon.sla.fire_due()
    assert kinds(await timeline(daemon, ref), "sla_breached") == ["sla_breached"]


async def test_a_breach_stays_breached_when_its_raise_priority_moves_the_clock_to_a_longer_target(
        make_daemon: Any) -> None:
    """The breach's own escalation raises the priority, whose policy gives the clock a longer
    target: due later, but the breach recorded at 4 h stands (its state read "ok" beside its
    breached_at, to the insurer's view of the claim too)."""
    clock = saturday_morning()
    daemon = await make_daemon("""
[[sla.policies]]
name = "standard"
first_response = 4
calendar = "24x7"
on_breach = ["raise_priority"]

[[sla.policies]]
name = "relaxed"
priority = "high"
first_response = 8
calendar = "24x7"
""", clock=clock)
    ref, opened = (await open_ticket(daemon))["reference"], clock.now
    clock.advance(hours=4)
    await daemon.sla.fire_due()
    (row,) = await daemon.store.fetchall(
        "SELECT c.state, c.due_at, c.breached_at FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id"
        " WHERE t.ref = ? AND c.kind = 'first_response'", (ref,))
    assert datetime.fromisoformat(row["breached_at"]) == opened + timedelta(hours=4)
    assert datetime.fromisoformat(row["due_at"]) == opened + timedelta(hours=4)  # not the new target's 8 h
    assert row["state"] == "breached"
    (queue,) = await queries.queue_overview(daemon.store, None, warn_before={}, breach_before={}, now=iso(clock.now))
    assert queue["breached"] == 1  # the supervisor view counts it, not only after 8 h


async def test_a_policy_named_by_the_routing_rule_stays_when_the_priority_changes(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(PER_PRIORITY + """
[[queues]]
name = "intake"

[[routing.rules]]
name = "accidents"
when = { keywords = ["accident"] }
then = { queue = "intake", sla_policy = "standard" }
""", clock=clock)
    ref = (await open_ticket(daemon))["reference"]
    await daemon.store.write(change_priority(ref, "high", "ali"))
    events = await timeline(daemon, ref)
    assert kinds(events, "priority_changed", "sla_policy_changed") == ["priority_changed"]
    assert (await queries.ticket_detail(daemon.store, ref))["sla_policy"] == "standard"  # type: ignore[index]


NEXT_RESPONSE = """
[[sla.policies]]
name = "standard"
first_response = 4
next_response = 2
calendar = "24x7"
on_warning = []
on_breach = []
"""


async def test_a_breached_next_response_clock_stays_counted_when_the_customer_writes_again(make_daemon: Any) -> None:
    clock = saturday_morning()
    start = clock.now
    daemon = await make_daemon(NEXT_RESPONSE, clock=clock)

    async def customer(text: str) -> None:
        assert (await send(daemon, mail(subject="Claim PV", body=text)))[0] == 250
        await daemon.ingest.drained()

    async def sla_figures() -> tuple[int | None, float | None, int | None]:
        report = await build_report(daemon.store, start - timedelta(hours=1), start + timedelta(days=1), now=clock.now)
        return report.total.sla_clocks, report.total.sla_compliance_pct, report.total.sla_breaches

    await customer("My car was hit.")
    (t,) = await queries.list_tickets(daemon.store)
    ref = t["reference"]
    clock.advance(hours=1)
    await daemon.store.write(agent_reply(ref, "Send photos", "ali", daemon.ingest.context))  # in time
    clock.advance(minutes=10)
    await customer(f"[{ref}] here are photos")  # next response due in 2 h
    clock.advance(hours=3)
    await daemon.sla.fire_due()
    assert kinds(await timeline(daemon, ref), "sla_breached") == ["sla_breached"]
    assert await sla_figures() == (2, 50.0, 1)
    clock.advance(minutes=5)
    await daemon.store.write(agent_reply(ref, "Sorry, late", "ali", daemon.ingest.context))
    clock.advance(minutes=5)
    await customer(f"[{ref}] thanks, one more question")  # a new next-response clock replaces the breached one
    # Three clocks; the new one is pending, so compliance stays met / (met + breached).
    assert await sla_figures() == (3, 50.0, 1)
    # What schedules, lists and shows the clocks reads the live one: the new clock, due in 2 h.
    (live,) = await daemon.store.fetchall("SELECT state, next_at FROM sla_clocks WHERE kind = 'next_response'")
    assert live["state"] == "ok" and live["next_at"] is not None
    due, _ = (await queries.running_sla_clocks(daemon.store, [ref]))[ref]
    assert datetime.fromisoformat(due) == clock.now + timedelta(hours=2)


async def test_a_reply_after_the_due_time_is_late_though_the_breach_had_not_fired(make_daemon: Any) -> None:
    clock = saturday_morning()
    start = clock.now
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    ref = (await open_ticket(daemon))["reference"]
    await daemon.sla.stop()  # as while the daemon is down, or a reply from `run.py tickets reply`
    clock.advance(hours=5)  # 4 h target: an hour late
    await daemon.store.write(agent_reply(ref, "Sorry for the wait", "ali", daemon.ingest.context))
    events = await timeline(daemon, ref)
    assert kinds(events, "sla_breached", "sla_met", "priority_changed", "supervisor_alert") == [
        "sla_breached", "sla_met"]  # recorded, without the escalations: the answer has been sent
    breach = next(e for e in events if e["kind"] == "sla_breached")
    assert (breach["clock"], breach["escalated"]) == ("first_response", False)
    assert datetime.fromisoformat(breach["due_at"]) == start + timedelta(hours=4)
    assert next(e for e in events if e["kind"] == "sla_met")["late"] is True
    row = await daemon.store.fetchone("SELECT state, breached_at, next_at FROM sla_clocks WHERE kind = 'first_response'")
    assert (row["state"], datetime.fromisoformat(row["breached_at"]), row["next_at"]) == (
        "breached", start + timedelta(hours=4), None)


async def test_closing_after_the_due_times_records_the_breaches_the_scheduler_had_not_fired(make_daemon: Any) -> None:
    clock = saturday_morning()
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    ref = (await open_ticket(daemon))["reference"]
    await daemon.sla.stop()
    clock.advance(hours=41)  # past the first response (4 h) and the resolution (40 h), nobody answered
    await daemon.store.write(change_status(ref, "closed", "ali"))
    events = await timeline(daemon, ref)
    assert [(e["kind"], e.get("clock")) for e in events if e["kind"] in ("sla_breached", "sla_met")] == [
        ("sla_breached", "first_response"), ("sla_breached", "resolution"), ("sla_met", "resolution")]
    assert next(e for e in events if e["kind"] == "sla_met")["late"] is True
    report = await build_report(daemon.store, clock.now - timedelta(days=2), clock.now + timedelta(hours=1),
                                now=clock.now)
    assert (report.total.sla_clocks, report.total.sla_breaches) == (2, 2)


async def test_a_breach_fired_after_downtime_is_recorded_at_its_due_instant(make_daemon: Any) -> None:
    # Due at 13:00 on Saturday 7 Azar; the daemon is down from before then until Monday. The breach
    # belongs to Saturday (as it does when a reply, not the scheduler, notices it first).
    clock = saturday_morning()
    start = clock.now
    daemon = await make_daemon(POLICY_24X7, clock=clock)
    await open_ticket(daemon)
    await daemon.stop()
    clock.advance(days=2)
    again = await make_daemon(POLICY_24X7, clock=clock)
    await again.sla.fire_due()
    (row,) = await again.store.fetchall("SELECT breached_at FROM sla_clocks WHERE kind = 'first_response'")
    assert datetime.fromisoformat(row["breached_at"]) == start + timedelta(hours=4)
    saturday = datetime(2026, 11, 28, tzinfo=TEHRAN)
    report = await build_report(again.store, saturday, saturday + timedelta(days=1), now=clock.now)
    assert report.total.sla_breaches == 1
async def test_the_queue_overview_judges_risk_by_the_sla_clock_not_wall_clock_minutes(make_daemon: Any) -> None:
    from ingest.agents import Agent
    # Wednesday 17:00 (after hours): 4 business hours are due Thursday 12:00, warning at 11:00.
    clock = FakeClock(datetime(2026, 11, 25, 17, 0, tzinfo=TEHRAN).astimezone(UTC))
    daemon = await make_daemon(BUSINESS, clock=clock)
    await open_ticket(daemon)
    supervisor = Agent("boss", "supervisor", frozenset())

    async def risk() -> tuple[int, int]:
        (queue,) = await daemon.agent_api._queues(supervisor, {})
        return queue["at_risk"], queue["breached"]

    clock.advance(hours=9)  # Thursday 02:00: 9 wall-clock hours (past the 8 h fallback), no business time
    assert await risk() == (0, 0)
    clock.now = datetime(2026, 11, 26, 11, 0, tzinfo=TEHRAN).astimezone(UTC)
    assert await risk() == (1, 0)
    clock.now = datetime(2026, 11, 26, 12, 0, tzinfo=TEHRAN).astimezone(UTC)
    assert await risk() == (1, 1)


def test_the_english_due_time_names_the_calendars_own_zone() -> None:
    from ingest.routing_hooks import format_due
    due = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    assert format_due(due, False, TEHRAN) == "by 13:00 on Saturday 28 November 2026 (Tehran time)"
    assert format_due(due, False, ZoneInfo("Asia/Dubai")) == "by 13:30 on Saturday 28 November 2026 (Dubai time)"
