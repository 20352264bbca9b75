"""Report figures against a small dataset written through the real write operations with a
controlled clock, checked against values computed by hand; the CLI's formats; and the HTML
report rendered in headless Chromium."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest import queries
from ingest.agents import create_agent, new_token
from ingest.analysis import analyse
from ingest.apply import ApplyContext, agent_reply, apply_inbound, change_status, insert_inbox, merge_tickets
from ingest.claims_ops import ClaimFiling, open_claim
from ingest.migrations import MIGRATIONS
from ingest.records import Identity, InboundMessage, RawPayload
from ingest.reports import (
    ReportCalendars, build_report, cli_report, parse_day, period_bounds, percentile, render_csv, render_html,
    render_json, render_table,
)
from ingest.store import Store, Tx, iso
from router.calendar import BusinessCalendar
from router.claimref import TEHRAN
from tests.mailgen import mail
from tests.test_sla_engine import open_ticket, saturday_morning
from tests.test_smtp import send

# Saturday 2025-05-03 09:00 Tehran; the report covers that Tehran week, 1404/02/13 – 1404/02/19.
T0 = datetime(2025, 5, 3, 9, 0, tzinfo=TEHRAN)
START, END = period_bounds(parse_day("1404-02-13"), parse_day("1404-02-19"))
CTX = ApplyContext(
    reference_prefix="PV", continuity_window=timedelta(hours=72), default_queue="intake", acknowledge=False,
    ack_hourly_limit=3, own_addresses=frozenset(), mail_domain="parvandeh.test", from_address="claims@parvandeh.test",
    reply_connectors={"email": "outbound_smtp"},
)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def at(self, hours: float) -> None:
        self.now = T0 + timedelta(hours=hours)


class Dataset:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.mails = 0

    async def claim(self, hours: float, insurer: str, number: str, lob: str, email: str) -> str:
        self.clock.at(hours)
        filing = ClaimFiling.model_validate_json(json.dumps({
            "claim_number": number, "policy_number": "P-1", "line_of_business": lob,
            "policyholder": {"name": "Policyholder", "email": email}, "loss_date": "2025-05-01"}))
        opened = await self.store.write(open_claim(insurer, filing, CTX, connector="insurer_api",
                                                   idempotency_key=None, fingerprints=("",), stored_documents=[]))
        return opened.ref

    async def email(self, hours: float, sender: str, text: str) -> str:
        self.clock.at(hours)
        self.mails += 1
        payload = RawPayload("email", "smtp", f"m{self.mails}", "test", b"", self.clock.now)
        inbox_id, _ = await self.store.write(insert_inbox(payload))
        msg = InboundMessage(channel="email", channel_message_id=f"m{self.mails}@example.com",
                             sender=Identity("email", sender), text=text, subject=text,
                             conversation_key=f"email:{sender}")
        return (await self.store.write(apply_inbound(inbox_id, "smtp", msg, [], CTX, analyse(msg, CTX.reference_prefix)))).ticket_ref

    async def reply(self, hours: float, ref: str, author: str = "maryam") -> None:
        self.clock.at(hours)
        await self.store.write(agent_reply(ref, "on it", author, CTX))

    async def merge(self, hours: float, source: str, target: str) -> None:
        self.clock.at(hours)
        await self.store.write(merge_tickets(source, target, "supervisor"))

    async def status(self, hours: float, ref: str, new: str) -> None:
        self.clock.at(hours)
        await self.store.write(change_status(ref, new, "maryam"))


@pytest.fixture
async def dataset(tmp_path: Path) -> AsyncIterator[Dataset]:
    """Four tickets (hours from T0; the period starts at T0-9h and ends at T0+159h):
    A asia/auto: filed 0, customer mail 1, answer 2, assigned 2, awaiting_documents 4, closed 10,
      customer mail 12 reopens, closed 14.
    B dana/health: filed 24, assigned 30, still open.
    C by e-mail: 48, answer 49, closed 50.
    D by e-mail before the period (-48), still new."""
    clock = Clock(T0)
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", clock=clock)
    await store.open()
    data = Dataset(store, clock)
    await data.email(-48, "old@example.com", "an old claim")
    a = await data.claim(0, "asia", "A-1", "auto", "a@example.com")
    assert await data.email(1, "a@example.com", "photos") == a
    await data.reply(2, a)
    await data.status(2, a, "assigned")
    await data.status(4, a, "awaiting_documents")
    await data.status(10, a, "closed")
    assert await data.email(12, "a@example.com", f"one more thing about {a}") == a  # by reference: reopens
    await data.status(14, a, "closed")
    b = await data.claim(24, "dana", "B-1", "health", "b@example.com")
    await data.status(30, b, "assigned")
    c = await data.email(48, "c@example.com", "a new claim")
    await data.reply(49, c)
    await data.status(50, c, "closed")

    def clocks(tx: Tx) -> None:  # SLA clocks as the SLA engine keeps them: A breached, C met
        tx.execute("DELETE FROM sla_clocks")
        for ref, breached in ((a, T0 + timedelta(hours=3)), (c, None)):
            tx.execute(
                "INSERT INTO sla_clocks (ticket_id, kind, policy, calendar, started_at, target_seconds, warn_fraction,"
                " breached_at, state) SELECT id, 'first_response', 'default', 'default', created_at, 3600, 0.75, ?, ?"
                " FROM tickets WHERE ref = ?", (iso(breached), "breached" if breached else "met", ref))

    await store.write(clocks)
    data.refs = {"A": a, "B": b, "C": c}  # type: ignore[attr-defined]
    yield data
    await store.close()


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0], 0.5) == 1.0 and percentile([1.0, 2.0], 0.9) == 2.0
    assert percentile([float(i) for i in range(1, 11)], 0.9) == 9.0


def test_jalali_and_gregorian_days_name_the_same_period() -> None:
    assert period_bounds(parse_day("1404/02/13"), parse_day("1404-02-19")) == \
        period_bounds(parse_day("2025-05-03"), parse_day("2025-05-09"))
    assert START == datetime(2025, 5, 2, 20, 30, tzinfo=UTC) and END - START == timedelta(days=7)
    with pytest.raises(ValueError, match="expected a day"):
        parse_day("last tuesday")


async def test_figures_match_the_hand_computed_values(dataset: Dataset) -> None:
    report = await build_report(dataset.store, START, END, now=END + timedelta(days=1))
    total = report.total
    assert (total.opened, total.closed, total.backlog) == (3, 2, 2)
    assert (total.backlog_age_median_h, total.backlog_age_p90_h) == (135.0, 207.0)  # B 159-24, D 159+48
    assert (total.first_response_median_h, total.first_response_p90_h, total.first_responses) == (1.0, 2.0, 2)
    assert (total.resolution_median_h, total.resolution_p90_h) == (2.0, 14.0)
    assert (total.sla_clocks, total.sla_compliance_pct, total.sla_breaches) == (2, 50.0, 1)
    assert total.reopen_rate_pct == 50.0  # A and C were closed; A was reopened
    assert total.contacts_per_claim == round(5 / 3, 2)  # A: filing + 2 mails, B: filing, C: 1 mail
    assert total.channel_mix == {"api": 2, "email": 3}  # D's mail is before the period
    assert total.status_hours == {"assigned": 131.0, "awaiting_documents": 6.0, "new": 178.0, "reopened": 2.0}
    assert [d["opened"] for d in report.daily] == [1, 1, 1, 0, 0, 0, 0]
    assert sum(d["closed"] for d in report.daily) == 2 and report.daily[0]["jalali"] == "1404/02/13"


async def test_figures_by_insurer_split_the_total(dataset: Dataset) -> None:
    report = await build_report(dataset.store, START, END, by="insurer", now=END + timedelta(days=1))
    groups = {g.key: g for g in report.groups}
    assert sorted(groups) == ["(none)", "asia", "dana"]
    assert (groups["asia"].opened, groups["asia"].closed, groups["asia"].resolution_median_h) == (1, 1, 14.0)
    assert groups["asia"].status_hours == {"assigned": 2.0, "awaiting_documents": 6.0, "new": 2.0, "reopened": 2.0}
    assert (groups["dana"].backlog, groups["dana"].first_response_median_h) == (1, None)
    assert groups["(none)"].sla_compliance_pct == 100.0 and groups["asia"].sla_compliance_pct == 0.0
    assert sum(g.opened for g in report.groups) == report.total.opened


async def empty_dataset(tmp_path: Path) -> Dataset:
    clock = Clock(T0)
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", clock=clock)
    await store.open()
    return Dataset(store, clock)


async def test_a_merged_ticket_keeps_its_own_time_in_status(tmp_path: Path) -> None:
    """X opened at 0, assigned at 1, merged into Y at 2; Y opened at 0, closed at 3. X: 1 h new,
    1 h assigned, closed by the merge; Y: 3 h new. Neither of X's moves counts for Y."""
    d = await empty_dataset(tmp_path)
    x = await d.email(0, "x@example.com", "claim x")
    y = await d.email(0, "y@example.com", "claim y")
    await d.status(1, x, "assigned")
    d.clock.at(2)
    await d.store.write(merge_tickets(x, y, "maryam"))
    await d.status(3, y, "closed")
    report = await build_report(d.store, START, END, now=T0 + timedelta(days=30))
    await d.store.close()
    assert report.total.status_hours == {"assigned": 1.0, "new": 4.0}
    assert (report.total.closed, report.total.backlog, report.total.resolution_median_h) == (2, 0, 2.0)



