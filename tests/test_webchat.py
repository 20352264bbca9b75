"""Web chat and web form, over the real protocols on loopback: a `websockets` client against the
chat server, an aiohttp client against the form, and the pure parts table-tested."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from connectors.base import StoreUnavailable
from connectors.webchat import protocol
from connectors.webchat.form import document, validate
from connectors.webchat.normalise import normalise_chat_message, normalise_form_submission
from connectors.webchat.origin import origin_allowed, own_hosts
from connectors.webchat.pages import STATIC
from connectors.webchat.ratelimit import RateLimiter
from connectors.webchat.server import visitor_key
from ingest.apply import agent_reply
from ingest.daemon import Daemon
from ingest.queries import list_tickets, ticket_detail
from ingest.records import RawPayload

WEBCHAT = """
[webchat]
port = 0
max_message_chars = 200
rate_limit_per_minute = 5
"""
TIMEOUT = 5.0


class Chat:
    """A visitor's socket: frames are read into a buffer so a test can wait for the one it
    expects while others (the automatic acknowledgement...) arrive in between."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def message(self, text: str, client_id: str | None = None) -> str:
        client_id = client_id or str(uuid.uuid4())
        await self.send({"type": "message", "client_id": client_id, "text": text})
        return client_id

    async def expect(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda f: True) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for frame in self.frames:
                if frame["type"] == kind and match(frame):
                    self.frames.remove(frame)
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} frame within {TIMEOUT}s; got {self.frames}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                continue
            self.frames.append(json.loads(raw))

    async def close(self) -> None:
        await self.ws.close()


def chat_url(daemon: Daemon) -> str:
    return f"ws://127.0.0.1:{daemon.connectors['webchat'].port}/"


def page_origin(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.http_port}"


async def open_chat(daemon: Daemon, session: str | None = None) -> tuple[Chat, dict[str, Any]]:
    ws = await connect(chat_url(daemon), origin=page_origin(daemon))
    chat = Chat(ws)
    await chat.send({"type": "hello", "session": session, "lang": "fa"})
    return chat, await chat.expect("welcome")


async def inbox_count(daemon: Daemon, session: str, client_id: str) -> int:
    row = await daemon.store.fetchone(
        "SELECT count(*) AS n FROM inbox WHERE dedupe_key = ?", (f"webchat:{visitor_key(session)}:{client_id}",))
    return row["n"]


async def drained(daemon: Daemon) -> None:
    await asyncio.wait_for(daemon.ingest.drained(), TIMEOUT)


async def only_ticket(daemon: Daemon) -> dict[str, Any]:
    await drained(daemon)
    tickets = await list_tickets(daemon.store)
    assert len(tickets) == 1, tickets
    detail = await ticket_detail(daemon.store, tickets[0]["reference"])
    assert detail is not None
    return detail


def inbound(detail: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in detail["messages"] if m["direction"] == "in"]


async def wait_until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def settled(daemon: Daemon) -> None:
    """Wait until everything accepted is threaded and every due reply delivered."""
    await drained(daemon)

    async def outbox_idle() -> bool:
        row = await daemon.store.fetchone("SELECT count(*) AS n FROM outbox WHERE state IN ('pending', 'sending')")
        return row["n"] == 0

    await wait_until(outbox_idle, "the outbox to deliver")


class ClosedStore:
    """Stands in for the store behind `accept()` while it cannot take writes (closed, disk full);
    the rest of the daemon keeps its real store."""

    async def write(self, op: Any) -> Any:
        raise StoreUnavailable("the store is closed (test)")


@pytest.fixture
async def daemon(make_daemon: Callable[..., Any]) -> AsyncIterator[Daemon]:
    yield await make_daemon(WEBCHAT)


# -- chat over the websocket ------------------------------------------------------------------


async def test_hello_without_session_gets_a_new_session_and_empty_history(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon)
    assert len(welcome["session"]) == 43
    assert welcome["history"] == []
    await chat.close()


