"""An insurer's claim number written another way — Persian or Arabic-Indic digits, letter case,
spaces, half-spaces, other dashes and slashes — names the same claim over the insurer API, with
the number shown as first written; a store from schema 7 gets the keys of the claims it holds."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ingest.agents import hash_token
from ingest.migrations import MIGRATIONS
from tests.test_insurer_api import INSURER_API, Api, api, filing, receiver  # noqa: F401  (fixtures)


async def ticket_count(api: Api) -> int:
    row = await api.daemon.store.fetchone("SELECT count(*) AS n FROM tickets")  # type: ignore[attr-defined]
    return row["n"]


@pytest.mark.parametrize("retry", [
    "1405/1234",                       # Latin digits
    "١٤٠٥/١٢٣٤",                       # Arabic-Indic digits
    " ۱۴۰۵ / ۱۲۳۴ ",                   # padded
    "۱۴۰۵\u200c/\u200c۱۲۳۴",           # half-spaces (ZWNJ)
    "۱۴۰۵\u2215۱۲۳۴",                  # division slash
])
async def test_a_number_in_persian_digits_then_written_another_way_is_one_claim(api: Api, retry: str) -> None:
    status, _, first = await api.call("POST", "/claims", body=filing("۱۴۰۵/۱۲۳۴"))
    assert status == 201
    status, headers, again = await api.call("POST", "/claims", body=filing(retry))
    assert status == 200 and again["reference"] == first["reference"]
    assert headers["Idempotent-Replayed"] == "claim_number"
    assert again["insurer_claim_number"] == "۱۴۰۵/۱۲۳۴"  # as the insurer first wrote it
    assert await ticket_count(api) == 1


async def test_letter_case_and_dashes_do_not_open_a_second_claim(api: Api) -> None:
    _, _, first = await api.call("POST", "/claims", body=filing("ASIA-۱۴۰۵-۰۰۹"))
    status, _, again = await api.call("POST", "/claims", body=filing("asia\u20131405\u2014009"))
    assert status == 200 and again["reference"] == first["reference"]
    _, _, view = await api.call("GET", f"/claims/{first['reference']}")
    assert view["insurer_claim_number"] == "ASIA-۱۴۰۵-۰۰۹"
    _, _, listing = await api.call("GET", "/claims")
    assert [c["insurer_claim_number"] for c in listing["claims"]] == ["ASIA-۱۴۰۵-۰۰۹"]


async def test_distinct_numbers_and_other_insurers_keep_their_own_claims(api: Api) -> None:
    refs = set()
    for insurer, number in (("asia", "1405/1234"), ("asia", "1405-1234"), ("asia", "1405/1235"),
                            ("dana", "۱۴۰۵/۱۲۳۴")):
        status, _, claim = await api.call("POST", "/claims", insurer, body=filing(number))
        assert status == 201, (insurer, number)
        refs.add(claim["reference"])
    assert len(refs) == 4


async def test_an_idempotency_key_retried_with_the_number_in_latin_digits_is_a_replay(api: Api) -> None:
    key = {"Idempotency-Key": "req-digits"}
    first = await api.call("POST", "/claims", body=filing("ASIA/۱۴۰۵/۷"), headers=key)
    again = await api.call("POST", "/claims", body=filing("asia/1405/7"), headers=key)
    assert (first[0], again[0]) == (201, 200) and again[2]["reference"] == first[2]["reference"]
    assert again[1]["Idempotent-Replayed"] == "idempotency_key"
    status, _, problem = await api.call("POST", "/claims", body=filing("asia/1405/8"), headers=key)
    assert status == 422 and problem["type"].endswith("idempotency-key-reused")


async def test_concurrent_filings_in_different_spellings_open_one_claim(api: Api) -> None:
    spellings = ["۱۴۰۵/۱۲۳۴", "1405/1234", "١٤٠٥/١٢٣٤", "1405 / 1234"] * 2
    results = await asyncio.gather(*(api.call("POST", "/claims", body=filing(n)) for n in spellings))
    assert sorted(r[0] for r in results) == [200] * 7 + [201]
    assert len({r[2]["reference"] for r in results}) == 1


async def test_a_number_of_invisible_characters_alone_is_refused(api: Api) -> None:
    status, _, problem = await api.call("POST", "/claims", body=filing("\u200c\u0640\u200f"))
    assert status == 422 and [e["field"] for e in problem["errors"]] == ["claim_number"]
    assert await ticket_count(api) == 0


# -- the upgrade from schema 7 ----------------------------------------------------------------


def schema_7_store(path: Path, keys: dict[str, str], claims: list[tuple[int, str, str]]) -> None:
    """A store at schema 7 holding insurer clients and (ticket id, insurer, claim number) claims."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:7], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.executemany("INSERT INTO insurer_clients (name, api_key_sha256, webhook_secret, created_at)"
                     " VALUES (?, ?, 'whsec', '2026-11-01')", [(n, hash_token(k)) for n, k in keys.items()])
    conn.execute("INSERT INTO claim_sequence (year, last) VALUES (1405, ?)", (len(claims),))
    for ticket_id, insurer, number in claims:
        conn.execute("INSERT INTO tickets (id, ref, queue, insurer, channel, created_at, updated_at)"
                     " VALUES (?, ?, 'intake', ?, 'api', '2026-11-01', '2026-11-01')",
                     (ticket_id, f"PV-1405-{ticket_id:06d}", insurer))
        conn.execute("INSERT INTO insurer_claims (ticket_id, insurer, claim_number, created_at)"
                     " VALUES (?, ?, ?, '2026-11-01')", (ticket_id, insurer, number))
    conn.close()


