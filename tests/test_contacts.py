"""The CRM view: a profile across channels, merge and its undo, splitting an identity off, and
duplicate suggestions; all through the real write operations on a real store."""

from __future__ import annotations

import json
from dataclasses import replace
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.agents import audit_trail
from ingest.analysis import analyse
from ingest.apply import ApplyContext, apply_inbound, insert_inbox
from ingest.claims_ops import ClaimFiling, open_claim
from ingest.contacts import (
    ContactError, add_contact_note, contact_profile, duplicate_suggestions, merge_contacts, split_identity,
    undo_merge, update_contact,
)
from ingest.records import Identity, InboundMessage, RawPayload
from ingest.store import Store, Tx, utcnow

CTX = ApplyContext(
    reference_prefix="PV", continuity_window=timedelta(hours=72), default_queue="intake", acknowledge=False,
    ack_hourly_limit=3, own_addresses=frozenset(), mail_domain="parvandeh.test", from_address="claims@parvandeh.test",
)


class Crm:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sent = 0

    async def message(self, channel: str, sender: Identity, text: str = "my claim", ctx: ApplyContext = CTX) -> str:
        """A customer message through the ingest apply step; returns the ticket reference."""
        self.sent += 1
        payload = RawPayload(channel, "test", f"m{self.sent}", "test", b"", utcnow())
        inbox_id, _ = await self.store.write(insert_inbox(payload))
        msg = InboundMessage(channel=channel, channel_message_id=f"m{self.sent}", sender=sender, text=text,
                             conversation_key=f"{sender.kind}:{sender.value}:{self.sent}")
        return (await self.store.write(apply_inbound(inbox_id, "test", msg, [], ctx, analyse(msg, ctx.reference_prefix)))).ticket_ref

    async def contact_of(self, kind: str, value: str) -> int:
        row = await self.store.fetchone("SELECT contact_id FROM identities WHERE kind = ? AND value = ?", (kind, value))
        return row["contact_id"]

    async def identity_id(self, kind: str, value: str) -> int:
        row = await self.store.fetchone("SELECT id FROM identities WHERE kind = ? AND value = ?", (kind, value))
        return row["id"]


@pytest.fixture
async def crm(tmp_path: Path) -> AsyncIterator[Crm]:
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF")
    await store.open()
    yield Crm(store)
    await store.close()


async def test_profile_shows_every_identity_claim_and_interaction_across_channels(crm: Crm) -> None:
    filing = ClaimFiling.model_validate_json(json.dumps({
        "claim_number": "A-1", "policy_number": "P", "line_of_business": "auto", "loss_date": "2025-05-01",
        "policyholder": {"name": "Ali", "national_id": "0499370899", "phones": ["09121234567"],
                         "email": "ali@example.com"}}))
    opened = await crm.store.write(open_claim("asia", filing, CTX, connector="insurer_api", idempotency_key=None,
                                              fingerprints=("",), stored_documents=[]))
    assert await crm.message("sms", Identity("phone", "+989121234567"), "photos sent") == opened.ref
    contact = await crm.contact_of("phone", "+989121234567")
    await crm.store.write(update_contact(contact, "maryam", organisation="Asia Insurance", role="policyholder",
                                         tags=["VIP", "motor"]))
    await crm.store.write(add_contact_note(contact, "prefers SMS after 5pm", "maryam"))

    profile = await contact_profile(crm.store, contact)
    assert {(i["kind"], i["value"]) for i in profile["identities"]} == {
        ("email", "ali@example.com"), ("national_id", "0499370899"), ("phone", "+989121234567")}
    assert [c["ref"] for c in profile["claims"]] == [opened.ref] and profile["claims"][0]["insurer"] == "asia"
    assert profile["channels"] == {"api": 1, "sms": 1}
    assert (profile["organisation"], profile["tags"]) == ("Asia Insurance", ["VIP", "motor"])
    assert [n["text"] for n in profile["notes"]] == ["prefers SMS after 5pm"]
    with pytest.raises(ContactError, match="role"):
        update_contact(contact, "maryam", role="astronaut")