async def test_message_is_acknowledged_only_once_committed_and_opens_a_ticket(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon)
    session = welcome["session"]
    client_id = await chat.message("سلام، ماشینم تصادف کرده")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    # The reader connection only sees committed rows: the ack came after the commit.
    assert await inbox_count(daemon, session, client_id) == 1

    detail = await only_ticket(daemon)
    assert detail["channels"] == ["webchat"]
    [message] = inbound(detail)
    assert message["text"] == "سلام، ماشینم تصادف کرده"
    assert message["sender"] == visitor_key(session)  # a digest: the token itself is never stored
    assert message["channel_message_id"] == client_id
    # The new ticket's acknowledgement reaches the visitor live, with the claim reference.
    ack_reply = await chat.expect("reply")
    assert detail["reference"] in ack_reply["text"]
    await chat.close()


async def test_store_refusing_writes_means_no_ack_and_the_resend_is_stored_once(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, welcome = await open_chat(daemon)
    session = welcome["session"]

    monkeypatch.setattr(daemon.ingest, "store", ClosedStore())
    client_id = await chat.message("پیام در زمان قطعی")
    error = await chat.expect("error")
    monkeypatch.undo()
    assert error["code"] == "unavailable"
    assert error["client_id"] == client_id
    assert error["retry_after"] > 0
    assert not [f for f in chat.frames if f["type"] == "ack"]
    assert await inbox_count(daemon, session, client_id) == 0

    await chat.message("پیام در زمان قطعی", client_id)  # what the widget does after retry_after
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    await chat.message("پیام در زمان قطعی", client_id)  # and once more, as if that ack was lost
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    assert await inbox_count(daemon, session, client_id) == 1
    assert len(inbound(await only_ticket(daemon))) == 1
    await chat.close()


async def test_reconnect_resumes_session_and_resend_with_same_client_id_is_stored_once(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon)
    session = welcome["session"]
    acked = await chat.message("اولین پیام")
    await chat.expect("ack", lambda f: f["client_id"] == acked)
    # The connection drops before the second message's ack can arrive.
    unacked = await chat.message("دومین پیام")
    chat.ws.transport.abort()

    again, resumed = await open_chat(daemon, session)
    assert resumed["session"] == session
    await again.message("دومین پیام", unacked)
    await again.expect("ack", lambda f: f["client_id"] == unacked)
    await again.message("اولین پیام", acked)  # a stale resend of an acknowledged message
    await again.expect("ack", lambda f: f["client_id"] == acked)

    detail = await only_ticket(daemon)
    assert [m["text"] for m in inbound(detail)] == ["اولین پیام", "دومین پیام"]
    third, history = await open_chat(daemon, session)
    visitor_items = [item for item in history["history"] if item["direction"] == "in"]
    assert [item["id"] for item in visitor_items] == [acked, unacked]
    await again.close()
    await third.close()


async def test_agent_reply_is_pushed_live_to_every_open_window_of_the_session(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon)
    session = welcome["session"]
    second, _ = await open_chat(daemon, session)
    stranger, _ = await open_chat(daemon)
    client_id = await chat.message("کی کارشناس میاد؟")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    detail = await only_ticket(daemon)

    await daemon.store.write(agent_reply(detail["reference"], "فردا ساعت ۱۰ صبح", "maryam", daemon.ingest.context))
    for window in (chat, second):
        reply = await window.expect("reply", lambda f: f["text"] == "فردا ساعت ۱۰ صبح")
        assert reply["id"].startswith("out-")
    assert not [f for f in stranger.frames if f["type"] == "reply"]
    for ws in (chat, second, stranger):
        await ws.close()


async def test_history_after_reconnect_includes_the_reply_sent_while_away(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon)
    session = welcome["session"]
    client_id = await chat.message("مدارک را کجا بفرستم؟")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    await chat.close()
    detail = await only_ticket(daemon)
    outbox_id = await daemon.store.write(
        agent_reply(detail["reference"], "همین‌جا بارگذاری کنید", "maryam", daemon.ingest.context))

    async def delivered() -> bool:
        row = await daemon.store.fetchone("SELECT state FROM outbox WHERE id = ?", (outbox_id,))
        return row["state"] == "sent"

    await wait_until(delivered, "the reply to be delivered")
    again, resumed = await open_chat(daemon, session)
    items = resumed["history"]
    assert items[0] == {"id": client_id, "direction": "in", "text": "مدارک را کجا بفرستم؟", "at": items[0]["at"]}
    assert {"id": f"out-{outbox_id}", "direction": "out", "text": "همین‌جا بارگذاری کنید"} == {
        k: items[-1][k] for k in ("id", "direction", "text")}
    timeline = (await ticket_detail(daemon.store, detail["reference"]))["timeline"]
    assert any(e["kind"] == "delivery_sent" and "offline" in (e.get("detail") or "") for e in timeline)
    await again.close()


async def test_history_on_resume_has_acknowledged_messages_not_yet_threaded(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, welcome = await open_chat(daemon)
    first = await chat.message("پیام ۱")
    await chat.expect("ack", lambda f: f["client_id"] == first)
    await settled(daemon)
    # Threading lags the ack (the normaliser process, a backlog): hold what is accepted now.
    held: list[tuple[int, RawPayload]] = []
    release = daemon.ingest._enqueue
    monkeypatch.setattr(daemon.ingest, "_enqueue", lambda inbox_id, payload: held.append((inbox_id, payload)))
    later = [await chat.message(f"پیام {n}") for n in ("۲", "۳")]
    for client_id in later:
        await chat.expect("ack", lambda f, client_id=client_id: f["client_id"] == client_id)
    await chat.close()

    # The widget forgot each message on its ack: a reload redraws the log from `history` alone.
    again, resumed = await open_chat(daemon, welcome["session"])
    await again.close()
    visitor = [(item["id"], item["text"]) for item in resumed["history"] if item["direction"] == "in"]
    assert visitor == [(first, "پیام ۱"), (later[0], "پیام ۲"), (later[1], "پیام ۳")]
    assert [item["id"] for item in resumed["history"][-2:]] == later

    monkeypatch.undo()
    for inbox_id, payload in held:
        release(inbox_id, payload)
    await settled(daemon)
    third, threaded = await open_chat(daemon, welcome["session"])
    await third.close()
    assert [item["id"] for item in threaded["history"] if item["direction"] == "in"] == [first, *later]


async def test_page_from_a_foreign_origin_is_refused_at_the_handshake(daemon: Daemon) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(chat_url(daemon), origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_over_long_message_gets_too_long_and_is_not_stored(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon)
    client_id = await chat.message("ب" * 201)
    error = await chat.expect("error")
    assert (error["code"], error["client_id"]) == ("too_long", client_id)
    assert await inbox_count(daemon, welcome["session"], client_id) == 0
    ok = await chat.message("ب" * 200)
    await chat.expect("ack", lambda f: f["client_id"] == ok)
    await chat.close()


async def test_emoji_up_to_the_limit_are_stored_even_as_json_escapes(make_daemon: Callable[..., Any]) -> None:
    # An emoji is one character but twelve bytes as JSON escapes ("\ud83d\ude97"), as any
    # client that writes ASCII-only JSON sends it: the frame must still fit the socket's limit,
    # and one character too many must be told, not answered by a closed socket.
    daemon = await make_daemon(WEBCHAT.replace("max_message_chars = 200", "max_message_chars = 1000"))
    chat, welcome = await open_chat(daemon)
    ok = await chat.message("🚗" * 1000)
    await chat.expect("ack", lambda f: f["client_id"] == ok)
    over = await chat.message("🚗" * 1001)
    error = await chat.expect("error")
    assert (error["code"], error["client_id"]) == ("too_long", over)
    assert await inbox_count(daemon, welcome["session"], ok) == 1
    await chat.close()


async def test_messages_over_the_rate_limit_are_refused_with_retry_after(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon)
    for n in range(5):
        client_id = await chat.message(f"پیام {n}")
        await chat.expect("ack", lambda f: f["client_id"] == client_id)
    sixth = await chat.message("پیام ۶")
    error = await chat.expect("error")
    assert (error["code"], error["client_id"]) == ("rate_limited", sixth)
    assert 0 < error["retry_after"] <= 60
    assert await inbox_count(daemon, welcome["session"], sixth) == 0
    # The limit is per session, not per socket: a second window of the same visitor shares it.
    second, _ = await open_chat(daemon, welcome["session"])
    await second.message("از پنجرهٔ دیگر")
    assert (await second.expect("error"))["code"] == "rate_limited"
    await chat.close()
    await second.close()


async def test_bad_json_gets_an_error_and_the_connection_stays_usable(daemon: Daemon) -> None:
    chat, _ = await open_chat(daemon)
    await chat.send("{not json")
    assert (await chat.expect("error"))["code"] == "bad_json"
    await chat.send({"type": "message", "client_id": "has spaces", "text": "x"})
    assert (await chat.expect("error"))["code"] == "bad_frame"
    client_id = await chat.message("هنوز اینجام")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    await chat.close()


async def test_message_before_hello_is_refused(daemon: Daemon) -> None:
    chat = Chat(await connect(chat_url(daemon), origin=page_origin(daemon)))
    client_id = await chat.message("بدون سلام")
    error = await chat.expect("error")
    assert (error["code"], error["client_id"]) == ("hello_required", client_id)
    await chat.send({"type": "hello", "session": None})
    await chat.expect("welcome")
    await chat.close()


async def test_unknown_or_malformed_session_token_starts_a_new_session(daemon: Daemon) -> None:
    chat, welcome = await open_chat(daemon, "not-a-token")
    assert welcome["session"] != "not-a-token" and welcome["history"] == []
    await chat.close()


async def test_session_idle_longer_than_the_ttl_is_not_resumed(make_daemon: Callable[..., Any]) -> None:
    month_ago = datetime.now(UTC) - timedelta(days=31)
    daemon = await make_daemon(WEBCHAT, clock=lambda: month_ago)  # everything stored a month ago
    chat, welcome = await open_chat(daemon)
    client_id = await chat.message("پیام قدیمی")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    await chat.close()
    await settled(daemon)

    again, resumed = await open_chat(daemon, welcome["session"])
    assert resumed["session"] != welcome["session"]
    assert resumed["history"] == []
    await again.close()


# -- the web form --------------------------------------------------------------------------------


def form_fields(**overrides: str) -> dict[str, str]:
    fields = {
        "token": "tok_" + uuid.uuid4().hex, "name": "علی رضایی", "phone": "۰۹۱۲ ۱۲۳ ۴۵۶۷",
        "email": "Ali@Example.com", "policy_number": "BN-1403-778", "claim_type": "auto",
        "description": "تصادف در اتوبان همت، سپر عقب آسیب دید.",
    }
    fields.update(overrides)
    return fields


def multipart(fields: dict[str, str], files: list[tuple[str, bytes, str]] = ()) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    for filename, content, content_type in files:
        data.add_field("attachments", content, filename=filename, content_type=content_type)
    return data


async def post_form(daemon: Daemon, data: aiohttp.FormData, origin: str | None = None) -> tuple[int, str]:
    headers = {"Origin": origin or page_origin(daemon)}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{page_origin(daemon)}/webform", data=data, headers=headers) as response:
            return response.status, await response.text()


async def test_form_page_is_persian_rtl_with_a_fresh_token_each_time(daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        pages = [await (await http.get(f"{page_origin(daemon)}/webform")).text() for _ in range(2)]
    assert all('dir="rtl"' in page and 'name="attachments"' in page for page in pages)
    tokens = [page.split('name="token" value="', 1)[1].split('"', 1)[0] for page in pages]
    assert tokens[0] != tokens[1]


async def test_form_submission_opens_a_claim_and_shows_its_reference(daemon: Daemon) -> None:
    photo = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048
    status, page = await post_form(daemon, multipart(form_fields(), [("C:\\Users\\ali\\سپر.png", photo, "image/png")]))
    assert status == 200
    detail = await only_ticket(daemon)
    assert f'id="reference">{detail["reference"]}<' in page
    assert detail["subject"] == "Web form: auto claim"
    [message] = inbound(detail)
    assert (message["kind"], message["channel"], message["sender"]) == ("form", "webform", "+989121234567")
    assert "Policy number: BN-1403-778" in message["text"] and "سپر عقب" in message["text"]
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("سپر.png", len(photo))
    assert attachment["sha256"]
    identities = await daemon.store.fetchall("SELECT kind, value FROM identities ORDER BY kind")
    assert [(r["kind"], r["value"]) for r in identities] == [("email", "ali@example.com"), ("phone", "+989121234567")]


async def test_double_submit_of_the_same_form_is_stored_once_with_the_same_reference(daemon: Daemon) -> None:
    fields = form_fields(claim_type="health")
    first = await post_form(daemon, multipart(fields))
    second = await post_form(daemon, multipart(fields))
    detail = await only_ticket(daemon)
    assert first[0] == second[0] == 200
    assert detail["reference"] in first[1] and detail["reference"] in second[1]
    assert len(inbound(detail)) == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"phone": "0912-abc"}, "phone", "شماره تلفن معتبر نیست"),
        ({"description": "  "}, "description", "Description is required"),
        ({"phone": "", "email": ""}, "phone", "A phone number or an email address is required"),
        ({"email": "ali@"}, "email", "Email address is invalid"),
        ({"claim_type": "fire"}, "claim_type", "auto or health"),
        ({"token": ""}, "token", "expired"),
    ],
)
async def test_invalid_form_is_shown_again_with_the_reason_and_nothing_is_stored(
    daemon: Daemon, overrides: dict[str, str], field: str, message: str
) -> None:
    status, page = await post_form(daemon, multipart(form_fields(**overrides)))
    assert status == 422
    assert f'data-field="{field}"' in page and message in page
    assert 'value="علی رضایی"' in page  # what was typed is kept
    assert (await daemon.store.fetchone("SELECT count(*) AS n FROM inbox"))["n"] == 0