async def test_a_schema_7_store_keys_its_claims_and_keeps_two_spellings_filed_before(
        tmp_path: Path, make_daemon: Callable[..., Any]) -> None:
    """The upgrade gives each claim its key; a number already filed under two spellings keeps both
    claims (the older has the key; each spelling still finds its own), and the upgrade succeeds."""
    keys = {"asia": "pvi_asia-key", "dana": "pvi_dana-key"}
    schema_7_store(tmp_path / "store.sqlite3", keys, [
        (1, "asia", "۱۴۰۵/۱۲۳۴"), (2, "asia", "1405/1234"), (3, "asia", "ASIA-9"), (4, "dana", "1405/1234")])
    daemon = await make_daemon(INSURER_API)
    store = daemon.store
    assert (await store.fetchone("PRAGMA user_version"))[0] == len(MIGRATIONS)
    rows = await store.fetchall("SELECT ticket_id, claim_number, claim_key FROM insurer_claims ORDER BY ticket_id")
    assert [tuple(r) for r in rows] == [
        (1, "۱۴۰۵/۱۲۳۴", "1405/1234"), (2, "1405/1234", None), (3, "ASIA-9", "asia-9"), (4, "1405/1234", "1405/1234")]
    async with aiohttp.ClientSession() as session:
        api = Api(f"http://127.0.0.1:{daemon.http_port}/api/v1", session, keys)
        expected = [("١٤٠٥/١٢٣٤", "asia", "PV-1405-000001"),  # another spelling: the older claim
                    ("۱۴۰۵/۱۲۳۴", "asia", "PV-1405-000001"),
                    ("1405/1234", "asia", "PV-1405-000002"),  # its own spelling: its own claim
                    ("asia–9", "asia", "PV-1405-000003"),
                    ("۱۴۰۵/۱۲۳۴", "dana", "PV-1405-000004")]
        for number, insurer, ref in expected:
            status, headers, claim = await api.call("POST", "/claims", insurer, body=filing(number))
            assert (status, claim["reference"], headers["Idempotent-Replayed"]) == (200, ref, "claim_number"), number
        status, _, _ = await api.call("POST", "/claims", body=filing("ASIA-10"))
        assert status == 201
    assert tuple(await store.fetchone("SELECT claim_key FROM insurer_claims WHERE claim_number = 'ASIA-10'")) == ("asia-10",)
    (index,) = [r for r in await store.fetchall("PRAGMA index_list(insurer_claims)") if r["name"] == "insurer_claims_key"]
    assert index["unique"] == 1
