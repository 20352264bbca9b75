"""Inbound mail over real SMTP to the listener, threading into claims, and replies out through
a real relay."""

from __future__ import annotations

import asyncio
import inspect
import re
import smtplib
import socket
import string
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.policy import SMTP as SMTP_POLICY
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import strategies as st

from ingest import queries
from ingest.apply import ReplyError, agent_reply
from ingest.email_payload import email_dedupe_key
from ingest.records import RawPayload
from ingest.daemon import Daemon
from ingest.store import Tx
from structlog.testing import capture_logs

from tests.conftest import refuse_writes
from tests.kit.contract import ConnectorContract
from tests.mailgen import mail
from connectors.smtp import SmtpConnector, _ListenerSMTP
from connectors.standins.smtp_sink import SmtpSink


def smtp_port(daemon: Daemon) -> int:
    return daemon.connectors["smtp"].port  # type: ignore[attr-defined]


async def send(daemon: Daemon, message: EmailMessage | bytes, rcpt: str = "claims@parvandeh.test",
               envelope_from: str = "sender@example.com") -> tuple[int, bytes]:
    """Deliver over SMTP; returns the server's reply to DATA. `envelope_from` "" is the null
    reverse-path, `MAIL FROM:<>`."""

    def deliver() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", smtp_port(daemon), timeout=10) as client:
            client.ehlo()
            # On the wire SMTP lines end in CRLF, as any real mailer sends them.
            raw = message if isinstance(message, bytes) else message.as_bytes(policy=SMTP_POLICY)
            raw = re.sub(rb"\r?\n", b"\r\n", raw)
            client.mail(envelope_from)
            client.rcpt(rcpt)
            return client.data(raw)

    return await asyncio.to_thread(deliver)