async def test_form_line_breaks_sent_as_crlf_count_once_and_are_stored_as_lf(daemon: Daemon) -> None:
    # As a browser submits a textarea: 60 lines are 179 characters in the box (maxlength 200),
    # 238 as sent with CRLF; a lone CR is a line break too.
    description = "\r\n".join(["خط"] * 59) + "\rخط"
    assert len(description) > 200 >= len(description.replace("\r\n", "\n"))
    status, page = await post_form(daemon, multipart(form_fields(description=description)))
    assert status == 200, page
    row = await daemon.store.fetchone("SELECT body FROM inbox_raw")
    stored = json.loads(row["body"])["description"]
    assert stored == "\n".join(["خط"] * 60)


async def test_oversized_upload_gets_413_and_nothing_is_stored(make_daemon: Callable[..., Any]) -> None:
    daemon = await make_daemon(WEBCHAT + "form_max_upload_bytes = 4096\n")
    status, page = await post_form(daemon, multipart(form_fields(), [("scan.pdf", b"%PDF" + b"0" * 8000, "application/pdf")]))
    assert status == 413
    # Its own direction: on the right-to-left page the English sentence's full stop stays at its end.
    assert '<p dir="auto">The attachments are larger than allowed; nothing was stored.</p>' in page
    assert (await daemon.store.fetchone("SELECT count(*) AS n FROM inbox"))["n"] == 0


