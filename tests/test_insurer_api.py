"""The insurer B2B API over real HTTP on loopback: API keys, tenant isolation, idempotency,
problem+json validation, the claim thread, the policyholder's later e-mail, and signed
webhooks (with a failing first attempt) received by a stand-in insurer endpoint."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import re
import smtplib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from connectors.http_front import verify_hmac_sha256
from connectors.insurer_api import routes
from connectors.standins.smtp_sink import SmtpSink
from ingest.claims_ops import body_fingerprint
from ingest.apply import TicketActionError, change_status, merge_tickets
from ingest.insurers import _PUBLIC_EVENTS, create_insurer, list_claims
from ingest.migrations import MIGRATIONS
from ingest.queries import list_tickets, ticket_detail
from ingest.reports import build_report
from ingest.store import Store, Tx, iso
from router.claimref import TEHRAN
from tests.conftest import refuse_writes
from tests.mailgen import mail
from tests.test_sla_engine import POLICY_24X7, saturday_morning

INSURER_API = """
[insurer_api]
retry_base_seconds = 0.05
poll_seconds = 0.1
"""
VALID_NATIONAL_ID = "0499370899"


def filing(claim_number: str = "ASIA-2025-001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "claim_number": claim_number,
        "policy_number": "POL-77",
        "line_of_business": "auto",
        "policyholder": {"name": "علی رضایی", "national_id": VALID_NATIONAL_ID,
                         "phones": ["0912 123 4567"], "email": "Ali.Rezaei@Example.com"},
        "vehicle": {"plate": "۲۲ ی ۴۵۶ - ۷۷"},
        "loss_date": "2025-05-01",
        "loss_place": "Tehran, Valiasr",
        "description": "Rear-end collision at a red light.",
    }
    body.update(overrides)
    return body


@dataclass
class Receiver:
    """The insurer's webhook endpoint: answers 503 to the first `fail_first` deliveries."""

    secret: str = "whsec-asia"
    fail_first: int = 1
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        if len(self.received) <= self.fail_first:
            return web.Response(status=503, text="busy")
        return web.Response(status=204)


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    keys: dict[str, str]

    async def call(self, method: str, path: str, insurer: str | None = "asia", *, body: Any = None,
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        sent = dict(headers or {})
        if insurer:
            sent["Authorization"] = f"Bearer {self.keys[insurer]}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base + path, data=data, headers=sent) as response:
            text = await response.text()
            return response.status, dict(response.headers), json.loads(text) if text else None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    stand_in = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", stand_in.handle)
    # Torn down while the daemon may still be delivering to it: wait a second, not aiohttp's 60.
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hooks"  # type: ignore[union-attr]
    yield stand_in
    await runner.cleanup()


@pytest.fixture
async def api(make_daemon: Callable[..., Any], receiver: Receiver) -> AsyncIterator[Api]:
    daemon = await make_daemon(INSURER_API)
    keys = {}
    for name, url, secret in (("asia", receiver.url, receiver.secret), ("dana", "", "whsec-dana")):
        made = await daemon.store.write(create_insurer(name, url, webhook_secret=secret))
        keys[name] = made.api_key
    async with aiohttp.ClientSession() as session:
        client = Api(f"http://127.0.0.1:{daemon.http_port}/api/v1", session, keys)
        client.daemon = daemon  # type: ignore[attr-defined]
        yield client
    # Before the receiver stand-in goes (its fixture ends next): no delivery to it is in flight
    # while it shuts down. make_daemon's own teardown then finds the daemon stopped.
    await daemon.stop()


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


# -- authentication and isolation -------------------------------------------------------------


async def test_requests_without_a_valid_api_key_are_refused_as_problem_json(api: Api) -> None:
    status, headers, body = await api.call("POST", "/claims", None, body=filing())
    assert status == 401 and headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == 401 and "Bearer" in headers["WWW-Authenticate"]
    status, _, _ = await api.call("GET", "/claims", None, headers={"Authorization": "Bearer pvi_forged"})
    assert status == 401
    assert await api.daemon.store.fetchone("SELECT 1 FROM tickets") is None  # type: ignore[attr-defined]


async def test_filed_claim_gets_our_reference_insurer_and_line_of_business(api: Api) -> None:
    status, headers, claim = await api.call("POST", "/claims", body=filing())
    assert status == 201
    ref = claim["reference"]
    assert ref.startswith("PV-14") and headers["Location"].endswith(f"/claims/{ref}")
    assert claim["insurer_claim_number"] == "ASIA-2025-001" and claim["status"] == "new"
    assert claim["line_of_business"] == "auto" and claim["details"]["vehicle"]["plate"]
    assert [e["kind"] for e in claim["timeline"]][:2] == ["ticket_created", "claim_filed"]
    detail = await ticket_detail(api.daemon.store, ref)  # type: ignore[attr-defined]
    assert detail["insurer"] == "asia" and detail["line_of_business"] == "auto"
    identities = await api.daemon.store.fetchall(  # type: ignore[attr-defined]
        "SELECT kind, value FROM identities WHERE contact_id = ? ORDER BY kind", (detail["contact"]["id"],))
    assert [tuple(r) for r in identities] == [
        ("email", "ali.rezaei@example.com"), ("national_id", VALID_NATIONAL_ID), ("phone", "+989121234567")]



async def test_a_reference_in_persian_digits_or_lower_case_names_the_claim(api: Api) -> None:
    _, _, claim = await api.call("POST", "/claims", body=filing())
    ref = claim["reference"]
    persian = ref.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    for spelling in (persian, ref.lower()):
        status, _, view = await api.call("GET", f"/claims/{quote(spelling)}")
        assert status == 200 and view["reference"] == ref
    status, _, posted = await api.call("POST", f"/claims/{quote(persian)}/messages", body={"text": "برآورد خسارت"})
    assert status == 201 and posted["reference"] == ref
    status, _, _ = await api.call("GET", f"/claims/{quote(persian)}", "dana")
    assert status == 404  # still only the insurer's own
    # The served document admits the spelling the server reads (a client validating against it).
    _, _, document = await api.call("GET", "/openapi.json", None)
    (ref_parameter,) = [p for p in document["paths"]["/claims/{ref}"]["get"]["parameters"] if p["name"] == "ref"]
    assert re.fullmatch(ref_parameter["schema"]["pattern"].strip("^$"), persian)

async def test_insurer_gets_404_for_another_insurers_claim(api: Api) -> None:
    _, _, claim = await api.call("POST", "/claims", body=filing())
    ref = claim["reference"]
    status, headers, body = await api.call("GET", f"/claims/{ref}", "dana")
    assert status == 404 and headers["Content-Type"].startswith("application/problem+json")
    status, _, _ = await api.call("POST", f"/claims/{ref}/messages", "dana", body={"text": "mine now"})
    assert status == 404
    _, _, listing = await api.call("GET", "/claims", "dana")
    assert listing["claims"] == []
    # The same claim number at another insurer is another claim.
    status, _, other = await api.call("POST", "/claims", "dana", body=filing())
    assert status == 201 and other["reference"] != ref
    detail = await ticket_detail(api.daemon.store, ref)  # type: ignore[attr-defined]
    assert all("mine now" not in m["text"] for m in detail["messages"])


async def test_an_insurers_claim_cannot_be_merged_away_from_it(api: Api) -> None:
    store = api.daemon.store  # type: ignore[attr-defined]
    _, _, asia = await api.call("POST", "/claims", body=filing("ASIA-SECRET-1", description="reserve 900M"))
    _, _, dana = await api.call("POST", "/claims", "dana", body=filing("DANA-7"))
    with pytest.raises(TicketActionError, match="only be merged into another of asia's claims"):
        await store.write(merge_tickets(asia["reference"], dana["reference"], "maryam"))
    _, _, dana_view = await api.call("GET", f"/claims/{dana['reference']}", "dana")
    assert "ASIA-SECRET-1" not in json.dumps(dana_view, ensure_ascii=False)
    _, _, asia_view = await api.call("GET", f"/claims/{asia['reference']}")
    assert asia_view["status"] != "closed"
    # Two of one insurer's own claims (a duplicate filing) still merge.
    _, _, other = await api.call("POST", "/claims", body=filing("ASIA-2"))
    await store.write(merge_tickets(other["reference"], asia["reference"], "maryam"))



async def test_a_message_for_a_merged_claim_goes_on_the_claim_it_was_merged_into(api: Api) -> None:
    # A duplicate filing merged into the first: the insurer still holds the duplicate's reference.
    store = api.daemon.store  # type: ignore[attr-defined]
    _, _, kept = await api.call("POST", "/claims", body=filing("ASIA-1"))
    _, _, duplicate = await api.call("POST", "/claims", body=filing("ASIA-1-DUP"))
    await store.write(merge_tickets(duplicate["reference"], kept["reference"], "maryam"))
    status, _, posted = await api.call("POST", f"/claims/{duplicate['reference']}/messages",
                                       body={"text": "The garage estimate is attached."})
    assert status == 201 and posted["reference"] == kept["reference"]
    _, _, source = await api.call("GET", f"/claims/{duplicate['reference']}")
    assert source["status"] == "closed"  # not reopened as an empty shell with a clock running
    _, _, target = await api.call("GET", f"/claims/{kept['reference']}")
    assert target["messages"][-1]["text"] == "The garage estimate is attached."


async def test_the_number_of_a_merged_claim_filed_again_answers_with_the_claim_it_joined(api: Api) -> None:
    store = api.daemon.store  # type: ignore[attr-defined]
    _, _, kept = await api.call("POST", "/claims", body=filing("ASIA-1"))
    _, _, duplicate = await api.call("POST", "/claims", body=filing("ASIA-1-DUP"))
    await store.write(merge_tickets(duplicate["reference"], kept["reference"], "maryam"))
    status, headers, again = await api.call("POST", "/claims", body=filing("ASIA-1-DUP"))
    assert (status, headers["Idempotent-Replayed"]) == (200, "claim_number")
    assert again["reference"] == kept["reference"]  # not the closed, empty duplicate

# -- idempotency ------------------------------------------------------------------------------


async def test_same_idempotency_key_returns_the_same_claim_and_another_body_is_refused(api: Api) -> None:
    key = {"Idempotency-Key": "req-1"}
    first = await api.call("POST", "/claims", body=filing(), headers=key)
    again = await api.call("POST", "/claims", body=filing(), headers=key)
    assert (first[0], again[0]) == (201, 200)
    assert again[2]["reference"] == first[2]["reference"] and again[1]["Idempotent-Replayed"] == "idempotency_key"
    status, _, problem = await api.call("POST", "/claims", body=filing("ASIA-2025-002"), headers=key)
    assert status == 422 and problem["type"].endswith("idempotency-key-reused")
    count = await api.daemon.store.fetchone("SELECT count(*) AS n FROM tickets")  # type: ignore[attr-defined]
    assert count["n"] == 1



async def test_a_retry_serialised_again_is_the_same_request(api: Api) -> None:
    """A retry from another client or library: keys in another order, indented, Persian escaped
    as \\u sequences. The same document under the same key is a replay, not a reused key."""
    body = filing()
    key = {"Idempotency-Key": "req-reserialised"}
    status, _, first = await api.call("POST", "/claims", body=body, headers=key)
    assert status == 201
    for raw in (json.dumps(dict(reversed(body.items())), indent=2, ensure_ascii=False).encode(),
                json.dumps(body, ensure_ascii=True).encode()):
        status, headers, again = await api.call("POST", "/claims", raw=raw, headers=key)
        assert status == 200 and again["reference"] == first["reference"], again
        assert headers["Idempotent-Replayed"] == "idempotency_key"
    ref = first["reference"]
    note = {"Idempotency-Key": "msg-reserialised"}
    sent = await api.call("POST", f"/claims/{ref}/messages", body={"text": "کارشناس فردا می‌آید"}, headers=note)
    again = await api.call("POST", f"/claims/{ref.lower()}/messages",
                           raw=json.dumps({"text": "کارشناس فردا می‌آید"}, ensure_ascii=True).encode(), headers=note)
    assert (sent[0], again[0]) == (201, 200) and sent[2] == again[2]

async def test_a_retry_differing_only_in_whitespace_the_models_strip_is_the_same_request(api: Api) -> None:
    key = {"Idempotency-Key": "req-padded"}
    status, _, first = await api.call("POST", "/claims", body=filing(policy_number="P-1"), headers=key)
    assert status == 201
    status, headers, again = await api.call("POST", "/claims", body=filing(policy_number="P-1 "), headers=key)
    assert status == 200 and again["reference"] == first["reference"], again
    assert headers["Idempotent-Replayed"] == "idempotency_key"
    note = {"Idempotency-Key": "msg-padded"}
    sent = await api.call("POST", f"/claims/{first['reference']}/messages", body={"text": "کارشناس فردا می‌آید"},
                          headers=note)
    again = await api.call("POST", f"/claims/{first['reference']}/messages", body={"text": " کارشناس فردا می‌آید\n"},
                           headers=note)
    assert (sent[0], again[0]) == (201, 200) and sent[2] == again[2]
    # What the models keep still tells requests apart.
    status, _, problem = await api.call("POST", "/claims", body=filing(policy_number="P-2"), headers=key)
    assert status == 422 and problem["type"].endswith("idempotency-key-reused")


async def test_a_key_stored_before_the_fingerprint_changed_still_replays_its_request(api: Api) -> None:
    # Keys stored by an older daemon are bound to the parsed body: a retry straddling the upgrade
    # was refused 422 as a reused key, and a message poster could not tell it had been stored.
    store = api.daemon.store  # type: ignore[attr-defined]
    _, _, claim = await api.call("POST", "/claims", body=filing("ASIA-OLD-1"), headers={"Idempotency-Key": "old-f"})
    path = f"/api/v1/claims/{claim['reference']}/messages"
    _, _, sent = await api.call("POST", f"/claims/{claim['reference']}/messages", body={"text": "برآورد"},
                                headers={"Idempotency-Key": "old-m"})
    olds = {"old-f": body_fingerprint("POST", "/api/v1/claims", filing("ASIA-OLD-1"), filing=True),
            "old-m": body_fingerprint("POST", path, {"text": "برآورد"})}
    for key, old in olds.items():  # as the older daemon stored them
        await store.write(lambda tx, key=key, old=old: tx.execute(
            "UPDATE api_idempotency SET fingerprint = ? WHERE key = ?", (old, key)))
    status, headers, again = await api.call("POST", "/claims", body=filing("ASIA-OLD-1"), headers={"Idempotency-Key": "old-f"})
    assert (status, headers["Idempotent-Replayed"], again["reference"]) == (200, "idempotency_key", claim["reference"])
    status, _, resent = await api.call("POST", f"/claims/{claim['reference']}/messages", body={"text": "برآورد"},
                                       headers={"Idempotency-Key": "old-m"})
    assert (status, resent) == (200, sent)
    status, _, _ = await api.call("POST", f"/claims/{claim['reference']}/messages", body={"text": "دیگر"},
                                  headers={"Idempotency-Key": "old-m"})
    assert status == 422  # another request under the old key is still refused


async def test_same_insurer_claim_number_returns_the_same_claim(api: Api) -> None:
    first = await api.call("POST", "/claims", body=filing(), headers={"Idempotency-Key": "a"})
    again = await api.call("POST", "/claims", body=filing(description="resent by another system"),
                           headers={"Idempotency-Key": "b"})
    assert again[0] == 200 and again[2]["reference"] == first[2]["reference"]
    assert again[1]["Idempotent-Replayed"] == "claim_number"


async def test_concurrent_retries_open_one_claim(api: Api) -> None:
    results = await asyncio.gather(*(api.call("POST", "/claims", body=filing()) for _ in range(8)))
    assert sorted(r[0] for r in results) == [200] * 7 + [201]
    assert len({r[2]["reference"] for r in results}) == 1


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"policyholder": {"name": "Ali", "national_id": "0499370898"}}, "policyholder.national_id"),
    ({"policyholder": {"name": "Ali", "phones": ["call me maybe"]}}, "policyholder.phones"),
    ({"line_of_business": "marine"}, "line_of_business"),
    ({"loss_date": "yesterday"}, "loss_date"),
    ({"loss_date": "1404-02-10"}, "loss_date"),  # a Jalali date, read as the year 1404
    ({"loss_date": "2099-01-01"}, "loss_date"),  # a loss that has not happened yet
    ({"line_of_business": "health", "patient": {"name": "مریم", "admitted_on": "1405-08-20"}},
     "patient.admitted_on"),  # Jalali, as a hospital system writes it
    ({"documents": [{"filename": "a.pdf"}]}, "documents.0"),
])
async def test_invalid_field_is_named_in_a_problem_json_answer(api: Api, change: dict, field: str) -> None:
    status, headers, problem = await api.call("POST", "/claims", body=filing(**change))
    assert status == 422 and headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == 422 and field in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["errors"][0]["pointer"] == "#/" + field.replace(".", "/")
    assert await api.daemon.store.fetchone("SELECT 1 FROM tickets") is None  # type: ignore[attr-defined]