async def test_answers_merged_in_from_an_older_ticket_stay_its_first_response(tmp_path: Path) -> None:
    """X opened at 0 and answered at 1; Y opened at 5, X merged into Y at 6, Y answered at 7. X's
    answer moves with its thread to Y but came 4 h before Y existed: Y's first response is its
    own answer, 2 h, not -4 h; X keeps its own, 1 h."""
    d = await empty_dataset(tmp_path)
    x = await d.email(0, "x@example.com", "claim x")
    await d.reply(1, x)
    y = await d.email(5, "y@example.com", "claim y")
    await d.merge(6, x, y)
    await d.reply(7, y)
    report = await build_report(d.store, START, END, now=T0 + timedelta(days=3))
    await d.store.close()
    t = report.total
    assert (t.first_responses, t.first_response_median_h, t.first_response_p90_h) == (2, 1.0, 2.0)
    assert t.first_response_median_business_h is not None and t.first_response_median_business_h >= 0


async def test_a_ticket_merged_away_keeps_its_first_response_and_the_target_gets_none_from_it(
        tmp_path: Path) -> None:
    """Y opened at 0; X opened at 2, answered by Ali at 3, merged into Y at 4; Maryam answers Y at
    6. Ali's answer moved to Y with X's thread, but it answered X's customer while Y's was still
    waiting: X's first response is Ali's, 1 h; Y's is Maryam's, 6 h (not Ali's, 3 h after Y opened,
    and X none, as before)."""
    d = await empty_dataset(tmp_path)
    y = await d.email(0, "y@example.com", "claim y")
    x = await d.email(2, "x@example.com", "claim x")
    await d.reply(3, x, "ali")
    await d.merge(4, x, y)
    await d.reply(6, y, "maryam")
    now = T0 + timedelta(days=3)
    report, by_agent = [await build_report(d.store, START, END, by, now=now) for by in (None, "agent")]
    await d.store.close()
    t = report.total
    assert (t.opened, t.first_responses, t.first_response_median_h, t.first_response_p90_h) == (2, 2, 1.0, 6.0)
    assert {f.key: (f.first_responses, f.first_response_median_h) for f in by_agent.groups if f.first_responses} \
        == {"ali": (1, 1.0), "maryam": (1, 6.0)}


