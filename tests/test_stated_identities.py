"""Identities a message only states (a phone in a mail's signature, a web form's fields) may be
anyone's: they must not bring a stranger into an existing customer's contact, where the
stranger's messages would continue that customer's claim and the adjuster's replies reach them."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

import pytest

from ingest import queries
from ingest.apply import agent_reply
from ingest.daemon import Daemon
from tests.mailgen import mail
from tests.test_twilio import CUSTOMER, QUIET, TOKEN, post, sms, twilio_table
from tests.test_webchat import WEBCHAT, form_fields, multipart, post_form


@pytest.fixture(autouse=True)
def twilio_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARVANDEH_TWILIO_AUTH_TOKEN", TOKEN)


async def email(daemon: Daemon, sender: str, subject: str, body: str) -> None:
    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", daemon.connectors["smtp"].port, timeout=10) as client:  # type: ignore[attr-defined]
            client.send_message(mail(sender=sender, subject=subject, body=body))

    await asyncio.to_thread(deliver)
    await daemon.ingest.drained()


async def contact_of(daemon: Daemon, value: str) -> int | None:
    row = await daemon.store.fetchone("SELECT contact_id FROM identities WHERE value = ?", (value,))
    return row["contact_id"] if row else None


async def outbox_recipients(daemon: Daemon) -> list[str]:
    return [row["recipient"] for row in await daemon.store.fetchall("SELECT recipient FROM outbox ORDER BY id")]


async def test_mail_stating_a_customers_phone_does_not_join_their_contact_or_claim(make_daemon: Any) -> None:
    daemon = await make_daemon(twilio_table(), environ=QUIET)
    await post(daemon, sms("SM1", body="ماشینم تصادف کرده"))  # the customer, from CUSTOMER
    await daemon.ingest.drained()
    (claim,) = await queries.list_tickets(daemon.store)
    # A stranger who knows only the customer's mobile number writes it in a signature.
    await email(daemon, "Mallory <mallory@evil.example>", "پیگیری", f"وضعیت پرونده؟\n\nعلی\nموبایل: {CUSTOMER}")
    assert await contact_of(daemon, "mallory@evil.example") != await contact_of(daemon, CUSTOMER)
    detail = await queries.ticket_detail(daemon.store, claim["reference"])
    assert [m["sender"] for m in detail["messages"] if m["direction"] == "in"] == [CUSTOMER]
    await daemon.store.write(agent_reply(claim["reference"], "خسارت تایید شد", "agent", daemon.ingest.context))
    assert "mallory@evil.example" not in await outbox_recipients(daemon)


async def test_web_form_naming_a_customers_email_does_not_add_the_visitors_phone_to_them(
        make_daemon: Any) -> None:
    daemon = await make_daemon(WEBCHAT + twilio_table(), environ=QUIET)
    await email(daemon, "Victim <victim@example.com>", "خسارت", "شرح خسارت")
    (claim,) = await queries.list_tickets(daemon.store)
    # The visitor types the customer's address and their own mobile (CUSTOMER) into the form.
    status, _ = await post_form(daemon, multipart(form_fields(email="victim@example.com", phone=CUSTOMER)))
    assert status == 200
    await daemon.ingest.drained()
    assert await contact_of(daemon, CUSTOMER) != await contact_of(daemon, "victim@example.com")
    await daemon.store.write(agent_reply(claim["reference"], "first answer", "agent", daemon.ingest.context))
    await post(daemon, sms("SM2", body="خبری نشد؟"))  # from the visitor's mobile
    await daemon.ingest.drained()
    detail = await queries.ticket_detail(daemon.store, claim["reference"])
    assert CUSTOMER not in [m["sender"] for m in detail["messages"] if m["direction"] == "in"]
    await daemon.store.write(agent_reply(claim["reference"], "پرداخت شد", "agent", daemon.ingest.context))
    assert CUSTOMER not in await outbox_recipients(daemon)


async def test_mail_stating_an_unknown_phone_still_links_it(make_daemon: Any) -> None:
    daemon = await make_daemon(twilio_table(), environ=QUIET)
    await email(daemon, "Ali <ali@example.com>", "خسارت", f"سلام\n\nعلی\nموبایل: {CUSTOMER}")
    assert await contact_of(daemon, CUSTOMER) == await contact_of(daemon, "ali@example.com") is not None
