"""Hostile input through the real paths (the normaliser, the SMTP listener, the web chat socket,
the Telegram webhook, the console): each case here once hung the normaliser, quarantined a good
message, dropped a connection without a word, or let customer text act on the agent's
terminal. Bad input gets a clear error; what cannot be processed is quarantined, never lost;
customer text is shown literally."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from console.render import Prefs, safe_text
from ingest import queries
from ingest.daemon import Daemon
from tests.test_agent_api import Harness
from tests.test_console import SIZE, console, open_only_ticket, screen_text, until
from tests.test_console import harness  # noqa: F401  (fixture)
from tests.test_smtp import only_ticket as only_mail_ticket
from tests.test_smtp import send
from tests.test_telegram import SECRET_ENV, bot_table, inbox_states, post_webhook, text_update
from tests.test_telegram import api, tokens  # noqa: F401  (fixtures)
from tests.test_webchat import WEBCHAT, Chat, chat_url, form_fields, inbound, only_ticket, page_origin

HEAD = (b"From: Ali <ali@example.com>\r\nTo: claims@parvandeh.test\r\nSubject: claim\r\n"
        b"MIME-Version: 1.0\r\n")


# -- the normaliser: HTML that cost quadratic time -----------------------------------------------
# Converting HTML marked every block in the parsed tree with bs4 insertions, each a scan of the
# parent's children or of the previous sibling's descendants: 80 KB of plain `<p>` paragraphs
# took 25 s, 320 KB minutes, nested tags longer, all that time holding the normaliser (one worker
# process by default) and every channel's processing behind it. The mail is parsed in a child
# process that is killed after a bound far above what these take now (a second or two): a hang
# guard, not a performance assertion.

_PARSE_IN_CHILD = """
import sys
from ingest.mime import parse_email
sys.stdout.buffer.write(parse_email(sys.stdin.buffer.read()).text.encode())
"""


@pytest.mark.parametrize("html", [
    "".join(f"<p>بند {n}</p>\r\n" for n in range(40_000)),
    "<div>" * 60_000 + "deep",
    "<a href='https://x.example/'>" * 30_000 + "deep",
], ids=["many-paragraphs", "nested-div", "nested-a"])
def test_html_with_many_or_deeply_nested_blocks_is_converted_without_hanging(html: str) -> None:
    raw = HEAD + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    try:
        done = subprocess.run([sys.executable, "-c", _PARSE_IN_CHILD], input=raw, capture_output=True,
                              timeout=90, cwd=Path(__file__).parent.parent, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the normaliser was still converting the HTML after 90 s")
    text = done.stdout.decode()
    if html.startswith("<p>"):
        assert text.startswith("بند 0\n\nبند 1\n\n") and text.endswith("بند 39999")
    else:
        assert "deep" in text and "<" not in text


# -- the normaliser: a raw 8-bit byte in Auto-Submitted ---------------------------------------------


async def test_out_of_office_with_8bit_bytes_in_auto_submitted_joins_the_claim_not_quarantine(
        make_daemon: Any) -> None:
    # The reason was built from the raw header (8-bit bytes surrogate-escaped) and failed the
    # store's UTF-8 encoding once the message was written to a claim's thread: the customer's
    # out-of-office answer to our acknowledgement went to quarantine.
    daemon = await make_daemon()
    claim = HEAD + b"Message-ID: <first@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMy car"
    assert (await send(daemon, claim))[0] == 250
    away = (HEAD + b"Message-ID: <auto8@example.com>\r\nIn-Reply-To: <first@example.com>\r\n"
            b"Auto-Submitted: auto-replied\xff\xfe\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI am away")
    assert (await send(daemon, away))[0] == 250
    await daemon.ingest.drained()
    assert await queries.list_quarantine(daemon.store) == []
    messages = [m for m in (await only_mail_ticket(daemon))["messages"] if m["direction"] == "in"]
    assert [m["text"] for m in messages] == ["My car", "I am away"]
    assert messages[1]["auto_reason"].startswith("auto-submitted:auto-replied")


# -- the console: bidi controls ------------------------------------------------------------------------
# A right-to-left override turns "gpj.exe" into what reads as "exe.jpg"; the console reorders
# right-to-left text itself, so it obeyed the override, and passed the control on to the terminal.


def test_bidi_override_and_isolate_controls_are_shown_not_obeyed() -> None:
    for prefs in (Prefs(bidi=True), Prefs(bidi=False)):
        shown = safe_text("invoice \u202egpj.exe \u2067x\u2069 \u202bقسمت\u202c", prefs).plain
        assert "<202E>gpj.exe" in shown and "<2067>x<2069>" in shown
        assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    # Marks that only hint a direction (RLM, LRM, ALM) and ZWNJ are ordinary Persian text.
    assert safe_text("می\u200cخواهم\u200f", Prefs(bidi=False)).plain == "می\u200cخواهم\u200f"


async def test_bidi_override_in_a_customers_mail_reaches_the_console_inert(harness: Harness) -> None:
    ref = await harness.mail(subject="invoice \u202egpj.exe", body="attached: \u202egpj.exe")
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await until(pilot, lambda: "attached:" in screen_text(app))
        shown = screen_text(app)
        assert "<202E>gpj.exe" in shown and "\u202e" not in shown and "exe.jpg" not in shown


# -- the console: escapes in header tokens ------------------------------------------------------------
# An attachment's Content-Type and an automatic mail's Auto-Submitted token are the sender's
# words too; the thread printed them as they came, so an ESC in them reached the terminal.

ESC = b"\x1b[5m\x1b[31m"  # blink + red: no space, ';' or '(' so the header tokens keep it


async def test_escape_in_an_attachments_content_type_reaches_the_console_inert(harness: Harness) -> None:
    raw = (HEAD + b"Message-ID: <att-esc@example.com>\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
           b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nphotos attached\r\n"
           b"--XX\r\nContent-Type: image/" + ESC + b"; name=car.jpg\r\n"
           b"Content-Disposition: attachment; filename=car.jpg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"AAAA\r\n--XX--\r\n")
    assert (await send(harness.daemon, raw))[0] == 250
    await harness.daemon.ingest.drained()
    ref = (await only_mail_ticket(harness.daemon))["reference"]
    shown = await ticket_on_screen(harness, ref, "car.jpg")
    assert "image/␛[5m␛[31m" in shown and "\x1b" not in shown


async def test_escape_in_an_auto_submitted_token_reaches_the_console_inert(harness: Harness) -> None:
    ref = await harness.mail(subject="claim", sender="ali@example.com")
    away = (HEAD.replace(b"Subject: claim", b"Subject: Out of office Re: [" + ref.encode() + b"]")
            + b"Message-ID: <ooo-esc@example.com>\r\nAuto-Submitted: auto-replied" + ESC + b"\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nI am away\r\n")
    assert (await send(harness.daemon, away))[0] == 250
    await harness.daemon.ingest.drained()
    shown = await ticket_on_screen(harness, ref, "I am away")
    assert "␛[5m␛[31m" in shown and "\x1b" not in shown


async def ticket_on_screen(harness: Harness, ref: str, waiting_for: str) -> str:
    """The console's screen with ticket `ref` open, once `waiting_for` shows on it."""
    app = await console(harness)
    async with app.run_test(size=SIZE) as pilot:
        await open_only_ticket(pilot, app, ref)
        await until(pilot, lambda: waiting_for in screen_text(app))
        return screen_text(app)


