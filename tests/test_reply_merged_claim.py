"""A claim merged into another brings its contact's thread along: the adjuster answering the
merged claim still reaches whoever wrote last, and can pick that contact's channel, as before
replies were limited to the claim contact's own identities. A stranger stays unanswered."""

from __future__ import annotations

from typing import Any

from ingest import queries
from ingest.apply import agent_reply, merge_tickets
from tests.test_stated_identities import email, outbox_recipients


async def test_reply_on_a_merged_claim_reaches_the_merged_claims_contact(make_daemon: Any) -> None:
    daemon = await make_daemon()
    await email(daemon, "Ali <ali@example.com>", "تصادف خودرو", "خودروی من تصادف کرد")
    await email(daemon, "Zahra <zahra@example.org>", "تصادف خودرو همسرم", "خودروی همسرم تصادف کرد")
    zahra, ali = await queries.list_tickets(daemon.store)
    await daemon.store.write(merge_tickets(zahra["reference"], ali["reference"], "supervisor"))
    before = len(await outbox_recipients(daemon))
    await daemon.store.write(agent_reply(ali["reference"], "هر دو پرونده بررسی می‌شود", "agent",
                                         daemon.ingest.context))
    assert (await outbox_recipients(daemon))[before:] == ["zahra@example.org"]
    # A stranger naming the claim threads onto it but is still not answered.
    await email(daemon, "Mallory <m@evil.example>", f"[{ali['reference']}] status?", "any news?")
    await daemon.store.write(agent_reply(ali["reference"], "پاسخ", "agent", daemon.ingest.context))
    assert "m@evil.example" not in await outbox_recipients(daemon)