def raw_part(name: str, value: bytes, *, filename: str | None = None, content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    headers = f"Content-Disposition: {disposition}\r\n" + (f"Content-Type: {content_type}\r\n" if content_type else "")
    return f"--XX\r\n{headers}\r\n".encode() + value + b"\r\n"


async def post_chunked(daemon: Daemon, parts: Iterable[bytes]) -> tuple[int, str]:
    """POST a multipart body chunked: no Content-Length, as a streaming client sends it."""

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
        yield b"--XX--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=XX", "Origin": page_origin(daemon)}
    async with aiohttp.ClientSession() as http, http.post(f"{page_origin(daemon)}/webform", data=body(),
                                                              headers=headers) as response:
        return response.status, await response.text()


async def test_chunked_form_over_the_http_body_limit_gets_413(make_daemon: Callable[..., Any]) -> None:
    daemon = await make_daemon(WEBCHAT, environ={"PARVANDEH__HTTP__MAX_BODY_BYTES": str(2**20)})
    # 8 MiB in 4 files: within the form's own 10 MiB for attachments, not within 1 MiB a body.
    scans = (raw_part("attachments", b"0" * 2**21, filename=f"scan{n}.pdf", content_type="application/pdf")
             for n in range(4))
    status, page = await post_chunked(daemon, scans)
    assert status == 413 and "nothing was stored" in page