async def test_merge_moves_identities_and_claims_and_undo_splits_them_back(crm: Crm) -> None:
    ref_mail = await crm.message("email", Identity("email", "ali@example.com"))
    ref_chat = await crm.message("telegram", Identity("telegram", "4242"))
    keep, other = await crm.contact_of("email", "ali@example.com"), await crm.contact_of("telegram", "4242")
    await crm.store.write(update_contact(other, "maryam", tags=["broker"]))
    await crm.store.write(add_contact_note(other, "calls from the office", "maryam"))

    merge = await crm.store.write(merge_contacts(keep, other, "maryam"))
    profile = await contact_profile(crm.store, keep)
    assert {c["ref"] for c in profile["claims"]} == {ref_mail, ref_chat}
    assert {i["kind"] for i in profile["identities"]} == {"email", "telegram"}
    assert profile["tags"] == ["broker"] and len(profile["notes"]) == 1
    assert (await contact_profile(crm.store, other))["merged_into"] == keep
    # The merged contact's channel now reaches the kept contact.
    await crm.message("telegram", Identity("telegram", "4242"), "and another thing")
    assert await crm.contact_of("telegram", "4242") == keep
    with pytest.raises(ContactError, match="was merged into"):
        await crm.store.write(merge_contacts(other, keep, "maryam"))

    restored = await crm.store.write(undo_merge(merge, "maryam"))
    assert restored == other
    back = await contact_profile(crm.store, other)
    assert back["merged_into"] is None and [c["ref"] for c in back["claims"]] == [ref_chat]
    assert [i["kind"] for i in back["identities"]] == ["telegram"] and len(back["notes"]) == 1
    kept = await contact_profile(crm.store, keep)
    assert kept["tags"] == [] and ref_chat not in {c["ref"] for c in kept["claims"]}
    with pytest.raises(ContactError, match="already undone"):
        await crm.store.write(undo_merge(merge, "maryam"))
    actions = [a["action"] for a in await audit_trail(crm.store, agent="maryam")]
    assert actions[:2] == ["contact_merge_undone", "contact_merge"]


async def test_split_identity_takes_its_own_claims_to_a_new_contact(crm: Crm) -> None:
    ref_mail = await crm.message("email", Identity("email", "ali@example.com"))

    def shared_phone(tx: Tx) -> None:  # a family phone recorded on Ali's contact
        contact = tx.one("SELECT contact_id FROM identities WHERE value = 'ali@example.com'")[0]
        tx.execute("INSERT INTO identities (contact_id, kind, value, created_at) VALUES (?, 'phone', '+989351112233', '')",
                   (contact,))

    await crm.store.write(shared_phone)
    ali = await crm.contact_of("email", "ali@example.com")
    # Sara's own claim (no continuity: it must not join Ali's open claim).
    ref_sms = await crm.message("sms", Identity("phone", "+989351112233"), "this is Sara, Ali's sister: new claim",
                                replace(CTX, continuity_window=timedelta(0)))
    new = await crm.store.write(split_identity(await crm.identity_id("phone", "+989351112233"), "maryam"))
    sara = await contact_profile(crm.store, new)
    assert [i["value"] for i in sara["identities"]] == ["+989351112233"]
    assert [c["ref"] for c in sara["claims"]] == [ref_sms]
    assert [c["ref"] for c in (await contact_profile(crm.store, ali))["claims"]] == [ref_mail]
    with pytest.raises(ContactError, match="only one"):
        await crm.store.write(split_identity(await crm.identity_id("phone", "+989351112233"), "maryam"))


async def test_split_identity_takes_the_claims_of_that_identity_not_of_another_kind_with_its_number(crm: Crm) -> None:
    # One person on Telegram and on Bale (a supervisor merged the two); the two messengers number
    # users independently, and here the numbers happen to be the same.
    ref_tg = await crm.message("telegram", Identity("telegram", "22"))
    ref_bale = await crm.message("bale", Identity("bale", "22"), "از بله", replace(CTX, continuity_window=timedelta(0)))
    kept = await crm.contact_of("telegram", "22")
    await crm.store.write(merge_contacts(kept, await crm.contact_of("bale", "22"), "maryam"))
    new = await crm.store.write(split_identity(await crm.identity_id("bale", "22"), "maryam"))
    assert [c["ref"] for c in (await contact_profile(crm.store, new))["claims"]] == [ref_bale]
    assert [c["ref"] for c in (await contact_profile(crm.store, kept))["claims"]] == [ref_tg]


async def test_duplicates_are_suggested_for_same_national_id_phone_format_and_email_case(crm: Crm) -> None:
    def legacy_import(tx: Tx) -> None:  # identities as an old system wrote them, one contact each
        for kind, value in [("national_id", "0499370899"), ("national_id", "۰۴۹۹۳۷۰۸۹۹"),
                            ("phone", "+989121234567"), ("phone", "0912 123 4567"),
                            ("email", "Ali@Example.com"), ("email", "ali@example.com"),
                            ("email", "someone.else@example.com")]:
            contact = tx.execute("INSERT INTO contacts (created_at) VALUES ('')").lastrowid
            tx.execute("INSERT INTO identities (contact_id, kind, value, created_at) VALUES (?, ?, ?, '')",
                       (contact, kind, value))

    await crm.store.write(legacy_import)
    suggestions = await duplicate_suggestions(crm.store)
    assert [(s["reason"], s["contact_ids"]) for s in suggestions] == [
        ("same national id", [1, 2]), ("same phone in another format", [3, 4]),
        ("same email with different case", [5, 6])]
    await crm.store.write(merge_contacts(3, 4, "maryam"))
    assert [s["kind"] for s in await duplicate_suggestions(crm.store)] == ["national_id", "email"]
