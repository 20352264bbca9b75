"""A web form upload's name is the visitor's to choose: it is cleaned as mail and Telegram
attachment names are (no bidi overrides that turn "gpj.exe" round, no control characters, no
path), since agents read it and open the file by it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ingest import queries
from ingest.daemon import Daemon
from tests.test_webchat import WEBCHAT, form_fields, multipart, post_form


@pytest.fixture
async def daemon(make_daemon: Callable[..., Any]) -> AsyncIterator[Daemon]:
    yield await make_daemon(WEBCHAT)


@pytest.mark.parametrize("sent, shown", [
    ("invoice\u202egpj.exe", "invoice_gpj.exe"),        # shown to agents as "invoiceexe.jpg"
    ("photo\u2067gpj.exe\u2069", "photo_gpj.exe_"),
    ("..", "attachment"),
])
async def test_form_upload_names_are_cleaned(daemon: Daemon, sent: str, shown: str) -> None:
    status, _ = await post_form(daemon, multipart(form_fields(), [(sent, b"MZ\x90\x00", "image/jpeg")]))
    assert status == 200
    await daemon.ingest.drained()
    (ticket,) = await queries.list_tickets(daemon.store)
    detail = await queries.ticket_detail(daemon.store, ticket["reference"])
    (attachment,) = detail["messages"][0]["attachments"]
    assert attachment["filename"] == shown