async def test_chunked_form_text_fields_count_towards_the_form_limit(make_daemon: Callable[..., Any]) -> None:
    daemon = await make_daemon(WEBCHAT + "form_max_upload_bytes = 1024\n")
    # Each field under the 64 KB a text field may hold, together far over attachments + overhead.
    status, _ = await post_chunked(daemon, (raw_part(f"f{n}", b"a" * 60_000) for n in range(20)))
    assert status == 413
    assert (await daemon.store.fetchone("SELECT count(*) AS n FROM inbox"))["n"] == 0


async def test_form_with_thousands_of_parts_is_refused(daemon: Daemon) -> None:
    status, page = await post_chunked(daemon, (raw_part(f"f{n}", b"x") for n in range(5000)))
    assert status == 400 and "more than 28 parts" in page


async def test_form_part_in_an_unknown_charset_is_a_400(daemon: Daemon) -> None:
    parts = [raw_part("name", b"ali", content_type="text/plain; charset=no-such-charset")]
    status, page = await post_chunked(daemon, parts)
    assert status == 400 and "unknown charset" in page


async def test_form_posted_from_a_foreign_site_is_refused(daemon: Daemon) -> None:
    status, _ = await post_form(daemon, multipart(form_fields()), origin="https://evil.example")
    assert status == 403
    assert (await daemon.store.fetchone("SELECT count(*) AS n FROM inbox"))["n"] == 0