async def test_first_responses_follow_a_chain_of_merges(tmp_path: Path) -> None:
    """Z opened at 0, Y at 1, X at 2; Ali answers X at 3, X is merged into Y at 4, Reza answers Y
    at 5, Y is merged into Z at 6, Maryam answers Z at 8. All three threads end on Z, each answer
    still its own ticket's: X 1 h, Y 4 h, Z 8 h."""
    d = await empty_dataset(tmp_path)
    z = await d.email(0, "z@example.com", "claim z")
    y = await d.email(1, "y@example.com", "claim y")
    x = await d.email(2, "x@example.com", "claim x")
    await d.reply(3, x, "ali")
    await d.merge(4, x, y)
    await d.reply(5, y, "reza")
    await d.merge(6, y, z)
    await d.reply(8, z, "maryam")
    report = await build_report(d.store, START, END, "agent", now=T0 + timedelta(days=3))
    await d.store.close()
    assert {f.key: f.first_response_median_h for f in report.groups if f.first_responses} == {
        "ali": 1.0, "reza": 4.0, "maryam": 8.0}
    assert (report.total.first_responses, report.total.first_response_median_h) == (3, 4.0)


async def test_a_closing_in_the_period_still_counts_after_a_later_reopen(tmp_path: Path) -> None:
    """Closed inside the week, reopened by the customer the week after: the week's figures stay."""
    d = await empty_dataset(tmp_path)
    a = await d.email(0, "a@example.com", "claim a")
    await d.reply(1, a)
    await d.status(5, a, "closed")
    before = await build_report(d.store, START, END, now=T0 + timedelta(days=8))
    await d.email(24 * 8, "a@example.com", f"about {a} again")  # reopens, next week
    after = await build_report(d.store, START, END, now=T0 + timedelta(days=8, hours=1))
    await d.store.close()
    figures = [(r.total.closed, r.total.backlog, r.total.resolution_median_h, r.daily[0]["closed"])
               for r in (before, after)]
    assert figures == [(1, 0, 5.0, 1)] * 2


