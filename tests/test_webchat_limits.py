"""Per-client-address abuse limits of the web chat and the web form, over real websockets and
HTTP on loopback: new chat sessions per address, form submissions per address, and the client
address a trusted reverse proxy names in its header (`[webchat] trusted_proxy_header`)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from connectors.webchat.clientaddr import ClientAddress
from connectors.webchat.ratelimit import RateLimiter
from ingest.daemon import Daemon
from ingest.queries import list_tickets
from tests.test_webchat import (
    TIMEOUT, Chat, chat_url, drained, form_fields, multipart, open_chat, page_origin,
)

BEHIND_PROXY = """
[webchat]
port = 0
new_sessions_per_ip_per_minute = 2
forms_per_ip_per_hour = 2
trusted_proxy_header = "X-Forwarded-For"
"""
# The same, but the proxy it trusts is elsewhere: the tests' loopback client is not it.
UNTRUSTED_PEER = BEHIND_PROXY + 'trusted_proxies = ["192.0.2.10", "2001:db8::/64"]\n'


async def post_form(daemon: Daemon, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{page_origin(daemon)}/webform", data=multipart(form_fields()),
                             headers={"Origin": page_origin(daemon), **(headers or {})}) as response:
            return response.status, await response.text(), dict(response.headers)


async def inbox_rows(daemon: Daemon) -> int:
    row = await daemon.store.fetchone("SELECT count(*) AS n FROM inbox")
    return row["n"]


async def ticket_count(daemon: Daemon) -> int:
    await drained(daemon)
    return len(await list_tickets(daemon.store))


async def hello(daemon: Daemon, session: str | None = None,
                forwarded_for: str | None = None) -> tuple[Chat, dict[str, Any]]:
    """Connect and say hello; the first frame the server answers with (welcome or error)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    ws = await connect(chat_url(daemon), origin=page_origin(daemon), additional_headers=headers)
    chat = Chat(ws)
    await chat.send({"type": "hello", "session": session, "lang": "fa"})
    return chat, json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def assert_refused(chat: Chat, frame: dict[str, Any]) -> None:
    assert frame["type"] == "error" and frame["code"] == "rate_limited", frame
    assert "client_id" not in frame
    assert 0 < frame["retry_after"] <= 60
    # The socket is closed "try again later": nothing can be sent on it, so nothing stored.
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(chat.ws.recv(), TIMEOUT)
    assert chat.ws.close_code == 1013


# -- the web form ---------------------------------------------------------------------------------


async def test_form_over_the_per_address_limit_gets_429_and_another_address_still_gets_through(
    make_daemon: Callable[..., Any]
) -> None:
    daemon = await make_daemon(BEHIND_PROXY)
    visitor = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(2):
        assert (await post_form(daemon, visitor))[0] == 200
    assert await inbox_rows(daemon) == 2

    status, page, headers = await post_form(daemon, visitor)
    assert status == 429
    assert 0 < int(headers["Retry-After"]) <= 3600
    assert "text/html" in headers["Content-Type"]
    assert "Too many forms were sent from this address" in page and "nothing was stored" in page
    # What the visitor writes to the left of the list is not what the proxy saw: no escape there.
    spoofed = {"X-Forwarded-For": f"198.51.100.{secrets.randbelow(250)}, 203.0.113.7"}
    assert (await post_form(daemon, spoofed))[0] == 429
    assert await inbox_rows(daemon) == 2

    # Another visitor behind the same proxy is not held back by the first one.
    assert (await post_form(daemon, {"X-Forwarded-For": "203.0.113.8"}))[0] == 200
    assert await inbox_rows(daemon) == 3
    assert await ticket_count(daemon) == 3


async def test_forwarded_header_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(
    make_daemon: Callable[..., Any]
) -> None:
    daemon = await make_daemon(UNTRUSTED_PEER)
    # A client that is not the proxy picks a fresh "address" per post: all count as its own.
    for n in range(2):
        assert (await post_form(daemon, {"X-Forwarded-For": f"203.0.113.{n}"}))[0] == 200
    status, _, headers = await post_form(daemon, {"X-Forwarded-For": "203.0.113.99"})
    assert status == 429 and "Retry-After" in headers
    assert (await post_form(daemon, {"X-Real-IP": "203.0.113.100"}))[0] == 429
    assert await inbox_rows(daemon) == 2

    # Likewise for new chat sessions.
    for n in range(2):
        chat, frame = await hello(daemon, forwarded_for=f"203.0.113.{n}")
        assert frame["type"] == "welcome"
        await chat.close()
    chat, frame = await hello(daemon, forwarded_for="203.0.113.99")
    await assert_refused(chat, frame)


# -- the chat -------------------------------------------------------------------------------------