async def test_own_pages_still_work_when_allowed_origins_lists_the_firm_site(
    make_daemon: Callable[..., Any],
) -> None:
    daemon = await make_daemon(WEBCHAT + 'allowed_origins = ["https://www.firm.example"]\n')
    status, page = await post_form(daemon, multipart(form_fields()))  # from the daemon's own /webform
    assert status == 200, page
    chat = Chat(await connect(chat_url(daemon), origin=page_origin(daemon)))  # its own /webchat/ page
    await chat.send({"type": "hello", "session": None})
    await chat.expect("welcome")
    await chat.close()
    assert (await post_form(daemon, multipart(form_fields()), origin="https://www.firm.example"))[0] == 200
    assert (await post_form(daemon, multipart(form_fields()), origin="https://evil.example"))[0] == 403


async def test_behind_a_proxy_the_public_base_url_is_our_own_origin(make_daemon: Callable[..., Any]) -> None:
    daemon = await make_daemon(WEBCHAT, environ={"PARVANDEH__HTTP__PUBLIC_BASE_URL": "https://claims.firm.example"})
    # The proxy passes the request on to 127.0.0.1; the browser's Origin is the public site.
    status, page = await post_form(daemon, multipart(form_fields()), origin="https://claims.firm.example")
    assert status == 200, page
    chat = Chat(await connect(chat_url(daemon), origin="https://claims.firm.example"))
    await chat.send({"type": "hello", "session": None})
    await chat.expect("welcome")
    await chat.close()


async def test_form_gets_503_when_the_store_cannot_take_it(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon.ingest, "store", ClosedStore())
    status, _ = await post_form(daemon, multipart(form_fields()))
    monkeypatch.undo()
    assert status == 503