async def test_a_store_upgrades_in_place_and_tickets_merged_before_stay_closed(tmp_path: Path) -> None:
    """Merges before schema 5 closed the source with no status change: the upgrade gives it its
    closing at the merge, so the report keeps it out of the backlog, and insurers' webhook cursors
    pass over that row (the merge was news when it happened)."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    opened, merged = iso(T0), iso(T0 + timedelta(hours=2))
    conn.executemany(
        "INSERT INTO tickets (id, ref, status, queue, channel, created_at, updated_at, closed_at, merged_into)"
        " VALUES (?, ?, ?, 'intake', 'email', ?, ?, ?, ?)",
        [(1, "PV-X", "closed", opened, merged, merged, "PV-Y"), (2, "PV-Y", "new", opened, merged, None, None)])
    conn.executemany(
        "INSERT INTO events (ticket_id, at, kind, actor, data) VALUES (?, ?, ?, 'maryam', ?)",
        [(1, merged, "merged_into", json.dumps({"target": "PV-Y", "old_status": "new"})),
         (2, merged, "merged_from", json.dumps({"source": "PV-X", "messages": 1}))])
    conn.execute("INSERT INTO insurer_webhook_cursor (connector, last_event_id) VALUES ('insurer_api', 2)")
    conn.close()

    store = Store(path, synchronous="OFF")
    await store.open()
    try:
        (closing,) = await store.fetchall(
            "SELECT id, ticket_id, at, actor, data FROM events WHERE kind = 'status_changed'")
        assert (closing["ticket_id"], closing["at"], closing["actor"]) == (1, merged, "maryam")
        assert json.loads(closing["data"]) == {"old": "new", "new": "closed", "merged_into": "PV-Y"}
        cursor = await store.fetchone("SELECT last_event_id FROM insurer_webhook_cursor")
        assert cursor["last_event_id"] == closing["id"]
        assert await store.fetchall("SELECT * FROM sla_clock_history") == []
        report = await build_report(store, START, END, now=T0 + timedelta(days=30))
        assert (report.total.closed, report.total.backlog) == (1, 1)  # X closed at the merge; Y open
        assert report.total.status_hours == {"new": 2.0 + 159.0}  # X until the merge, Y to the end
    finally:
        await store.close()


async def test_a_period_before_the_tickets_is_empty_not_an_error(dataset: Dataset) -> None:
    start, end = period_bounds(parse_day("1403-01-01"), parse_day("1403-01-31"))
    report = await build_report(dataset.store, start, end)
    assert (report.total.opened, report.total.backlog, report.total.first_response_median_h) == (0, 0, None)
    assert "n/a" in render_table(report)


async def test_table_csv_and_json_carry_the_same_figures(dataset: Dataset) -> None:
    report = await build_report(dataset.store, START, END, by="line_of_business", now=END + timedelta(days=1))
    table = render_table(report)
    assert "1404/02/13 – 1404/02/19" in table and "health" in table
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [r["key"] for r in rows] == ["auto", "health", "other", "total"]
    assert rows[-1]["opened"] == "3" and rows[-1]["hours_in_new"] == "178.0" and rows[-1]["messages_email"] == "3"


async def test_cli_writes_the_report_file_and_refuses_a_backwards_period(tmp_path: Path) -> None:
    store_path = tmp_path / "cli.sqlite3"
    store = Store(store_path, synchronous="OFF")
    await store.open()
    await store.close()
    settings = argparse.Namespace(store=argparse.Namespace(path=store_path, synchronous="OFF"))
    out = tmp_path / "report.json"
    args = argparse.Namespace(first="1404-02-13", last="1404-02-19", by="queue", format="json", output=str(out))
    assert await asyncio.to_thread(cli_report, settings, args) == 0
    assert json.loads(out.read_text())["start_jalali"] == "1404/02/13"
    bad = argparse.Namespace(first="1404-02-19", last="1404-02-13", by=None, format="table", output="-")
    assert await asyncio.to_thread(cli_report, settings, bad) == 2


async def test_cli_names_an_unwritable_output_and_a_period_past_9999_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_path = tmp_path / "cli.sqlite3"
    store = Store(store_path, synchronous="OFF")
    await store.open()
    await store.close()
    settings = argparse.Namespace(store=argparse.Namespace(path=store_path, synchronous="OFF"))
    nowhere = str(tmp_path / "no-such-directory" / "report.html")
    args = argparse.Namespace(first="1404-02-13", last="1404-02-19", by=None, format="html", output=nowhere)
    assert await asyncio.to_thread(cli_report, settings, args) == 1
    assert f"--output {nowhere}: No such file or directory" in capsys.readouterr().err
    last_day = argparse.Namespace(first="9999-12-30", last="9999-12-31", by=None, format="table", output="-")
    assert await asyncio.to_thread(cli_report, settings, last_day) == 2
    assert "past the last day a report can end on" in capsys.readouterr().err


@pytest.mark.chromium
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs /usr/bin/chromium")
async def test_html_report_is_self_contained_and_renders_in_chromium(dataset: Dataset, tmp_path: Path) -> None:
    report = await build_report(dataset.store, START, END, by="insurer", now=END + timedelta(days=1))
    page = render_html(report)
    assert "<svg" in page and "1404/02/13" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no outside assets
    assert "https://" not in page and "<script" not in page
    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    console = await _render(html_file, shot)
    assert shot.stat().st_size > 10_000
    assert console == [], console


async def _render(html_file: Path, shot: Path) -> list[Any]:
    """Open the file in headless Chromium (Playwright); returns console errors and page errors."""
    from playwright.async_api import async_playwright

    errors: list[Any] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=shutil.which("chromium"),
                                           args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 1400})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"outside request {r.url}")
                    if not r.url.startswith("file://") else None)
            await page.goto(html_file.as_uri())
            svgs = await page.locator("svg").count()
            assert svgs == 3
            await page.screenshot(path=str(shot), full_page=True)
        finally:
            await browser.close()
    return errors


async def test_a_workflow_template_is_not_a_first_response(make_daemon: Any) -> None:
    # A rule answering every customer message with a template: automatic, so the SLA clock is not
    # met by it, and the report must not count it as the agent's first response either.
    from ingest import queries
    from tests.test_sla_engine import open_ticket, saturday_morning
    clock = saturday_morning()
    daemon = await make_daemon("""