async def test_malformed_json_is_a_400_problem(api: Api) -> None:
    status, headers, problem = await api.call("POST", "/claims", raw=b"{not json")
    assert status == 400 and problem["type"].endswith("malformed-json")
    # Nested deeper than the parser's stack (200 KB, well inside the body limit): still the
    # caller's mistake, not a 500 with a traceback in the log.
    for deep in (b"[" * 200_000, b'{"claim_number": ' + b"[" * 200_000):
        status, headers, problem = await api.call("POST", "/claims", raw=deep)
        assert status == 400 and headers["Content-Type"].startswith("application/problem+json")
        assert problem["type"].endswith("malformed-json") and problem["detail"] == "nested too deeply"


# -- reading, the thread, the policyholder ----------------------------------------------------


async def test_list_pages_forward_with_the_cursor(api: Api) -> None:
    refs = [(await api.call("POST", "/claims", body=filing(f"C-{i}")))[2]["reference"] for i in range(3)]
    _, _, page = await api.call("GET", "/claims?limit=2")
    assert [c["reference"] for c in page["claims"]] == refs[:2]
    _, _, rest = await api.call("GET", f"/claims?limit=2&cursor={quote(page['next_cursor'])}")
    assert [c["reference"] for c in rest["claims"]] == refs[2:] and rest["next_cursor"] is None
    _, _, later = await api.call("GET", f"/claims?updated_since={quote(page['claims'][0]['updated_at'])}")
    assert {c["reference"] for c in later["claims"]} <= set(refs)
    _, _, none = await api.call("GET", "/claims?status=closed")
    assert none["claims"] == []
    status, _, problem = await api.call("GET", "/claims?status=lost&updated_since=never&cursor=forged")
    assert status == 422 and {e["field"] for e in problem["errors"]} == {"status", "updated_since", "cursor"}