async def test_new_chat_sessions_over_the_per_address_limit_are_refused_and_open_no_claim(
    make_daemon: Callable[..., Any]
) -> None:
    daemon = await make_daemon(BEHIND_PROXY)
    for _ in range(2):
        chat, frame = await hello(daemon)
        assert frame["type"] == "welcome"
        await chat.close()

    chat, frame = await hello(daemon)
    await assert_refused(chat, frame)
    # A made-up token is a new session too: inventing one is no way around the limit.
    chat, frame = await hello(daemon, secrets.token_urlsafe(32))
    await assert_refused(chat, frame)
    assert await inbox_rows(daemon) == 0
    assert await ticket_count(daemon) == 0

    # A visitor at another address behind the trusted proxy still starts a chat and a claim.
    chat, frame = await hello(daemon, forwarded_for="203.0.113.50")
    assert frame["type"] == "welcome"
    client_id = await chat.message("سلام، تصادف کرده‌ام")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    await chat.close()
    assert await ticket_count(daemon) == 1


async def test_resuming_a_session_with_its_token_is_not_a_new_session(make_daemon: Callable[..., Any]) -> None:
    daemon = await make_daemon(BEHIND_PROXY)
    chat, welcome = await open_chat(daemon)
    session = welcome["session"]
    client_id = await chat.message("سلام")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    await chat.close()

    # Reloads and reconnects of that visitor, more than the limit of new sessions.
    for _ in range(4):
        again, resumed = await open_chat(daemon, session)
        assert resumed["session"] == session
        assert [item["id"] for item in resumed["history"] if item["direction"] == "in"] == [client_id]
        await again.close()

    # A second window open on a session nobody has written in yet resumes it too.
    first, fresh = await open_chat(daemon)  # the second (and last) new session allowed
    second, same = await open_chat(daemon, fresh["session"])
    assert same["session"] == fresh["session"]
    await first.close()
    await second.close()

    # Only the two new sessions were counted: a third is refused.
    chat, frame = await hello(daemon)
    await assert_refused(chat, frame)


# -- the parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("header, trusted, peer, values, client", [
    ("", ["127.0.0.1"], "127.0.0.1", ["203.0.113.1"], "127.0.0.1"),  # no header configured
    ("X-Forwarded-For", ["127.0.0.1"], "198.51.100.9", ["203.0.113.1"], "198.51.100.9"),  # not the proxy
    ("X-Forwarded-For", ["127.0.0.1"], "127.0.0.1", ["1.1.1.1, 203.0.113.1"], "203.0.113.1"),  # right-most
    ("X-Forwarded-For", ["127.0.0.1"], "127.0.0.1", ["1.1.1.1", "203.0.113.1"], "203.0.113.1"),  # two lines
    ("X-Forwarded-For", ["127.0.0.1", "10.0.0.0/8"], "127.0.0.1", ["1.1.1.1, 203.0.113.1, 10.1.2.3"],
     "203.0.113.1"),  # a chain of trusted proxies is skipped
    ("X-Forwarded-For", ["127.0.0.1"], "127.0.0.1", ["203.0.113.1, unknown"], "127.0.0.1"),  # garbage
    ("X-Forwarded-For", ["127.0.0.1"], "127.0.0.1", [], "127.0.0.1"),  # header missing
    ("X-Real-IP", ["127.0.0.1"], "127.0.0.1", ["203.0.113.1"], "203.0.113.1"),
    ("X-Real-IP", ["127.0.0.1"], "127.0.0.1", ["not an address"], "127.0.0.1"),
    ("X-Forwarded-For", ["::1"], "::1", ["[2001:db8:1:2:3::4]:5555"], "2001:db8:1:2::/64"),  # IPv6 per /64
    ("", [], "::ffff:192.0.2.1", [], "192.0.2.1"),  # IPv4-mapped
])
def test_client_address(header: str, trusted: list[str], peer: str, values: list[str], client: str) -> None:
    assert ClientAddress(header, trusted).key(peer, values) == client


def test_a_flood_of_distinct_addresses_keeps_the_limiter_bounded() -> None:
    limiter = RateLimiter(1, window=3600, max_keys=100)
    for n in range(10_000):
        assert limiter.check(f"10.0.{n // 256}.{n % 256}", now=1.0 + n / 1000) is None
    assert len(limiter) == 100
    # The most recently seen addresses are the ones remembered.
    assert limiter.check("10.0.39.15", now=20.0) is not None  # n = 9999


async def test_reloading_a_page_before_writing_resumes_the_issued_session(make_daemon: Callable[..., Any]) -> None:
    """The widget connects on every page load with the token it was given: a visitor browsing the
    site before writing anything is one session, not one new session per page."""
    daemon = await make_daemon(BEHIND_PROXY)  # two new sessions per address per minute
    chat, welcome = await open_chat(daemon)
    session = welcome["session"]
    await chat.close()
    for _ in range(4):  # page loads, each a new socket with the stored token; nothing written yet
        again, frame = await hello(daemon, session)
        assert frame["type"] == "welcome" and frame["session"] == session, frame
        await again.close()
    # Still one new session counted: another visitor at the address gets the second.
    other, frame = await hello(daemon)
    assert frame["type"] == "welcome"
    await other.close()