[[workflow.rules]]
name = "template-on-every-message"
when = { event = "message_received" }
then = [{ action = "send_template", template = "documents_reminder" }]
""", clock=clock)
    ticket = await open_ticket(daemon)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    assert detail is not None and any(m.get("author") == "workflow" for m in detail["messages"])
    start, end = period_bounds(parse_day("1405-09-07"), parse_day("1405-09-07"))
    report = await build_report(daemon.store, start, end, now=clock.now + timedelta(hours=1))
    assert report.total.opened == 1
    assert report.total.first_responses == 0
    assert report.total.first_response_median_h is None
async def test_an_out_of_office_reply_is_not_a_customer_contact(tmp_path: Path) -> None:
    d = await empty_dataset(tmp_path)
    ref = await d.email(0, "a@example.com", "my claim")
    d.clock.at(1)
    inbox_id, _ = await d.store.write(insert_inbox(RawPayload("email", "smtp", "auto1", "test", b"", d.clock.now)))
    msg = InboundMessage(channel="email", channel_message_id="auto1@example.com", sender=Identity("email", "a@example.com"),
                         text=f"I am out of the office. Re {ref}", subject=f"Automatic reply: {ref}",
                         conversation_key="email:a@example.com", auto_reason="auto-replied")
    applied = await d.store.write(apply_inbound(inbox_id, "smtp", msg, [], CTX, analyse(msg, CTX.reference_prefix)))
    assert applied.ticket_ref == ref  # threaded onto the claim by its reference
    report = await build_report(d.store, START, END, now=T0 + timedelta(days=2))
    await d.store.close()
    assert report.total.contacts_per_claim == 1.0
    assert report.total.channel_mix == {"email": 1}


# -- business hours -----------------------------------------------------------------------------
# The week of T0 has no official holiday: Wednesday 2025-05-07 (1404/02/17) to Saturday
# 2025-05-10 (1404/02/20). On the default calendar Thursday is open 08:00-12:00, Friday is closed.
WEDNESDAY_1700 = datetime(2025, 5, 7, 17, 0, tzinfo=TEHRAN)
THURSDAY_1300 = datetime(2025, 5, 8, 13, 0, tzinfo=TEHRAN)
SATURDAY_0830 = datetime(2025, 5, 10, 8, 30, tzinfo=TEHRAN)
SATURDAY_1000 = datetime(2025, 5, 10, 10, 0, tzinfo=TEHRAN)
WEEKEND = period_bounds(parse_day("1404-02-17"), parse_day("1404-02-20"))


def since_t0(moment: datetime) -> float:
    return (moment - T0).total_seconds() / 3600


async def test_a_wednesday_evening_mail_answered_on_saturday_is_hours_of_business_not_a_weekend(
        tmp_path: Path) -> None:
    """Wednesday 17:00 to Saturday 08:30 is 63.5 clock hours; in business hours only Thursday's
    half day (4 h) and Saturday 08:00-08:30 count: 4.5. Closed Saturday 10:00: 65 clock h, 6 business h."""
    d = await empty_dataset(tmp_path)
    (ref,) = await mailed_wednesday_answered_saturday(d, ("late@example.com", "my car was hit"))
    await d.status(since_t0(SATURDAY_1000), ref, "closed")
    report = await build_report(d.store, *WEEKEND, now=WEEKEND[1])
    await d.store.close()
    t = report.total
    assert (t.first_response_median_h, t.first_response_p90_h) == (63.5, 63.5)
    assert (t.first_response_median_business_h, t.first_response_p90_business_h) == (4.5, 4.5)
    assert (t.resolution_median_h, t.resolution_median_business_h, t.resolution_p90_business_h) == (65.0, 6.0, 6.0)


async def test_a_thursday_afternoon_mail_counts_from_saturday_0800(tmp_path: Path) -> None:
    """After Thursday's 12:00 close nothing counts until Saturday 08:00: answered 08:30, half an
    hour of business time against 43.5 clock hours; with the Wednesday mail (4.5 business h) the
    median and p90 are the two tickets' (nearest rank)."""
    d = await empty_dataset(tmp_path)
    thursday = await d.email(since_t0(THURSDAY_1300), "thu@example.com", "a broken window")
    wednesday = await d.email(since_t0(WEDNESDAY_1700), "wed@example.com", "my car was hit")
    await d.reply(since_t0(SATURDAY_0830), thursday)
    await d.reply(since_t0(SATURDAY_0830), wednesday)
    report = await build_report(d.store, *WEEKEND, by="channel", now=WEEKEND[1])
    await d.store.close()
    t = report.total
    assert (t.first_response_median_h, t.first_response_p90_h) == (43.5, 63.5)
    assert (t.first_response_median_business_h, t.first_response_p90_business_h) == (0.5, 4.5)
    (email,) = report.groups
    assert (email.first_response_median_business_h, email.first_response_p90_business_h) == (0.5, 4.5)
    assert t.resolution_median_business_h is None  # nothing closed


async def test_an_official_holiday_counts_no_business_time(tmp_path: Path) -> None:
    """22 Bahman 1404 (Wednesday 2026-02-11) is a holiday: a mail on Tuesday 15:00 answered on
    Thursday 09:00 waited 1 h on Tuesday, nothing on the holiday, 1 h on Thursday: 2 business h
    (42 clock h). The same on a calendar without official holidays is 10 h."""
    d = await empty_dataset(tmp_path)
    tuesday = datetime(2026, 2, 10, 15, 0, tzinfo=TEHRAN)
    ref = await d.email(since_t0(tuesday), "bahman@example.com", "water damage")
    await d.reply(since_t0(datetime(2026, 2, 12, 9, 0, tzinfo=TEHRAN)), ref)
    period = period_bounds(parse_day("1404-11-21"), parse_day("1404-11-23"))
    report = await build_report(d.store, *period, now=period[1])
    no_holidays = await build_report(d.store, *period, now=period[1],
                                     calendars=ReportCalendars(BusinessCalendar(official_holidays=None)))
    await d.store.close()
    assert (report.total.first_response_median_h, report.total.first_response_median_business_h) == (42.0, 2.0)
    assert no_holidays.total.first_response_median_business_h == 10.0