# -- the web chat socket ---------------------------------------------------------------------------------


@pytest.fixture
async def chat_daemon(make_daemon: Callable[..., Any]) -> AsyncIterator[Daemon]:
    yield await make_daemon(WEBCHAT)


async def _open(daemon: Daemon, hello: str) -> Chat:
    chat = Chat(await connect(chat_url(daemon), origin=page_origin(daemon)))
    await chat.send(hello)
    await chat.expect("welcome")
    return chat


async def test_lone_surrogate_in_a_chat_message_is_stored_with_a_replacement_not_a_dropped_socket(
        chat_daemon: Daemon) -> None:
    # A widget that cuts an emoji in half sends "\ud83d" alone (JSON.stringify escapes it). The
    # payload then failed UTF-8 encoding before the store: the socket closed with 1011 and the
    # widget's resend failed the same way, for ever.
    chat = await _open(chat_daemon, '{"type": "hello", "session": null, "name": "Ali \\udcff"}')
    await chat.send('{"type": "message", "client_id": "c1", "text": "سلام \\ud83d"}')
    await chat.expect("ack", lambda f: f["client_id"] == "c1")
    (message,) = inbound(await only_ticket(chat_daemon))
    assert message["text"] == "سلام \ufffd"
    await chat.close()


async def test_deeply_nested_json_frame_gets_bad_json_and_the_socket_stays_usable(chat_daemon: Daemon) -> None:
    chat = await _open(chat_daemon, '{"type": "hello", "session": null}')
    await chat.send("[" * 5_000)  # json.loads raised RecursionError, which closed the socket
    assert (await chat.expect("error"))["code"] == "bad_json"
    await chat.send('{"type": "message", "client_id": "c2", "text": "هنوز اینجام"}')
    await chat.expect("ack", lambda f: f["client_id"] == "c2")
    await chat.close()


