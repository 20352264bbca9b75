"""The SMTP listener takes mail only for our own domains: mail for anyone else's is refused at
RCPT (550), not stored as a claim whose acknowledgement goes to whatever From it carried."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

from ingest.daemon import Daemon


async def rcpt(daemon: Daemon, address: str) -> int:
    def run() -> int:
        with smtplib.SMTP("127.0.0.1", daemon.connectors["smtp"].port, timeout=10) as client:  # type: ignore[attr-defined]
            client.ehlo()
            client.mail("someone@example.org")
            return client.rcpt(address)[0]

    return await asyncio.to_thread(run)


async def test_mail_for_another_domain_is_refused_at_rcpt(make_daemon: Any) -> None:
    daemon = await make_daemon()  # own_addresses = ["claims@parvandeh.test"]
    assert await rcpt(daemon, "anyone@gmail.com") == 550
    assert await rcpt(daemon, "claims@PARVANDEH.test") == 250
    assert await rcpt(daemon, "other-mailbox@parvandeh.test") == 250


def test_accept_domains_setting_names_the_domains_or_star_for_any(make_daemon: Any) -> None:
    from connectors.smtp import SmtpConnector, SmtpSettings

    connector = SmtpConnector.__new__(SmtpConnector)
    connector.context = type("Context", (), {"settings": None})()
    assert connector._accepted_domains(SmtpSettings(accept_domains=["*"])) is None
    assert connector._accepted_domains(SmtpSettings(accept_domains=["Claims.Example.IR."])) == {"claims.example.ir"}
    assert connector._accepted_domains(SmtpSettings()) is None  # no own addresses known: any