async def mailed_wednesday_answered_saturday(d: Any, *senders: tuple[str, str]) -> list[str]:
    """Claims opened by mail (sender, subject) at 17:00 on a Wednesday, answered at 08:30 on Saturday."""
    refs = [await d.email(since_t0(WEDNESDAY_1700), sender, subject) for sender, subject in senders]
    for ref in refs:
        await d.reply(since_t0(SATURDAY_0830), ref)
    return refs


async def test_business_hours_use_the_calendar_of_each_tickets_sla_policy(tmp_path: Path) -> None:
    """Two Wednesday-evening mails answered on Saturday: the one under a 24x7 policy counts every
    hour (63.5), the other the business calendar's 4.5; a policy the configuration no longer has
    falls back to the business calendar."""
    d = await empty_dataset(tmp_path)
    round_the_clock, business = await mailed_wednesday_answered_saturday(
        d, ("vip@example.com", "urgent"), ("std@example.com", "standard"))

    def policies(tx: Tx) -> None:
        tx.execute("UPDATE tickets SET sla_policy = 'gold' WHERE ref = ?", (round_the_clock,))
        tx.execute("UPDATE tickets SET sla_policy = 'retired' WHERE ref = ?", (business,))

    await d.store.write(policies)
    calendars = ReportCalendars(by_policy={"gold": BusinessCalendar(twenty_four_seven=True, official_holidays=None)})
    report = await build_report(d.store, *WEEKEND, now=WEEKEND[1], calendars=calendars)
    await d.store.close()
    assert (report.total.first_response_median_business_h, report.total.first_response_p90_business_h) == (4.5, 63.5)
    assert (report.total.first_response_median_h, report.total.first_response_p90_h) == (63.5, 63.5)


async def test_every_format_labels_business_hours_beside_clock_hours(tmp_path: Path) -> None:
    d = await empty_dataset(tmp_path)
    (ref,) = await mailed_wednesday_answered_saturday(d, ("late@example.com", "my car was hit"))
    await d.status(since_t0(SATURDAY_1000), ref, "closed")
    report = await build_report(d.store, *WEEKEND, now=WEEKEND[1])
    await d.store.close()
    table = render_table(report)
    header, _, total = table.splitlines()[2:5]
    cells = dict(zip([c.strip() for c in header.split("  ") if c.strip()], total.split()[1:]))
    assert (cells["1st resp med clock h"], cells["1st resp med business h"]) == ("63.5", "4.5")
    assert (cells["resol med clock h"], cells["resol med business h"], cells["resol p90 business h"]) == ("65", "6", "6")
    assert "business h: working hours on the business calendar of each ticket's SLA policy" in table
    page = render_html(report)
    assert "<th>1st resp med business h</th>" in page and "<th>1st resp med clock h</th>" in page
    assert "<td>4.5</td>" in page and "<td>63.5</td>" in page
    (row,) = csv.DictReader(io.StringIO(render_csv(report)))
    assert (row["first_response_median_h"], row["first_response_median_business_h"]) == ("63.5", "4.5")
    total_json = json.loads(render_json(report))["total"]
    assert (total_json["resolution_median_h"], total_json["resolution_median_business_h"]) == (65.0, 6.0)


def test_business_hours_across_many_days_match_the_calendars_own_sum() -> None:
    """The report's day-offset arithmetic gives what `business_time_between` gives for random
    spans up to three weeks, on the Iranian week with holidays (Nowruz included), a week with a
    24:00 close, and 24x7."""
    import random

    from ingest.reports import _BusinessHours
    from router.calendar import week_from_names

    rng = random.Random(1404)
    late = BusinessCalendar(week=week_from_names({"saturday": [("08:00", "12:00"), ("18:00", "24:00")],
                                                  "tuesday": [("00:00", "06:30")]}))
    origin = datetime(2025, 3, 10, tzinfo=UTC).timestamp() / 3600
    for calendar in (BusinessCalendar(), late, BusinessCalendar(twenty_four_seven=True, official_holidays=None)):
        hours = _BusinessHours(calendar)
        for _ in range(300):
            a = origin + rng.uniform(0, 24 * 60)
            b = a + rng.choice([0.0, rng.uniform(0, 10), rng.uniform(0, 24 * 21)])
            expected = calendar.business_time_between(datetime.fromtimestamp(a * 3600, UTC),
                                                      datetime.fromtimestamp(b * 3600, UTC))
            assert hours.between(a, b) == pytest.approx(expected.total_seconds() / 3600, abs=1e-6), (calendar, a, b)


