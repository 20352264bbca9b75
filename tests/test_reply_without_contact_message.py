"""A claim on which the contact never wrote themselves (an insurer filed it; a web form reached a
returning customer through an address they already had) is still answered: on the contact's own
email or phone, as before replies were limited to the contact's own identities."""

from __future__ import annotations

from typing import Any

from ingest import queries
from ingest.apply import agent_reply
from tests.test_insurer_api import INSURER_API, filing
from tests.test_stated_identities import QUIET, email, outbox_recipients, twilio_table, twilio_token  # noqa: F401 (autouse)
from tests.test_webchat import WEBCHAT, form_fields, multipart, post_form


async def test_insurer_filed_claim_is_answered_on_the_policyholders_email(make_daemon: Any) -> None:
    from ingest.insurers import create_insurer
    import aiohttp

    daemon = await make_daemon(INSURER_API)
    made = await daemon.store.write(create_insurer("asia", ""))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {made.api_key}"}) as s:
        async with s.post(f"http://127.0.0.1:{daemon.http_port}/api/v1/claims", json=filing()) as r:
            assert r.status == 201
            ref = (await r.json())["reference"]
    await daemon.store.write(agent_reply(ref, "لطفا عکس خودرو را بفرستید", "agent", daemon.ingest.context))
    assert await outbox_recipients(daemon) == ["ali.rezaei@example.com"]


async def test_web_form_from_a_returning_customer_with_a_new_phone_is_answered(make_daemon: Any) -> None:
    daemon = await make_daemon(WEBCHAT + twilio_table(), environ=QUIET)
    await email(daemon, "Sara <sara@example.com>", "خسارت", "شرح خسارت")
    status, _ = await post_form(daemon, multipart(form_fields(email="sara@example.com", phone="09351112233")))
    assert status == 200
    await daemon.ingest.drained()
    form_claim = (await queries.list_tickets(daemon.store))[0]  # the newest: the form opened its own claim
    assert form_claim["subject"].startswith("Web form")
    before = len(await outbox_recipients(daemon))
    await daemon.store.write(agent_reply(form_claim["reference"], "فرم شما رسید", "agent", daemon.ingest.context))
    assert (await outbox_recipients(daemon))[before:] == ["sara@example.com"]