async def test_widget_files_and_demo_page_are_served_with_the_chat_url(daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        for path, kind in (("/webchat/widget.js", "text/javascript"), ("/webchat/widget.css", "text/css")):
            async with http.get(f"{page_origin(daemon)}{path}") as response:
                assert response.status == 200 and response.content_type == kind
        async with http.get(f"{page_origin(daemon)}/webchat/") as response:
            page = await response.text()
    assert f'data-ws-url="{chat_url(daemon)}"' in page and 'dir="rtl"' in page


# -- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "public_base_url", "allowed", "expected"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8081", "", [], True),
        ("https://Claims.Example.ir", "claims.example.ir", "", [], True),
        ("http://evil.example", "127.0.0.1:8081", "", [], False),
        ("null", "127.0.0.1:8081", "", [], False),
        ("http://[broken", "127.0.0.1:8081", "", [], False),
        (None, "127.0.0.1:8081", "", [], True),
        ("https://www.insurer.ir/", "chat.firm.ir", "", ["https://www.insurer.ir"], True),
        ("https://chat.firm.ir", "chat.firm.ir", "", ["https://www.insurer.ir"], True),
        ("https://evil.example", "chat.firm.ir", "", ["https://www.insurer.ir"], False),
        ("https://anything.example", "chat.firm.ir", "", ["*"], True),
        # Behind a proxy that sends its own Host upstream.
        ("https://claims.firm.ir", "127.0.0.1:8080", "https://claims.firm.ir/", ["https://www.insurer.ir"], True),
        ("https://evil.example", "127.0.0.1:8080", "https://claims.firm.ir/", [], False),
    ],
)
def test_origin_allow_list(origin: str | None, host: str, public_base_url: str, allowed: list[str],
                           expected: bool) -> None:
    assert origin_allowed(origin, own_hosts(host, public_base_url), allowed) is expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[1, 2]", "bad_json"),
        ('{"type": "typing"}', "bad_frame"),
        ('{"type": "message", "client_id": "a", "text": ""}', "bad_frame"),
        ('{"type": "message", "text": "hi"}', "bad_frame"),
        ('{"type": "message", "client_id": "a", "text": "' + "x" * 11 + '"}', "too_long"),
    ],
)
def test_frames_refused_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(protocol.FrameError) as refused:
        protocol.parse_client_frame(raw, max_chars=10)
    assert refused.value.code == code


def test_rate_limiter_frees_a_slot_when_the_oldest_event_leaves_the_window() -> None:
    limiter = RateLimiter(2, window=60)
    assert limiter.check("s", 0) is None and limiter.check("s", 10) is None
    assert limiter.check("s", 30) == 30
    assert limiter.check("other", 30) is None
    assert limiter.check("s", 60.5) is None


def test_form_with_only_an_email_makes_the_email_the_sender() -> None:
    submission, errors = validate(form_fields(phone=""), max_chars=4000)
    assert not errors and submission is not None
    payload = RawPayload("webform", "webchat", submission.token, "webform-submission", document(submission, []),
                         received_at=datetime.now(UTC))
    message = normalise_form_submission(payload)
    assert (message.sender.kind, message.sender.value, message.extra_identities) == ("email", "ali@example.com", ())


def test_chat_payload_normalises_to_the_session_conversation() -> None:
    body = json.dumps({"session": "S" * 43, "client_id": "c1", "text": "سلام", "name": "Ali", "lang": "fa"})
    message = normalise_chat_message(RawPayload("webchat", "webchat", "x", "webchat-message", body.encode(), datetime.now(UTC)))
    assert (message.conversation_key, message.sender.kind, message.sender.display_name) == (
        f"webchat:{'S' * 43}", "webchat", "Ali")