async def test_run_py_report_csv_and_json_carry_business_hours_on_the_configured_calendars(tmp_path: Path) -> None:
    """Through `run.py report`: the configured business calendar closes Saturday 1404/02/20
    (extra_closed), so the Wednesday-evening mail answered Saturday 08:30 has 4 business hours
    (Thursday's half day); the one under the 24x7 policy "vip" all 63.5."""
    from tests.conftest import write_config

    config = write_config(tmp_path, """
[calendar]
extra_closed = [1404-02-20]

[[sla.policies]]
name = "standard"
first_response = 4

[[sla.policies]]
name = "vip"
insurer = "asia"
first_response = 1
calendar = "24x7"
""")
    clock = Clock(T0)
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF", clock=clock)
    await store.open()
    d = Dataset(store, clock)
    standard, vip = await mailed_wednesday_answered_saturday(
        d, ("std@example.com", "standard"), ("vip@example.com", "urgent"))

    def policies(tx: Tx) -> None:
        tx.execute("UPDATE tickets SET sla_policy = 'vip' WHERE ref = ?", (vip,))

    await store.write(policies)
    await store.close()

    def report(fmt: str) -> str:
        result = subprocess.run([sys.executable, str(Path(__file__).resolve().parent.parent / "run.py"),
                                 "--config", str(config), "report", "--from", "1404-02-17", "--to", "1404-02-20",
                                 "--format", fmt], check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    csv_text, json_text = await asyncio.gather(asyncio.to_thread(report, "csv"), asyncio.to_thread(report, "json"))
    (row,) = csv.DictReader(io.StringIO(csv_text))
    assert (row["first_response_median_h"], row["first_response_p90_h"]) == ("63.5", "63.5")
    assert (row["first_response_median_business_h"], row["first_response_p90_business_h"]) == ("4.0", "63.5")
    assert row["resolution_median_business_h"] == ""  # nothing closed: no figure, as for clock hours
    total = json.loads(json_text)["total"]
    assert (total["first_response_median_business_h"], total["first_response_p90_business_h"]) == (4.0, 63.5)
    assert total["first_response_median_h"] == 63.5


HANDED_ON = """
[[queues]]
name = "intake"
assignment = "round_robin"

[routing.default]
queue = "intake"

[[sla.policies]]
name = "standard"
first_response = 4
resolution = 40
calendar = "24x7"
on_warning = []
on_breach = ["reassign"]
"""


async def test_by_agent_credits_who_answered_charges_who_held_the_breach_and_who_closed(make_daemon: Any) -> None:
    """Ali holds the claim when its first response falls due (t0 + 4 h) and the SLA hands it to
    Reza; Maryam, a colleague, answers at t0 + 6 h; Reza closes it at t0 + 10 h. By hand:
    Ali: the breached first-response clock (0 % compliance, 1 breach); Maryam: the first response,
    6 h; Reza: the claim (opened), its closing (10 h) and the resolution clock, met in time."""
    clock = saturday_morning()
    t0 = clock.now
    daemon = await make_daemon(HANDED_ON, clock=clock)
    for name in ("ali", "reza"):
        await daemon.store.write(create_agent(name, "agent", frozenset({"intake"}), new_token()))
    ref = (await open_ticket(daemon))["reference"]
    assert (await daemon.store.fetchone("SELECT assignee FROM tickets"))[0] == "ali"
    clock.advance(hours=5)
    await daemon.sla.fire_due()
    assert (await daemon.store.fetchone("SELECT assignee FROM tickets"))[0] == "reza"
    clock.advance(hours=1)
    await daemon.store.write(agent_reply(ref, "Please send photos.", "maryam", daemon.ingest.context))
    clock.advance(hours=4)
    await daemon.store.write(change_status(ref, "closed", "reza"))

    report = await build_report(daemon.store, t0 - timedelta(hours=1), t0 + timedelta(days=1), "agent",
                                now=clock.now)
    figures = {f.key: (f.opened, f.first_responses, f.first_response_median_h, f.closed, f.resolution_median_h,
                       f.sla_clocks, f.sla_compliance_pct, f.sla_breaches) for f in report.groups}
    assert figures == {
        "ali": (0, 0, None, 0, None, 1, 0.0, 1),
        "maryam": (0, 1, 6.0, 0, None, 0, None, 0),
        "reza": (1, 0, None, 1, 10.0, 1, 100.0, 0),
    }
    t = report.total
    assert (t.opened, t.first_responses, t.closed, t.sla_clocks, t.sla_compliance_pct, t.sla_breaches) == (
        1, 1, 1, 2, 50.0, 1)
    # A closing by a workflow rule is no agent's: kept apart from the agents' resolutions.
    assert (await send(daemon, mail(subject="Another claim", body="Hit again.", sender="other@example.com")))[0] == 250
    await daemon.ingest.drained()
    (other,) = [t["reference"] for t in await queries.list_tickets(daemon.store) if t["reference"] != ref]
    clock.advance(hours=2)
    await daemon.store.write(change_status(other, "closed", "workflow"))  # as a rule's set_status does
    report = await build_report(daemon.store, t0 - timedelta(hours=1), t0 + timedelta(days=1), "agent",
                                now=clock.now)
    automatic = next(f for f in report.groups if f.key == "(automatic)")
    assert (automatic.opened, automatic.closed, automatic.resolution_median_h) == (0, 1, 2.0)


COUNTED = """
[[sla.policies]]
name = "standard"
first_response = 4
resolution = 40
calendar = "24x7"
"""


async def mailed_claim(daemon: Any, sender: str) -> str:
    known = {t["reference"] for t in await queries.list_tickets(daemon.store)}
    assert (await send(daemon, mail(subject=f"Claim of {sender}", body="My car was hit.", sender=sender)))[0] == 250
    await daemon.ingest.drained()
    (ref,) = {t["reference"] for t in await queries.list_tickets(daemon.store)} - known
    return ref


async def first_response_clock(daemon: Any, ref: str) -> tuple[Any, ...]:
    row = await daemon.store.fetchone(
        "SELECT c.breached_at, c.state FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id"
        " WHERE t.ref = ? AND c.kind = 'first_response'", (ref,))
    return tuple(row)


async def test_sla_compliance_counts_decided_clocks_and_a_breach_not_yet_fired(make_daemon: Any) -> None:
    """Claims A, B, C at t0, first response due in 4 h, resolution in 40 h (24x7). A is answered
    at 1 h; B closed unanswered at 2 h; then the scheduler stops (the daemon is down), so C's
    first-response breach at 4 h is not recorded; the report at 10 h. By hand: first response met
    (A), cancelled (B: closed before it was due, nothing owed), breached (C); resolution met (B),
    pending (A and C, due at 40 h). 6 clocks = 2 met + 1 breached + 2 pending + 1 cancelled;
    compliance 2 / 3; one breach in the period (C's, at 4 h). Before: 100 %, no breach."""
    clock = saturday_morning()
    t0 = clock.now
    daemon = await make_daemon(COUNTED, clock=clock)
    a, b, c = [await mailed_claim(daemon, f"{name}@example.com") for name in "abc"]
    clock.advance(hours=1)
    await daemon.store.write(agent_reply(a, "Please send photos.", "maryam", daemon.ingest.context))
    clock.advance(hours=1)
    await daemon.store.write(change_status(b, "closed", "maryam"))
    await daemon.sla.stop()
    clock.advance(hours=8)
    assert await first_response_clock(daemon, c) == (None, "ok")  # overdue, and nothing says so yet

    report = await build_report(daemon.store, t0 - timedelta(hours=1), t0 + timedelta(days=1), now=clock.now)
    t = report.total
    assert (t.sla_clocks, t.sla_clocks_met, t.sla_clocks_breached, t.sla_clocks_pending,
            t.sla_clocks_cancelled) == (6, 2, 1, 2, 1)
    assert (t.sla_compliance_pct, t.sla_breaches) == (66.67, 1)

    # Every rendering carries the outcomes and says what the percentage is of.
    table = render_table(report)
    header, _, total = table.splitlines()[2:5]
    cells = dict(zip([c.strip() for c in header.split("  ") if c.strip()], total.split()[1:]))
    assert [cells[k] for k in ("SLA clocks", "SLA met", "SLA breached", "SLA pending", "SLA cancelled", "SLA %",
                               "breaches in period")] == ["6", "2", "1", "2", "1", "66.67", "1"]
    assert "SLA % = met / (met + breached)" in table
    page = render_html(report)
    assert "<th>SLA pending</th>" in page and "SLA % = met / (met + breached)" in page
    (row,) = csv.DictReader(io.StringIO(render_csv(report)))
    assert (row["sla_clocks_pending"], row["sla_clocks_cancelled"], row["sla_compliance_pct"]) == ("2", "1", "66.67")
    total_json = json.loads(render_json(report))["total"]
    assert (total_json["sla_clocks_met"], total_json["sla_clocks_breached"]) == (2, 1)


async def test_the_clocks_of_a_claim_merged_away_are_cancelled_not_compliant(make_daemon: Any) -> None:
    """X and Y at t0 (first response due at 4 h); X merged into Y at 1 h, unanswered; the scheduler
    stops; the report at 10 h. X's clocks stopped at the merge with nothing owed: cancelled (they
    counted as compliant). Y's first response is breached (not fired), its resolution pending:
    compliance 0 of 1 decided clock (it was 100 %: 4 clocks, none breached)."""
    clock = saturday_morning()
    t0 = clock.now
    daemon = await make_daemon(COUNTED, clock=clock)
    x, y = [await mailed_claim(daemon, f"{name}@example.com") for name in "xy"]
    clock.advance(hours=1)
    await daemon.store.write(merge_tickets(x, y, "supervisor"))
    await daemon.sla.stop()
    clock.advance(hours=9)
    assert await first_response_clock(daemon, x) == (None, "cancelled")
    assert await first_response_clock(daemon, y) == (None, "ok")

    report = await build_report(daemon.store, t0 - timedelta(hours=1), t0 + timedelta(days=1), now=clock.now)
    t = report.total
    assert (t.sla_clocks, t.sla_clocks_met, t.sla_clocks_breached, t.sla_clocks_pending,
            t.sla_clocks_cancelled) == (4, 0, 1, 1, 2)
    assert (t.sla_compliance_pct, t.sla_breaches) == (0.0, 1)