def _form_with_upload(part_headers: bytes) -> bytes:
    body = b"".join(b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
                    for k, v in form_fields().items())
    return body + b"--B\r\n" + part_headers + b"\r\n\r\nPHOTO\r\n--B--\r\n"


async def _post_form(daemon: Daemon, body: bytes) -> tuple[int, str]:
    headers = {"Origin": page_origin(daemon), "Content-Type": "multipart/form-data; boundary=B"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{page_origin(daemon)}/webform", data=body, headers=headers) as response:
            return response.status, await response.text()


async def test_form_upload_with_hostile_bytes_in_its_part_headers_gets_a_clear_answer_not_a_500(
        chat_daemon: Daemon) -> None:
    # A control character in a part header: aiohttp refuses the header (BadHttpMessage, not a
    # ValueError), which escaped the handler as "internal_error".
    status, page = await _post_form(chat_daemon, _form_with_upload(
        b'Content-Disposition: form-data; name="attachments"; filename="a\x1b[2J.png"\r\nContent-Type: image/png'))
    assert status == 400 and "The form could not be read" in page
    assert await inbox_states(chat_daemon) == []
    # Bytes that are not UTF-8: aiohttp hands them on surrogate-escaped, and the stored document
    # (JSON in UTF-8) could not encode them: a form with a valid photo got "internal_error".
    status, _ = await _post_form(chat_daemon, _form_with_upload(
        b'Content-Disposition: form-data; name="attachments"; filename="\xd8\xb9\xff.png"\r\n'
        b"Content-Type: image/png\xff"))
    assert status == 200
    (message,) = inbound(await only_ticket(chat_daemon))
    (attachment,) = message["attachments"]
    assert (attachment["filename"], attachment["content_type"]) == ("ع\ufffd.png", "image/png\ufffd")
    assert attachment["size"] == len(b"PHOTO")


# -- the Telegram webhook ----------------------------------------------------------------------------------


async def test_webhook_answers_deeply_nested_json_with_a_clear_400(api: Any, tokens: None, make_daemon: Any) -> None:
    daemon = await make_daemon(bot_table(api, mode="webhook", extra=f'webhook_secret_env = "{SECRET_ENV}"'))
    status, body = await post_webhook(daemon, b'{"update_id": 7, "x": ' + b"[" * 100_000)
    assert status == 400 and "malformed_update" in json.dumps(body)
    assert await inbox_states(daemon) == []
    assert (await post_webhook(daemon, text_update("سلام") | {"update_id": 8}))[0] == 200