async def test_an_instant_at_the_calendars_edge_or_a_forged_cursor_id_is_a_422_not_a_500(api: Api) -> None:
    """0001-01-01 east of UTC and 9999-12-31 west of it have no UTC instant (OverflowError), and a
    cursor id past SQLite's INTEGER failed in the query: each was a 500 with a traceback."""
    for since in ("0001-01-01T00:00:00+03:30", "9999-12-31T23:59:59-03:30"):
        status, _, problem = await api.call("GET", f"/claims?updated_since={quote(since)}")
        assert status == 422 and [e["field"] for e in problem["errors"]] == ["updated_since"], problem
    for ticket_id in ("9" * 25, "-1"):
        forged = base64.urlsafe_b64encode(f"2026-01-01T00:00:00+00:00|{ticket_id}".encode()).decode()
        status, _, problem = await api.call("GET", f"/claims?cursor={quote(forged)}")
        assert status == 422 and [e["field"] for e in problem["errors"]] == ["cursor"], problem


async def test_updated_since_takes_a_tehran_offset_an_unencoded_plus_and_net_fractions(api: Api) -> None:
    """The same instant as an integrator's client writes it: Tehran's offset with the `+` not
    percent-encoded (it arrives as a space), and .NET's 7 fraction digits (`ToString("o")`).
    Both mean what the UTC spelling means."""
    refs = [(await api.call("POST", "/claims", body=filing(f"T-{i}")))[2]["reference"] for i in range(2)]
    _, _, first = await api.call("GET", f"/claims/{refs[0]}")
    instant = datetime.fromisoformat(first["updated_at"])
    tehran = instant.astimezone(TEHRAN).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+03:30"
    _, _, expected = await api.call("GET", f"/claims?updated_since={quote(first['updated_at'])}")
    assert refs[1] in [c["reference"] for c in expected["claims"]]
    for spelling in (tehran, quote(tehran)):
        status, _, page = await api.call("GET", f"/claims?updated_since={spelling}")
        assert status == 200, page
        assert page["claims"] == expected["claims"]