async def until_true(check: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    """Poll `check` (plain or awaitable) until it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def tickets(daemon: Daemon) -> list[dict[str, Any]]:
    await daemon.ingest.drained()
    return await queries.list_tickets(daemon.store)


async def only_ticket(daemon: Daemon) -> dict[str, Any]:
    (ticket,) = await tickets(daemon)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    assert detail is not None
    return detail


class TestSmtpContract(ConnectorContract):
    channel = "email"

    async def start(self, make_daemon: Any) -> Daemon:
        return await make_daemon()

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        code, _ = await send(daemon, mail(message_id=f"<{key}@example.com>", body=f"message {key}"))
        return code == 250


async def test_persian_utf8_mail_opens_a_claim_with_readable_text(make_daemon: Any) -> None:
    daemon = await make_daemon()
    code, _ = await send(daemon, mail(subject="خسارت تصادف خودرو", body="سلام، ماشینم تصادف کرده است."))
    assert code == 250
    ticket = await only_ticket(daemon)
    assert ticket["reference"].startswith("PV-14")
    assert ticket["subject"] == "خسارت تصادف خودرو"
    assert ticket["messages"][0]["text"].strip() == "سلام، ماشینم تصادف کرده است."
    assert ticket["contact"]["identity"] == "ali@example.com"


async def test_internationalised_sender_addresses_stay_two_customers(make_daemon: Any) -> None:
    # SMTPUTF8 mail (RFC 6532) carries "علی@example.ir" as raw UTF-8 in From: each byte became
    # "?", so علی and رضا (six bytes each) were one identity "??????@example.ir", one contact.
    daemon = await make_daemon()
    for local, mid in (("علی", "u1"), ("رضا", "u2")):
        raw = (f"From: {local}@example.ir\r\nTo: claims@parvandeh.test\r\nSubject: claim {mid}\r\n"
               f"Message-ID: <{mid}@example.ir>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\nسلام\r\n").encode()
        code, _ = await send(daemon, raw)
        assert code == 250
    await daemon.ingest.drained()
    found = {t["contact"]["identity"] for t in await tickets(daemon)}
    assert found == {"علی@example.ir", "رضا@example.ir"}


async def test_windows_1256_mail_is_decoded_and_arabic_letters_fixed(make_daemon: Any) -> None:
    daemon = await make_daemon()
    # Legacy Persian mail carries Arabic yeh/kaf: windows-1256 has no Persian yeh.
    body = "بيمه نامه شماره 123 — كارشناس".encode("windows-1256")
    raw = (b"From: reza@example.com\r\nTo: claims@parvandeh.test\r\nSubject: =?windows-1256?b?"
           + __import__("base64").b64encode("خسارت".encode("windows-1256"))
           + b"?=\r\nMessage-ID: <w1256@example.com>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=windows-1256\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n")
    await send(daemon, raw)
    ticket = await only_ticket(daemon)
    assert ticket["subject"] == "خسارت"
    assert "بیمه نامه شماره 123 — کارشناس" in ticket["messages"][0]["text"]


async def test_html_only_mail_becomes_text(make_daemon: Any) -> None:
    daemon = await make_daemon()
    msg = mail(subject="HTML", body="x")
    msg.set_content("<html><body><p>سلام</p><p>پلاک <b>۱۲ب۳۴۵</b></p><script>evil()</script></body></html>",
                    subtype="html")
    await send(daemon, msg)
    text = (await only_ticket(daemon))["messages"][0]["text"]
    assert "سلام" in text and "پلاک" in text and "evil" not in text and "<p>" not in text


@pytest.mark.parametrize("processes", ["0", "1"], ids=["parsed-in-daemon", "parsed-in-worker-process"])
async def test_attachments_are_stored_by_content_hash(make_daemon: Any, processes: str) -> None:
    # In the worker process the file is written there and only its digest comes back.
    daemon = await make_daemon(environ={"PARVANDEH__INGEST__NORMALISER_PROCESSES": processes})
    msg = mail(subject="مدارک", body="عکس خودرو پیوست است")
    photo = b"\x89PNG fake image bytes" * 300
    msg.add_attachment(photo, maintype="image", subtype="png", filename="../../etc/عکس.png")
    assert (await send(daemon, msg))[0] == 250
    (att,) = (await only_ticket(daemon))["messages"][0]["attachments"]
    assert att["filename"] == "عکس.png"
    assert daemon.blobs.get(att["sha256"]) == photo


async def test_reply_threads_by_headers_even_from_someone_cced_later(make_daemon: Any) -> None:
    daemon = await make_daemon("", environ=None)
    first = mail(message_id="<orig@example.com>", subject="تصادف", body="شروع")
    await send(daemon, first)
    second = mail(sender="Sara <sara@other.example>", message_id="<cc-reply@other.example>",
                  subject="Re: something else entirely", body="من هم در جریان هستم",
                  in_reply_to="<orig@example.com>", references="<orig@example.com>")
    await send(daemon, second)
    (ticket,) = await tickets(daemon)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    senders = [m["sender"] for m in detail["messages"] if m["direction"] == "in"]
    assert senders == ["ali@example.com", "sara@other.example"]
    matched = [e["matched_by"] for e in detail["timeline"] if e["kind"] == "message_received"]
    assert matched == ["new_ticket", "email_headers"]


async def test_claim_reference_with_persian_digits_in_subject_joins_the_claim(make_daemon: Any) -> None:
    daemon = await make_daemon()
    await send(daemon, mail(sender="a@example.com", subject="اول", body="پیام اول"))
    (ticket,) = await tickets(daemon)
    ref = ticket["reference"]
    persian = ref.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")).replace("-", " ")
    await send(daemon, mail(sender="b@another.example", subject=f"پیگیری {persian}", body="سلام"))
    (joined,) = await tickets(daemon)
    assert joined["reference"] == ref and joined["message_count"] == 3  # two in, one acknowledgement


async def test_same_mail_twice_is_stored_once(make_daemon: Any) -> None:
    daemon = await make_daemon()
    msg = mail(message_id="<dup@example.com>")
    await send(daemon, msg)
    await send(daemon, msg, rcpt="other-mailbox@parvandeh.test")
    ticket = await only_ticket(daemon)
    assert len([m for m in ticket["messages"] if m["direction"] == "in"]) == 1


async def test_auto_reply_threads_but_never_opens_or_answers(make_daemon: Any) -> None:
    daemon = await make_daemon()
    await send(daemon, mail(message_id="<q1@example.com>", subject="سوال"))
    ooo = mail(sender="ali@example.com", subject="Out of office", body="I am away",
               in_reply_to="<q1@example.com>", headers={"Auto-Submitted": "auto-replied"})
    await send(daemon, ooo)
    stray = mail(sender="robot@else.example", subject="Auto", body="away", headers={"Auto-Submitted": "auto-replied"})
    await send(daemon, stray)
    ticket = await only_ticket(daemon)
    inbound = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert [m["auto_reason"] is not None for m in inbound] == [False, True]
    outbound = [m for m in ticket["messages"] if m["direction"] == "out"]
    assert len(outbound) == 1, "only the first, human message is acknowledged"
    unthreaded = await queries.list_unthreaded(daemon.store)
    assert len(unthreaded) == 1, "the stray auto-reply is kept, not dropped, and opens nothing"


async def test_mail_from_the_null_sender_is_a_machines_notice_and_opens_nothing(make_daemon: Any) -> None:
    daemon = await make_daemon()
    # No Auto-Submitted, no report type, no MAILER-DAEMON: only the envelope says a machine wrote.
    notice = (b"From: Mail Delivery <robot@mx.example.com>\r\nTo: claims@parvandeh.test\r\n"
              b"Subject: Delivery failure\r\nMessage-ID: <n1@mx.example.com>\r\n\r\n"
              b"Your message could not be delivered.\r\n")
    code, _ = await send(daemon, notice, envelope_from="")
    assert code == 250
    assert await tickets(daemon) == [], "a notice from the null sender opens no claim (and is not acknowledged)"
    (kept,) = await queries.list_unthreaded(daemon.store)
    assert kept["dedupe_key"] == "email:mid:n1@mx.example.com", "kept, not dropped"


async def test_mail_without_a_readable_from_is_its_envelope_senders(make_daemon: Any) -> None:
    daemon = await make_daemon()
    unreadable = b'From: "Ali" <"ali ahmadi"@@example.com>\r\nTo: claims@parvandeh.test\r\nSubject: a\r\n\r\nsalam\r\n'
    no_from = b"To: claims@parvandeh.test\r\nSubject: b\r\n\r\nsalam\r\n"
    await send(daemon, unreadable, envelope_from="ali@example.com")
    await send(daemon, no_from, envelope_from="sara@example.com")
    senders = sorted(t["contact"]["identity"] for t in await tickets(daemon))
    assert senders == ["ali@example.com", "sara@example.com"], "two people, two claims"


async def test_mail_with_no_sender_address_at_all_gets_a_contact_of_its_own(make_daemon: Any) -> None:
    daemon = await make_daemon()
    # As IMAP hands it over (no envelope): nothing names who sent these two mails.
    for n in range(2):
        raw = f"To: claims@parvandeh.test\r\nSubject: claim {n}\r\nMessage-ID: <anon{n}@x>\r\n\r\nsalam\r\n".encode()
        await daemon.ingest.accept(RawPayload("email", "imap", email_dedupe_key(raw), "mime", raw, datetime.now(UTC)))
    found = await tickets(daemon)
    assert len(found) == 2, "strangers are not merged into one contact and one claim"
    assert len({t["contact"]["id"] for t in found}) == 2
    with pytest.raises(ReplyError, match="no sender address to answer"):
        await daemon.store.write(agent_reply(found[0]["reference"], "سلام", "agent1", daemon.ingest.context))


async def test_bounce_threads_to_the_claim_of_the_bounced_mail(make_daemon: Any) -> None:
    daemon = await make_daemon()
    await send(daemon, mail(sender="ali@example.com", subject="خسارت"))
    (ticket,) = await tickets(daemon)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    ack_id = next(m["channel_message_id"] for m in detail["messages"] if m["direction"] == "out")
    dsn = (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: claims@parvandeh.test\r\nSubject: Undelivered Mail\r\n"
        "Message-ID: <dsn1@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; ali@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{ack_id}>\r\nSubject: x\r\n\r\n--B--\r\n"
    ).encode()
    await send(daemon, dsn)
    (after,) = await tickets(daemon)
    detail = await queries.ticket_detail(daemon.store, after["reference"])
    bounce = detail["messages"][-1]
    assert bounce["sender"] == "mailer-daemon@mx.example.com" and bounce["auto_reason"]
    assert len([m for m in detail["messages"] if m["direction"] == "out"]) == 1


async def test_message_over_size_limit_gets_552_and_nothing_stored(make_daemon: Any) -> None:
    daemon = await make_daemon("", environ={"PARVANDEH__SMTP__MAX_MESSAGE_BYTES": "4096"})
    code, _ = await send(daemon, mail(body="x" * 10_000))
    assert code == 552
    assert await tickets(daemon) == []


async def test_store_unavailable_gets_451_so_the_sender_retries(make_daemon: Any) -> None:
    daemon = await make_daemon()
    await daemon.store.close()
    code, _ = await send(daemon, mail())
    assert code == 451


async def reply(reader: asyncio.StreamReader) -> bytes:
    """One SMTP reply (its last line, for a multi-line one)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if line[3:4] != b"-":
            return line


async def open_session(daemon: Daemon) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", smtp_port(daemon))
    assert (await reply(reader)).startswith(b"220")
    writer.write(b"EHLO client.example\r\n")
    assert (await reply(reader)).startswith(b"250 ")
    return reader, writer


async def test_a_session_idle_when_the_daemon_stops_is_told_421_before_it_closes(make_daemon: Any) -> None:
    daemon = await make_daemon()
    reader, writer = await open_session(daemon)
    try:
        with capture_logs() as logs:
            await daemon.stop()
        # All the server says before it closes (EOF): the 421 of RFC 5321 §3.8, not a dropped line.
        said = await asyncio.wait_for(reader.read(), 5)
        assert said == b"421 4.3.2 Service shutting down\r\n"
        (stopped,) = [e for e in logs if e["event"] == "smtp_stopped"]
        assert (stopped["connector"], stopped["told_421"], stopped["drained"], stopped["cut_off"]) == ("smtp", 1, 0, 0)
    finally:
        writer.close()


async def test_mail_whose_data_is_in_flight_when_the_daemon_stops_is_committed_and_acknowledged(
        make_daemon: Any) -> None:
    daemon = await make_daemon()
    port = smtp_port(daemon)
    reader, writer = await open_session(daemon)
    raw = re.sub(rb"\r?\n", b"\r\n", mail(message_id="<in-flight@example.com>", subject="during stop",
                                         body="x" * 5000).as_bytes(policy=SMTP_POLICY))
    for command in (b"MAIL FROM:<sender@example.com>", b"RCPT TO:<claims@parvandeh.test>"):
        writer.write(command + b"\r\n")
        assert (await reply(reader)).startswith(b"250")
    writer.write(b"DATA\r\n")
    assert (await reply(reader)).startswith(b"354")
    writer.write(raw[: len(raw) // 2])
    await writer.drain()

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    stopping = asyncio.create_task(daemon.stop())
    try:
        await until_true(refused, "the listener to stop listening")
        await asyncio.sleep(0.2)
        assert not stopping.done(), "stop() waits for the message being received"
        writer.write(raw[len(raw) // 2:] + b".\r\n")
        assert (await reply(reader)).startswith(b"250 2.0.0 Message accepted")
        # The transaction done, the session is between commands: 421, then closed.
        assert await asyncio.wait_for(reader.read(), 5) == b"421 4.3.2 Service shutting down\r\n"
        await asyncio.wait_for(stopping, 10)
    finally:
        writer.close()
        await asyncio.gather(stopping, return_exceptions=True)
    again = await make_daemon()
    (row,) = await again.store.fetchall("SELECT count(*) AS n FROM inbox")
    assert row["n"] == 1
    ticket = await only_ticket(again)
    assert ticket["subject"] == "during stop"


async def test_mail_still_arriving_when_the_stop_grace_runs_out_gets_421_and_nothing_is_acknowledged(
        make_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SmtpConnector, "STOP_GRACE_SECONDS", 0.3)
    daemon = await make_daemon()
    reader, writer = await open_session(daemon)
    for command in (b"MAIL FROM:<sender@example.com>", b"RCPT TO:<claims@parvandeh.test>", b"DATA"):
        writer.write(command + b"\r\n")
        await reply(reader)
    writer.write(b"Subject: never finished\r\n\r\nhalf a mess")  # and then the sender stalls
    await writer.drain()
    try:
        with capture_logs() as logs:
            await asyncio.wait_for(daemon.stop(), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b"421 4.3.2 Service shutting down\r\n"
        (stopped,) = [e for e in logs if e["event"] == "smtp_stopped"]
        assert (stopped["told_421"], stopped["drained"], stopped["cut_off"]) == (0, 0, 1)
    finally:
        writer.close()
    again = await make_daemon()
    (row,) = await again.store.fetchall("SELECT count(*) AS n FROM inbox")
    assert row["n"] == 0


async def test_acknowledgement_never_goes_to_noreply_or_our_own_address(make_daemon: Any) -> None:
    daemon = await make_daemon()
    await send(daemon, mail(sender="noreply@bank.example", subject="Statement"))
    await send(daemon, mail(sender="claims@parvandeh.test", subject="Loop"))
    for ticket in await tickets(daemon):
        detail = await queries.ticket_detail(daemon.store, ticket["reference"])
        assert all(m["direction"] == "in" for m in detail["messages"])


async def test_acknowledgements_are_rate_limited_per_recipient(make_daemon: Any) -> None:
    daemon = await make_daemon("", environ={"PARVANDEH__CLAIMS__CONTINUITY_WINDOW_HOURS": "0"})
    for n in range(5):
        await send(daemon, mail(subject=f"new claim {n}"))
    await daemon.ingest.drained()
    (row,) = await daemon.store.fetchall("SELECT count(*) AS n FROM outbox WHERE automatic = 1")
    assert len(await tickets(daemon)) == 5 and row["n"] == 3


async def test_the_outbox_waits_out_a_store_that_refuses_writes_and_then_sends(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    try:
        daemon = await make_daemon(outbound_port=sink.port)
        with capture_logs() as logs:
            await refuse_writes(daemon, True)
            for _ in range(500):  # the outbox polls: its claim is refused
                if any(e["event"] == "outbox_claim_failed" for e in logs):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the outbox's claim was not refused")
        await refuse_writes(daemon, False)
        await send(daemon, mail(message_id="<after@example.com>", subject="after the outage"))
        (ack,) = await sink.wait_for(1)
        assert ack["In-Reply-To"] == "<after@example.com>"
    finally:
        await sink.stop()


async def test_mail_whose_threading_write_failed_is_threaded_after_a_pause_not_at_the_next_start(
        make_daemon: Any) -> None:
    daemon = await make_daemon()
    store = daemon.store
    first_gate, second_gate = threading.Event(), threading.Event()

    def held(gate: threading.Event) -> Callable[[Tx], None]:
        return lambda tx: gate.wait(10)

    def fails_at_commit(tx: Tx) -> None:
        # A dangling reference checked only at COMMIT: the transaction it is in fails as a whole.
        tx.execute("PRAGMA defer_foreign_keys = ON")
        tx.execute("INSERT INTO identities (contact_id, kind, value, created_at) VALUES (999999, 'email', 'x@y', 'now')")

    # The writer runs two held writes: the mail's acknowledgement joins the first's transaction;
    # its threading write is queued behind the second, with the failing write beside it.
    busy = [store.submit(held(first_gate), background=True), store.submit(held(second_gate), background=True)]
    with capture_logs() as logs:
        sending = asyncio.create_task(send(daemon, mail(message_id="<held@example.com>", subject="held back")))
        await until_true(lambda: store.queued[0] >= 1, "the acknowledgement to be queued")
        await asyncio.sleep(0.05)  # longer than ack_wait_ms: it joins the transaction at the next write
        first_gate.set()
        code, _ = await sending
        assert code == 250
        failing = store.submit(fails_at_commit, background=True)
        await until_true(lambda: store.queued[1] >= 2, "the threading write, beside the failing one")
        second_gate.set()
        await asyncio.gather(*busy, failing, return_exceptions=True)
        await until_true(lambda: queries.list_tickets(store), "the mail to be threaded")
    assert [e["inbox_id"] for e in logs if e["event"] == "apply_failed_store_unavailable"] == [1]
    (ticket,) = await queries.list_tickets(store)
    assert ticket["subject"] == "held back"


async def test_a_long_persian_subject_reaches_the_customer_with_its_spaces(make_daemon: Any) -> None:
    # Folded by Python's own header folder, the space where it broke the subject between two
    # encoded-words was dropped, and mail readers showed two words as one.
    subject = "درخواست بررسی هزینه‌های درمان بیمارستان و داروخانه برای پرونده خسارت بدنه خودرو"
    sink = await SmtpSink().start()
    try:
        daemon = await make_daemon(outbound_port=sink.port)
        await send(daemon, mail(subject=subject, body="سلام"))
        (ack,) = await sink.wait_for(1)
        ref = (await tickets(daemon))[0]["reference"]
        await daemon.store.write(agent_reply(ref, "بررسی می‌کنیم.", "agent1", daemon.ingest.context))
        daemon.outbox.wake()
        reply = (await sink.wait_for(2))[1]
        assert reply["Subject"] == f"Re: [{ref}] {subject}"
        assert subject.split()[1] + " " + subject.split()[2] in ack["Subject"]
        headers = sink.received[1][0].original_content.split(b"\r\n\r\n")[0].split(b"\r\n")
        assert all(len(line) <= 78 for line in headers)  # still folded (RFC 5322 2.1.1)
    finally:
        await sink.stop()


async def test_acknowledgement_and_agent_reply_leave_through_relay_threaded(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    try:
        daemon = await make_daemon(outbound_port=sink.port)
        await send(daemon, mail(message_id="<c1@example.com>", subject="خسارت بدنه", body="سلام"))
        (ack,) = await sink.wait_for(1)
        ticket = (await tickets(daemon))[0]
        ref = ticket["reference"]
        assert ack["Auto-Submitted"] == "auto-replied"
        assert sink.received[0][0].mail_from == "<>"  # RFC 3834: null reverse-path
        assert f"[{ref}]" in ack["Subject"]
        assert ack["In-Reply-To"] == "<c1@example.com>"
        assert ref in ack.get_content()

        await daemon.store.write(agent_reply(ref, "کارشناس فردا تماس می‌گیرد.", "agent1", daemon.ingest.context))
        daemon.outbox.wake()
        reply = (await sink.wait_for(2))[1]
        assert reply["To"] == "ali@example.com"
        assert sink.received[1][0].mail_from == "claims@parvandeh.test"  # an agent's reply can bounce back
        assert reply["Subject"] == f"Re: [{ref}] خسارت بدنه"
        assert reply["Auto-Submitted"] is None
        assert reply["In-Reply-To"] == "<c1@example.com>"
        assert reply["References"].split()[0] == "<c1@example.com>"
        assert "کارشناس فردا" in reply.get_content()

        # The customer answers our reply: threads by our own Message-ID.
        await send(daemon, mail(message_id="<c2@example.com>", subject="Re: whatever",
                                in_reply_to=reply["Message-ID"], references=reply["Message-ID"]))
        (same,) = await tickets(daemon)
        assert same["reference"] == ref
        detail = await queries.ticket_detail(daemon.store, ref)
        assert [e["kind"] for e in detail["timeline"]].count("delivery_sent") == 2
    finally:
        await sink.stop()


async def test_an_acknowledgement_is_no_answer_the_customer_still_waits(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    try:
        daemon = await make_daemon(outbound_port=sink.port)
        await send(daemon, mail(subject="need help"))
        await sink.wait_for(1)  # the acknowledgement

        async def sent(count: int) -> bool:
            rows = await daemon.store.fetchall("SELECT id FROM outbox WHERE state = 'sent'")
            return len(rows) == count

        async def waiting() -> tuple[Any, int]:
            (ticket,) = (await queries.ticket_page(daemon.store, None))["tickets"]
            (queue,) = await queries.queue_overview(daemon.store, None, warn_before={}, breach_before={})
            return ticket["waiting_since"], queue["waiting"]

        await until_true(lambda: sent(1), "the acknowledgement recorded as sent")
        since, count = await waiting()
        assert since is not None and count == 1, "acknowledged, not answered: the customer still waits"
        ref = (await tickets(daemon))[0]["reference"]
        await daemon.store.write(agent_reply(ref, "بررسی می‌کنیم.", "agent1", daemon.ingest.context))
        daemon.outbox.wake()
        await until_true(lambda: sent(2), "the agent's answer recorded as sent")
        assert await waiting() == (None, 0)
    finally:
        await sink.stop()


async def test_reply_to_mail_without_a_message_id_has_no_in_reply_to(make_daemon: Any) -> None:
    sink = await SmtpSink().start()
    try:
        daemon = await make_daemon(outbound_port=sink.port)
        await send(daemon, b"From: ali@example.com\r\nTo: claims@parvandeh.test\r\nSubject: x\r\n\r\nsalam\r\n")
        await sink.wait_for(1)
        (ticket,) = await tickets(daemon)
        await daemon.store.write(agent_reply(ticket["reference"], "سلام", "agent1", daemon.ingest.context))
        daemon.outbox.wake()
        reply = (await sink.wait_for(2))[1]
        # Stored under a digest of its bytes, which is no Message-ID any mailer knows.
        assert reply["In-Reply-To"] is None
        assert "sha256" not in (reply["References"] or "")
    finally:
        await sink.stop()


async def test_relay_failure_is_retried_and_shown_on_the_timeline(make_daemon: Any) -> None:
    sink = await SmtpSink(reply="451 try later").start()
    try:
        daemon = await make_daemon(outbound_port=sink.port)
        await send(daemon, mail(subject="retry me"))
        (ticket,) = await tickets(daemon)
        for _ in range(200):
            detail = await queries.ticket_detail(daemon.store, ticket["reference"])
            if any(e["kind"] == "delivery_retrying" for e in detail["timeline"]):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("no retry recorded")
        (row,) = await daemon.store.fetchall("SELECT state, attempts, last_error FROM outbox")
        assert row["state"] == "pending" and row["attempts"] == 1 and "451" in row["last_error"]
    finally:
        await sink.stop()


_ATEXT_CHARS = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
_ATOM = st.text(st.sampled_from(_ATEXT_CHARS), min_size=1, max_size=6)
_LABEL = st.text(st.sampled_from(string.ascii_letters + string.digits + "-"), min_size=1, max_size=6)


@given(st.lists(_ATOM, min_size=1, max_size=3), st.lists(_LABEL, min_size=1, max_size=3),
       st.sampled_from(["", " ", "  "]), st.sampled_from(["", " SIZE=123", "  BODY=8BITMIME SMTPUTF8", "\t",
                                                         " (comment) SIZE=2", "SIZE=3"]),
       st.sampled_from([0, 8]))
def test_the_listeners_address_fast_path_reads_what_aiosmtpds_parser_reads(
    local: list[str], domain: list[str], lead: str, rest: str, local_part_limit: int,
) -> None:
    server = _ListenerSMTP.__new__(_ListenerSMTP)
    server.local_part_limit = local_part_limit
    arg = f"{lead}<{'.'.join(local)}@{'.'.join(domain)}>{rest}"
    assert server._getaddr(arg) == SMTP._getaddr(server, arg)
