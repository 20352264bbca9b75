"""An insurer's webhook endpoint must not be able to steer the daemon's signed POSTs to other
hosts (internal services on loopback, a cloud metadata address) by answering with a redirect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from ingest.apply import change_status
from ingest.insurers import set_insurer_webhook
from tests.test_insurer_api import Api, api, filing, receiver, until  # noqa: F401


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


@pytest.fixture
async def internal_and_redirector() -> AsyncIterator[tuple[list[bytes], str]]:
    hits: list[bytes] = []

    async def internal(request: web.Request) -> web.Response:  # e.g. an admin endpoint on loopback
        hits.append(await request.read())
        return web.Response(text="internal secret")

    inside = web.Application()
    inside.router.add_route("*", "/admin/do", internal)
    inner_runner, inner_url = await _serve(inside)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{inner_url}/admin/do")  # 307 keeps the POST and its body

    outside = web.Application()
    outside.router.add_post("/hooks", redirect)
    outer_runner, outer_url = await _serve(outside)
    yield hits, f"{outer_url}/hooks"
    await outer_runner.cleanup()
    await inner_runner.cleanup()


async def test_a_redirect_from_the_webhook_endpoint_is_not_followed(
        api: Api, internal_and_redirector: tuple[list[bytes], str]) -> None:
    hits, url = internal_and_redirector
    daemon = api.daemon  # type: ignore[attr-defined]

    await daemon.store.write(set_insurer_webhook("asia", url))
    _, _, claim = await api.call("POST", "/claims", body=filing())
    await daemon.store.write(change_status(claim["reference"], "awaiting_documents", "maryam"))

    async def logged() -> list[Any]:
        return await daemon.store.fetchall("SELECT status_code, outcome FROM insurer_webhook_log ORDER BY id")

    rows = await until(logged)
    assert hits == []
    assert (rows[0]["status_code"], rows[0]["outcome"]) == (307, "failed")