async def test_a_smaller_max_page_is_the_default_page_and_what_the_document_declares(
        make_daemon: Callable[..., Any]) -> None:
    daemon = await make_daemon(INSURER_API + "max_page = 2\n")
    made = await daemon.store.write(create_insurer("asia"))
    async with aiohttp.ClientSession() as session:
        api = Api(f"http://127.0.0.1:{daemon.http_port}/api/v1", session, {"asia": made.api_key})
        refs = [(await api.call("POST", "/claims", body=filing(f"M-{i}")))[2]["reference"] for i in range(3)]
        status, _, page = await api.call("GET", "/claims")  # no limit: a page of max_page, not a 422
        assert status == 200, page
        assert [c["reference"] for c in page["claims"]] == refs[:2] and page["next_cursor"]
        _, _, document = await api.call("GET", "/openapi.json", None)
    (limit,) = [p for p in document["paths"]["/claims"]["get"]["parameters"] if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == 2

async def test_paging_misses_no_claim_of_a_burst_committed_together(api: Api) -> None:
    # An insurer's batch job files claims at once: committed in one write, they share updated_at.
    filed = await asyncio.gather(*(api.call("POST", "/claims", body=filing(f"B-{n}")) for n in range(10)))
    refs = {claim["reference"] for _, _, claim in filed}
    shared = await api.daemon.store.fetchall("SELECT count(DISTINCT updated_at) AS n FROM tickets")  # type: ignore[attr-defined]
    assert shared[0]["n"] < 10, "the burst shares commit instants (else this test shows nothing)"
    seen: list[str] = []
    cursor = ""
    while True:
        _, _, page = await api.call("GET", "/claims?limit=3" + (f"&cursor={quote(cursor)}" if cursor else ""))
        seen += [c["reference"] for c in page["claims"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == sorted(refs)


async def test_insurer_message_joins_the_thread_once_per_idempotency_key(api: Api) -> None:
    _, _, claim = await api.call("POST", "/claims", body=filing())
    ref = claim["reference"]
    sent = [await api.call("POST", f"/claims/{ref}/messages", body={"text": "Please inspect Monday."},
                           headers={"Idempotency-Key": "m1"}) for _ in range(2)]
    assert [s[0] for s in sent] == [201, 200] and sent[0][2] == sent[1][2]
    _, _, view = await api.call("GET", f"/claims/{ref}")
    assert [(m["from"], m["text"]) for m in view["messages"]][-1] == ("insurer", "Please inspect Monday.")
    assert sum(m["text"] == "Please inspect Monday." for m in view["messages"]) == 1


async def policyholder_mails(daemon: Any, subject: str, body: str) -> None:
    """The policyholder of `filing()` writes to the firm over SMTP, naming no claim."""
    message = mail(sender="ali.rezaei@example.com", subject=subject, body=body)

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", daemon.connectors["smtp"].port, timeout=10) as smtp:
            smtp.send_message(message, from_addr="ali.rezaei@example.com", to_addrs=["claims@parvandeh.test"])

    await asyncio.to_thread(deliver)
    await daemon.ingest.drained()


async def test_policyholders_later_email_lands_on_the_claim(api: Api) -> None:
    _, _, claim = await api.call("POST", "/claims", body=filing())
    daemon = api.daemon  # type: ignore[attr-defined]
    await policyholder_mails(daemon, "photos of my car", "attached, thanks")
    detail = await ticket_detail(daemon.store, claim["reference"])
    assert [m["channel"] for m in detail["messages"] if m["direction"] == "in"] == ["api", "email"]
    _, _, view = await api.call("GET", f"/claims/{claim['reference']}")
    assert view["messages"][-1]["from"] == "policyholder"


async def test_a_message_naming_no_claim_is_not_guessed_into_one_insurers_claim_among_others(api: Api) -> None:
    daemon = api.daemon  # type: ignore[attr-defined]
    _, _, asia = await api.call("POST", "/claims", body=filing("ASIA-1"))
    _, _, dana = await api.call("POST", "/claims", "dana", body=filing("DANA-1"))  # names the same person
    await policyholder_mails(daemon, "about my car", "my IBAN is IR12...")
    for ref, insurer in ((asia["reference"], "asia"), (dana["reference"], "dana")):
        _, _, view = await api.call("GET", f"/claims/{ref}", insurer)
        assert all("IBAN" not in m["text"] for m in view["messages"]), insurer
    tickets = await list_tickets(daemon.store)
    assert len(tickets) == 3  # a ticket of its own, for an agent to place


# -- webhooks ---------------------------------------------------------------------------------


async def test_each_webhook_states_the_status_of_its_own_event(api: Api, receiver: Receiver) -> None:
    receiver.fail_first = 0
    _, _, claim = await api.call("POST", "/claims", body=filing())
    ref = claim["reference"]

    def two_moves(tx: Any) -> None:  # two changes in one write (a workflow rule acting on the first)
        change_status(ref, "awaiting_documents", "maryam")(tx)
        change_status(ref, "inspection_scheduled", "maryam")(tx)

    await api.daemon.store.write(two_moves)  # type: ignore[attr-defined]
    await until(lambda: sum(json.loads(b)["type"] == "claim.status_changed" for _, b in receiver.received) >= 2)
    events = sorted((e for _, b in receiver.received if (e := json.loads(b))["type"] == "claim.status_changed"),
                    key=lambda e: int(e["id"][4:]))
    assert [(e["data"]["new"], e["claim"]["status"]) for e in events] == [
        ("awaiting_documents", "awaiting_documents"), ("inspection_scheduled", "inspection_scheduled")]


async def test_status_change_webhook_is_signed_and_retried_after_a_failure(api: Api, receiver: Receiver) -> None:
    _, _, claim = await api.call("POST", "/claims", body=filing())
    _, _, other = await api.call("POST", "/claims", "dana", body=filing())  # dana has no webhook URL
    daemon = api.daemon  # type: ignore[attr-defined]
    await daemon.store.write(change_status(claim["reference"], "awaiting_documents", "maryam"))
    await daemon.store.write(change_status(other["reference"], "awaiting_documents", "maryam"))

    await until(lambda: len(receiver.received) >= 2)
    (first_headers, first_body), (headers, body) = receiver.received[:2]
    assert first_body == body and first_headers["X-Parvandeh-Delivery"] == headers["X-Parvandeh-Delivery"]
    stamp = headers["X-Parvandeh-Timestamp"]
    assert verify_hmac_sha256(receiver.secret, f"{stamp}.".encode() + body, headers["X-Parvandeh-Signature"])
    assert not verify_hmac_sha256("whsec-dana", f"{stamp}.".encode() + body, headers["X-Parvandeh-Signature"])
    # The timestamp is signed: replayed later under a fresh one, the delivery no longer verifies.
    assert not verify_hmac_sha256(receiver.secret, f"{int(stamp) + 600}.".encode() + body,
                                  headers["X-Parvandeh-Signature"])
    assert abs(int(stamp) - time.time()) < 60
    event = json.loads(body)
    assert event["type"] == "claim.status_changed"
    assert event["claim"] == {"reference": claim["reference"], "insurer_claim_number": "ASIA-2025-001",
                              "status": "awaiting_documents", "queue": claim["team"]}
    assert event["data"] == {"old": "new", "new": "awaiting_documents"}

    async def logged() -> list:
        return await daemon.store.fetchall("SELECT attempt, status_code, outcome FROM insurer_webhook_log ORDER BY id")

    rows = await until(lambda: _two(logged))
    assert [tuple(r) for r in rows] == [(1, 503, "retrying"), (2, 204, "delivered")]
    async def owed() -> list:
        # The outbox records the delivery after the connector logged it: a separate write.
        rows = await daemon.store.fetchall("SELECT recipient, state FROM outbox WHERE channel = 'insurer_webhook'")
        return [tuple(r) for r in rows] if all(r["state"] != "sending" for r in rows) else []

    assert await until(owed) == [("asia", "sent")]  # dana has no webhook: nothing queued for it



async def test_the_served_document_says_what_the_webhook_signature_covers(api: Api) -> None:
    # An integrator builds the receiver from the OpenAPI document: "over the body" alone (as it
    # said after the timestamp joined the signature) verifies nothing.
    _, _, document = await api.call("GET", "/openapi.json", None)
    assert "X-Parvandeh-Timestamp value, '.', and the raw body" in document["info"]["description"]

async def test_status_webhooks_go_on_after_the_store_refused_writes_for_a_while(api: Api, receiver: Receiver) -> None:
    receiver.fail_first = 0
    _, _, claim = await api.call("POST", "/claims", body=filing())
    daemon = api.daemon  # type: ignore[attr-defined]
    with capture_logs() as logs:
        await refuse_writes(daemon, True)  # as after a read-only remount
        await until(lambda: any(e["event"] == "insurer_webhooks_not_queued" for e in logs))
    await refuse_writes(daemon, False)
    await daemon.store.write(change_status(claim["reference"], "awaiting_documents", "maryam"))
    await until(lambda: receiver.received)
    (_, body), = receiver.received
    assert json.loads(body)["data"] == {"old": "new", "new": "awaiting_documents"}


async def _two(rows: Callable[[], Any]) -> Any:
    found = await rows()
    return found if len(found) >= 2 else None


SUPERVISED = """
[insurer_api]
retry_base_seconds = 0.05
poll_seconds = 0.1
""" + POLICY_24X7  # a supervisor mailed at the warning


async def test_a_supervisors_sla_notice_is_internal_not_an_answer_the_insurer_sees(make_daemon: Callable[..., Any]) -> None:
    sink = await SmtpSink().start()
    clock = saturday_morning()
    start = clock.now
    try:
        daemon = await make_daemon(SUPERVISED, outbound_port=sink.port, clock=clock)
        key = (await daemon.store.write(create_insurer("asia", ""))).api_key
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s:
            base = f"http://127.0.0.1:{daemon.http_port}/api/v1"
            async with s.post(base + "/claims", json=filing()) as r:
                assert r.status == 201
                ref = (await r.json())["reference"]
            clock.advance(hours=3)            # 75 % of the 4 h first-response target
            await daemon.sla.fire_due()
            async with s.get(base + f"/claims/{ref}") as r:
                view = await r.json()
        leaked = [m for m in view["messages"] if "SLA warning" in m["text"] or "policy standard" in m["text"]]
        leaked += [e for e in view["timeline"] if e["kind"] == "outbound_queued"]  # nothing went to anyone
        report = await build_report(daemon.store, start - timedelta(hours=1), start + timedelta(days=1),
                                    now=clock.now)
        (notice,) = await sink.wait_for(1)  # still mailed to the supervisor
        assert notice["To"] == "boss@parvandeh.test"
        assert leaked == [], "internal supervisor escalation shown to the insurer"
        assert report.total.first_responses == 0, "supervisor notice counted as the first response"
    finally:
        await sink.stop()


async def test_stopping_while_a_status_event_arrives_does_not_hang(make_daemon: Callable[..., Any]) -> None:
    """The webhook pump is cancelled in the very turn an event reaches it: the cancellation must
    not be lost (Python 3.11's wait_for dropped it, and stop() waited for the pump for ever)."""
    from ingest.store import StoreEvent

    daemon = await make_daemon(INSURER_API)
    connector = daemon.connectors["insurer_api"]
    for _ in range(3):
        await asyncio.sleep(0)  # the pump waits for events
    daemon.store.bus.publish([StoreEvent("status_changed", "PV-1405-000001")])
    await asyncio.sleep(0)  # the event is taken from the queue ...
    await asyncio.wait_for(connector.stop(), 5)  # ... as the pump is cancelled


# -- polling for changes ----------------------------------------------------------------------

QUIET_POLICY = INSURER_API + """
[[sla.policies]]
name = "standard"
first_response = 4
resolution = 40
warn_at = 0.75
calendar = "24x7"
on_warning = []
on_breach = []
"""  # no escalation: nothing but the SLA engine itself touches the claim


async def test_polling_updated_since_sees_sla_warnings_and_breaches_and_paging_skips_none(
        make_daemon: Callable[..., Any]) -> None:
    clock = saturday_morning()
    t0 = clock.now
    daemon = await make_daemon(QUIET_POLICY, clock=clock)
    key = (await daemon.store.write(create_insurer("asia", ""))).api_key
    async with aiohttp.ClientSession() as session:
        api = Api(f"http://127.0.0.1:{daemon.http_port}/api/v1", session, {"asia": key})
        a = (await api.call("POST", "/claims", body=filing("A-1")))[2]["reference"]
        clock.advance(hours=1)
        b = (await api.call("POST", "/claims", body=filing("B-1")))[2]["reference"]
        _, _, listing = await api.call("GET", "/claims")
        assert [c["reference"] for c in listing["claims"]] == [a, b]
        watermark = max(c["updated_at"] for c in listing["claims"])
        touched = await daemon.store.fetchone("SELECT updated_at FROM tickets WHERE ref = ?", (a,))

        clock.advance(hours=2)  # t0 + 3 h: 75 % of A's 4 h first-response target
        await daemon.sla.fire_due()
        status, _, changed = await api.call("GET", f"/claims?updated_since={quote(watermark)}")
        assert status == 200 and [c["reference"] for c in changed["claims"]] == [a], "the SLA warning is a change"
        assert changed["claims"][0]["updated_at"] == iso(t0 + timedelta(hours=3))
        _, _, view = await api.call("GET", f"/claims/{a}")
        assert view["updated_at"] == changed["claims"][0]["updated_at"]
        assert {c["kind"]: c["state"] for c in view["sla"]}["first_response"] == "warning"
        # The continuity window (72 h after the last message) is not stretched by the SLA engine.
        assert await daemon.store.fetchone("SELECT updated_at FROM tickets WHERE ref = ?", (a,)) == touched

        # A client pages from the start a claim at a time; between its pages A breaches and B
        # warns: both move past the cursor, so the client sees them again and skips none.
        _, _, first = await api.call("GET", "/claims?limit=1")
        assert [c["reference"] for c in first["claims"]] == [b]  # A changed last
        clock.advance(hours=1)  # t0 + 4 h: A is due, B is at 75 %
        await daemon.sla.fire_due()
        seen, cursor = [], first["next_cursor"]
        while cursor:
            _, _, page = await api.call("GET", f"/claims?limit=1&cursor={quote(cursor)}")
            seen += [c["reference"] for c in page["claims"]]
            cursor = page["next_cursor"]
        assert seen == [a, b], "a claim that changed while the client paged was skipped"
        _, _, breached = await api.call("GET", f"/claims?updated_since={quote(changed['claims'][0]['updated_at'])}")
        assert [c["reference"] for c in breached["claims"]] == [a, b]
        assert {c["updated_at"] for c in breached["claims"]} == {iso(t0 + timedelta(hours=4))}
        _, _, view = await api.call("GET", f"/claims/{a}")
        assert {c["kind"]: c["state"] for c in view["sla"]}["first_response"] == "breached"


async def test_a_store_from_before_the_changed_instant_lists_what_changed_since_the_last_poll(tmp_path: Any) -> None:
    """Schema 7 keeps the instant an insurer sees a claim change; the claims already stored get
    the later of their `updated_at` and their last visible event (a breach the old list missed)."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:6], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.executemany("INSERT INTO tickets (id, ref, queue, insurer, channel, created_at, updated_at)"
                     " VALUES (?, ?, 'intake', 'asia', 'api', '2026-11-01T08:00:00.000000+00:00', ?)",
                     [(1, "PV-1405-000001", "2026-11-01T08:00:00.000000+00:00"),
                      (2, "PV-1405-000002", "2026-11-02T08:00:00.000000+00:00")])
    conn.executemany("INSERT INTO events (ticket_id, at, kind) VALUES (?, ?, ?)", [
        (1, "2026-11-01T08:00:00.000000+00:00", "claim_filed"),
        (1, "2026-11-01T12:00:00.000000+00:00", "sla_breached"),   # after the last poll: news
        (2, "2026-11-03T08:00:00.000000+00:00", "assigned"),        # internal: no news
    ])
    conn.close()
    store = Store(path, synchronous="OFF")
    await store.open()
    try:
        claims, _ = await list_claims(store, "asia", updated_since="2026-11-01T09:00:00.000000+00:00")
        assert [(c["reference"], c["updated_at"]) for c in claims] == [
            ("PV-1405-000001", "2026-11-01T12:00:00.000000+00:00"),
            ("PV-1405-000002", "2026-11-02T08:00:00.000000+00:00")]
    finally:
        await store.close()


@pytest.mark.parametrize("kind", [*sorted(_PUBLIC_EVENTS), "sla_warning", "sla_breached", "queue_changed"])
async def test_every_change_the_claim_view_shows_moves_the_changed_instant(tmp_path: Any, kind: str) -> None:
    """The trigger's kinds (migration 7) against the insurer view's own list, and the internal
    ones that must not move it (an assignment, a note, a delivery report)."""
    store = Store(tmp_path / "store.sqlite3", synchronous="OFF")
    await store.open()
    try:
        def write(tx: Tx) -> None:
            tx.execute("INSERT INTO tickets (id, ref, queue, insurer, channel, created_at, updated_at)"
                       " VALUES (1, 'PV-1405-000001', 'intake', 'asia', 'api', '2026-11-01', '2026-11-01')")
            for n, private in enumerate(("assigned", "unassigned", "note_added", "delivery_status", "tag_added")):
                tx.execute("INSERT INTO events (ticket_id, at, kind) VALUES (1, ?, ?)", (f"2026-11-0{n + 2}", private))
            tx.execute("INSERT INTO events (ticket_id, at, kind) VALUES (1, '2026-11-01T10:00', ?)", (kind,))

        await store.write(write)
        row = await store.fetchone("SELECT insurer_changed_at FROM tickets")
        assert row[0] == "2026-11-01T10:00"
    finally:
        await store.close()


# -- the shared front's errors ----------------------------------------------------------------


async def test_the_fronts_own_errors_are_problem_json_under_the_api_and_plain_json_elsewhere(
        make_daemon: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 65_536
    daemon = await make_daemon(INSURER_API, environ={"PARVANDEH__HTTP__MAX_BODY_BYTES": str(limit)})
    key = (await daemon.store.write(create_insurer("asia", ""))).api_key

    async def broken(*args: Any, **kwargs: Any) -> Any:  # a bug, injected into the claim read
        raise RuntimeError("secret internals")

    monkeypatch.setattr(routes, "claim_view", broken)
    root = f"http://127.0.0.1:{daemon.http_port}"
    async with aiohttp.ClientSession() as session:
        api = Api(f"{root}/api/v1", session, {"asia": key})
        oversized = b'{"claim_number": "' + b"x" * limit + b'"}'
        status, headers, body = await api.call("POST", "/claims", raw=oversized)
        assert status == 413 and headers["Content-Type"].startswith("application/problem+json")
        assert body["type"].endswith("body-too-large") and body["status"] == 413 and str(limit) in body["detail"]
        assert body["instance"] == "/api/v1/claims"
        with capture_logs() as logs:
            status, headers, body = await api.call("GET", "/claims/PV-1405-000001")
        assert status == 500 and headers["Content-Type"].startswith("application/problem+json")
        assert body["type"].endswith("internal-error") and "secret internals" not in json.dumps(body)
        assert any(e["event"] == "http_handler_failed" for e in logs)
        status, headers, body = await api.call("DELETE", "/claims")
        assert status == 405 and headers["Content-Type"].startswith("application/problem+json")
        assert "GET" in headers["Allow"]
        # Other routes keep the front's JSON shape.
        async with session.post(f"{root}/webhooks/nothing", data=b"x" * (limit + 1)) as response:
            assert response.status == 413 and response.content_type == "application/json"
            assert (await response.json())["error"] == "body_too_large"
        async with session.get(f"{root}/api/v10/claims") as response:  # a prefix of the path only
            assert response.status == 404 and (await response.json())["error"] == "not_found"


@asynccontextmanager
async def kept_and_duplicate(make_daemon: Callable[..., Any], clock: Any) -> AsyncIterator[tuple[Any, Api, str, str]]:
    """A daemon with insurer asia's claim K-1 and its duplicate K-1-DUP, filed now."""
    daemon = await make_daemon(QUIET_POLICY, clock=clock)
    key = (await daemon.store.write(create_insurer("asia", ""))).api_key
    async with aiohttp.ClientSession() as session:
        api = Api(f"http://127.0.0.1:{daemon.http_port}/api/v1", session, {"asia": key})
        kept, duplicate = [(await api.call("POST", "/claims", body=filing(number)))[2]["reference"]
                           for number in ("K-1", "K-1-DUP")]
        yield daemon, api, kept, duplicate


async def test_a_merge_stops_the_duplicates_clocks_at_once_and_its_insurer_sees_it(
        make_daemon: Callable[..., Any]) -> None:
    """A merge closes the duplicate without the status hooks (it resolves nothing) and cancels its
    running clocks in the same write: the insurer's view shows them stopped straight away, and no
    warning or breach fires later for a claim that is no longer worked on."""
    clock = saturday_morning()
    async with kept_and_duplicate(make_daemon, clock) as (daemon, api, kept, duplicate):
        _, _, before = await api.call("GET", f"/claims/{duplicate}")
        clock.advance(minutes=5)
        await daemon.store.write(merge_tickets(duplicate, kept, "maryam"))
        _, _, merged = await api.call("GET", f"/claims/{duplicate}")
        assert {c["kind"]: c["state"] for c in merged["sla"]} == {"first_response": "cancelled",
                                                                  "resolution": "cancelled"}
        assert merged["timeline"][-1]["kind"] == "sla_stopped"
        _, _, changed = await api.call("GET", f"/claims?updated_since={quote(before['updated_at'])}")
        assert duplicate in [c["reference"] for c in changed["claims"]]
        clock.advance(hours=3)  # the duplicate's first-response warning instant had it kept running
        await daemon.sla.fire_due()
        _, _, later = await api.call("GET", f"/claims/{duplicate}")
        assert later["timeline"] == merged["timeline"] and later["updated_at"] == merged["updated_at"]


async def test_a_clock_already_past_due_when_its_claim_is_merged_away_is_recorded_breached(
        make_daemon: Callable[..., Any]) -> None:
    """The daemon was down over the duplicate's first-response due instant: the merge cannot
    cancel an obligation already missed, so the breach goes on the record, as of the due instant."""
    clock = saturday_morning()
    async with kept_and_duplicate(make_daemon, clock) as (daemon, api, kept, duplicate):
        _, _, filed = await api.call("GET", f"/claims/{duplicate}")
        due = {c["kind"]: c["due_at"] for c in filed["sla"]}
        clock.advance(hours=5)  # past the 4-hour first response; the scheduler is not asked
        await daemon.store.write(merge_tickets(duplicate, kept, "maryam"))
        _, _, merged = await api.call("GET", f"/claims/{duplicate}")
    kinds = [e["kind"] for e in merged["timeline"]]
    assert kinds[-2:] == ["sla_breached", "sla_stopped"]
    breach = merged["timeline"][-2]["data"]
    assert (breach["clock"], breach["due_at"]) == ("first_response", due["first_response"])
    assert {c["kind"]: c["state"] for c in merged["sla"]} == {"first_response": "cancelled",
                                                              "resolution": "cancelled"}