def test_history_leaves_out_webchat_replies_not_yet_delivered() -> None:
    rows = [
        {"id": 1, "direction": "in", "channel": "webchat", "channel_message_id": "c1", "display_text": "a", "created_at": "t1"},
        {"id": 2, "direction": "out", "channel": "webchat", "channel_message_id": "", "display_text": "b", "created_at": "t2"},
        {"id": 3, "direction": "out", "channel": "webchat", "channel_message_id": "out-7", "display_text": "c", "created_at": "t3"},
    ]
    assert [item["id"] for item in protocol.history_items(rows)] == ["c1", "out-7"]


def test_the_readme_embeds_the_widget_with_the_attributes_it_reads() -> None:
    # The README's embed code is what operators paste: an attribute the widget does not read
    # (`data-ws` for `data-ws-url`) leaves the chat saying its URL is missing.
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (tag,) = re.findall(r'<script src="[^"]*/webchat/widget\.js"[^>]*>', readme)
    widget = (STATIC / "widget.js").read_text(encoding="utf-8")
    reads = set(re.findall(r"^ \*   (data-[a-z-]+) ", widget, re.MULTILINE))
    assert "data-ws-url" in reads
    used = set(re.findall(r"\s(data-[a-z-]+)=", tag))
    assert "data-ws-url" in used and used <= reads, f"{sorted(used - reads)} not read by the widget"


async def test_second_form_opens_its_own_claim_and_replies_go_by_email(daemon: Daemon) -> None:
    await post_form(daemon, multipart(form_fields()))
    await post_form(daemon, multipart(form_fields(claim_type="health", description="صورتحساب بیمارستان")))
    await daemon.ingest.drained()
    refs = [t["reference"] for t in await list_tickets(daemon.store)]
    assert len(refs) == 2, "each form submission is a claim of its own"
    # Nobody can answer on the web form itself: the reply goes to the contact's email.
    await daemon.store.write(agent_reply(refs[0], "مدارک را ارسال کنید", "agent1", daemon.ingest.context))
    (row,) = await daemon.store.fetchall("SELECT channel, recipient FROM outbox WHERE automatic = 0")
    assert (row["channel"], row["recipient"]) == ("email", "ali@example.com")


async def test_the_session_token_is_never_stored_nor_shown_to_agents(daemon: Daemon) -> None:
    """The token is a bearer secret: whoever presents it reads the chat and writes as the visitor.
    The store (identities, tickets, messages, inbox) keeps only a digest of it."""
    chat, welcome = await open_chat(daemon)
    token = welcome["session"]
    await chat.send({"type": "message", "client_id": "c1", "text": "کد ملی من ۰۴۹۹۳۷۰۸۹۹"})
    await chat.expect("ack")
    await drained(daemon)
    detail = await only_ticket(daemon)
    assert token not in json.dumps(detail, ensure_ascii=False)
    for table, column in (("identities", "value"), ("tickets", "conversation_key"), ("messages", "sender"),
                          ("inbox", "dedupe_key")):
        rows = await daemon.store.fetchall(f"SELECT {column} AS v FROM {table}")
        assert not any(token in (row["v"] or "") for row in rows), table
    # The visitor still resumes with the token, and sees their history.
    _, again = await open_chat(daemon, token)
    assert again["session"] == token and [h["id"] for h in again["history"]][:1] == ["c1"]


async def test_a_session_stored_before_tokens_were_digested_still_resumes(daemon: Daemon) -> None:
    from connectors.webchat.normalise import CHAT_FORMAT, chat_body

    token = "L" * 43  # stored under the raw token, as before the upgrade
    await daemon.ingest.accept(RawPayload(
        channel="webchat", connector="webchat", dedupe_key=f"{token}:old1", fmt=CHAT_FORMAT,
        body=chat_body(token, "old1", "پیام قدیمی", "", "fa"), received_at=datetime.now(UTC),
        meta={"session": token}))
    await drained(daemon)
    chat, welcome = await open_chat(daemon, token)
    assert welcome["session"] == token and welcome["history"][0]["id"] == "old1"
    client_id = await chat.message("ادامه")
    await chat.expect("ack", lambda f: f["client_id"] == client_id)
    await drained(daemon)
    (ticket,) = await list_tickets(daemon.store)  # the same conversation, not a new claim
    await chat.close()
