"""The shared HTTP front: request ids, request logging, JSON errors, body limit, 503 on a store
outage, and the HMAC helper webhooks share. Over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from structlog.testing import capture_logs

from config.logs import log_or_add_to_request_line
from connectors.base import StoreUnavailable
from ingest import queries
from connectors.http_front import (
    HttpError, hmac_sha256_hex, install_http_front, signed_url, verify_hmac_sha256,
)

LIMIT = 4096


async def _ok(request: web.Request) -> web.Response:
    structlog.get_logger("test").info("handled")
    return web.json_response({"ok": True})


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"size": len(await request.read())})


async def _store_down(request: web.Request) -> web.Response:
    raise StoreUnavailable("disk full")


async def _bug(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals")


async def _accepts_two(request: web.Request) -> web.Response:
    log = structlog.get_logger("test")
    log_or_add_to_request_line(log, "message_accepted", inbox_id=1, duplicate=False)
    log_or_add_to_request_line(log, "message_accepted", inbox_id=2, duplicate=True)
    return web.json_response({"ok": True})


async def _refuse(request: web.Request) -> web.Response:
    raise HttpError(403, "invalid_signature", "not signed")


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application(client_max_size=LIMIT)
    install_http_front(app)
    app.router.add_get("/ok", _ok)
    app.router.add_post("/echo", _echo)
    app.router.add_get("/store-down", _store_down)
    app.router.add_get("/bug", _bug)
    app.router.add_get("/refuse", _refuse)
    app.router.add_post("/accepts-two", _accepts_two)
    app.router.add_post("/hooks/{secret}", _ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


async def fetch(method: str, url: str, **kwargs: Any) -> tuple[int, CIMultiDict[str], Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, CIMultiDict(response.headers), body


async def test_request_id_is_made_up_echoed_and_bound_into_logs(base_url: str) -> None:
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        status, headers, _ = await fetch("GET", f"{base_url}/ok")
    assert status == 200
    request_id = headers["X-Request-Id"]
    assert len(request_id) == 32
    handled = next(e for e in logs if e["event"] == "handled")
    access = next(e for e in logs if e["event"] == "http_request")
    assert handled["request_id"] == access["request_id"] == request_id
    assert (access["method"], access["path"], access["status"]) == ("GET", "/ok", 200)


async def test_a_secret_path_segment_is_masked_on_the_request_line(base_url: str) -> None:
    # Channels that cannot sign (Kavenegar) are proven by a secret URL; logs must not hold it.
    with structlog.testing.capture_logs() as logs:
        status, _, _ = await fetch("POST", f"{base_url}/hooks/Zq9-long-random-token")
    assert status == 200
    (access,) = [e for e in logs if e["event"] == "http_request"]
    assert access["path"] == "/hooks/{secret}"
    assert "Zq9-long-random-token" not in repr(logs)


async def test_what_a_handler_did_is_on_the_request_line_once_and_a_second_time_a_line_of_its_own(
        base_url: str) -> None:
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        status, _, _ = await fetch("POST", f"{base_url}/accepts-two")
    assert status == 200
    access = next(e for e in logs if e["event"] == "http_request")
    assert access["message_accepted"] == {"inbox_id": 1, "duplicate": False}
    own = [e for e in logs if e["event"] == "message_accepted"]
    assert [(e["inbox_id"], e["request_id"]) for e in own] == [(2, access["request_id"])]


def test_outside_a_request_the_event_is_a_line_of_its_own() -> None:
    with structlog.testing.capture_logs() as logs:
        log_or_add_to_request_line(structlog.get_logger("test"), "message_accepted", inbox_id=3)
    assert logs == [{"event": "message_accepted", "inbox_id": 3, "log_level": "info"}]


async def test_callers_request_id_is_kept_and_a_hostile_one_replaced(base_url: str) -> None:
    _, headers, _ = await fetch("GET", f"{base_url}/ok", headers={"X-Request-Id": "proxy-7f3a.1"})
    assert headers["X-Request-Id"] == "proxy-7f3a.1"
    _, headers, _ = await fetch("GET", f"{base_url}/ok", headers={"X-Request-Id": "x\" onload=alert(1)"})
    assert headers["X-Request-Id"] != "x\" onload=alert(1)"


async def test_routing_errors_are_json(base_url: str) -> None:
    status, _, body = await fetch("GET", f"{base_url}/nowhere")
    assert status == 404 and body["error"] == "not_found"
    status, headers, body = await fetch("GET", f"{base_url}/echo")
    assert status == 405 and body["error"] == "method_not_allowed"
    assert "POST" in headers["Allow"]


async def test_body_over_the_limit_is_413_json_whether_announced_or_chunked(base_url: str) -> None:
    status, headers, body = await fetch("POST", f"{base_url}/echo", data=b"x" * (LIMIT + 1))
    assert status == 413 and body["error"] == "body_too_large" and str(LIMIT) in body["detail"]
    assert headers["X-Request-Id"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 2048

    status, _, body = await fetch("POST", f"{base_url}/echo", data=chunks())
    assert status == 413 and body["error"] == "body_too_large"
    status, _, body = await fetch("POST", f"{base_url}/echo", data=b"x" * LIMIT)
    assert (status, body) == (200, {"size": LIMIT})


async def test_store_outage_is_503_so_the_channel_retries(base_url: str) -> None:
    status, headers, body = await fetch("GET", f"{base_url}/store-down")
    assert status == 503 and body["error"] == "store_unavailable"
    assert headers["Retry-After"]


async def test_handler_bug_is_500_json_without_internals(base_url: str) -> None:
    with structlog.testing.capture_logs() as logs:
        status, _, body = await fetch("GET", f"{base_url}/bug")
    assert status == 500 and body["error"] == "internal_error"
    assert "secret internals" not in str(body)
    assert any(e["event"] == "http_handler_failed" for e in logs)


async def test_handler_refusal_keeps_its_own_error(base_url: str) -> None:
    status, _, body = await fetch("GET", f"{base_url}/refuse")
    assert (status, body) == (403, {"error": "invalid_signature", "detail": "not signed"})


async def test_daemon_serves_through_the_front(make_daemon: Any) -> None:
    daemon = await make_daemon()
    status, headers, body = await fetch("GET", f"http://127.0.0.1:{daemon.http_port}/healthz")
    assert status == 200 and body == {"ok": True} and headers["X-Request-Id"]
    status, _, body = await fetch("GET", f"http://127.0.0.1:{daemon.http_port}/webhooks/nothing")
    assert status == 404 and body["error"] == "not_found"


async def test_healthz_names_a_background_task_that_died_and_the_log_says_why(
        make_daemon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug, injected: the attachment fetcher's first step raises, and its task ends.
    async def broken(store: Any) -> list[int]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(queries, "messages_with_unfetched_files", broken)
    with capture_logs() as logs:
        daemon = await make_daemon()
        for _ in range(250):
            if any(e["event"] == "background_task_died" for e in logs):
                break
            await asyncio.sleep(0.02)
    (died,) = [e for e in logs if e["event"] == "background_task_died"]
    assert died["task"] == "attachment-fetcher" and died["error"] == "RuntimeError: a bug" and died["exc_info"]
    status, _, body = await fetch("GET", f"http://127.0.0.1:{daemon.http_port}/healthz")
    assert status == 503 and body == {"ok": False, "store_open": True, "stopped": ["attachment-fetcher"]}


def test_hmac_signature_verifies_only_the_exact_body_and_secret() -> None:
    body = b'{"call_id": "1"}'
    signature = hmac_sha256_hex("s3cret", body)
    assert verify_hmac_sha256("s3cret", body, signature)
    assert verify_hmac_sha256("s3cret", body, signature.upper())
    assert not verify_hmac_sha256("s3cret", body + b" ", signature)
    assert not verify_hmac_sha256("other", body, signature)
    assert not verify_hmac_sha256("s3cret", body, "")
    assert not verify_hmac_sha256("", body, hmac_sha256_hex("", body))


def test_signed_url_is_the_public_one_behind_a_proxy() -> None:
    request = make_mocked_request("POST", "/webhooks/twilio/messages?x=1", headers={"Host": "10.0.0.5:8080"})
    assert signed_url(request, "https://claims.example.ir/") == "https://claims.example.ir/webhooks/twilio/messages?x=1"
    assert signed_url(request, "") == "http://10.0.0.5:8080/webhooks/twilio/messages?x=1"
