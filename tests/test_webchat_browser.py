"""The chat widget and the web form in a real headless Chromium (Playwright driving the system
browser at /usr/bin/chromium; no browser is ever downloaded), against a daemon on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ingest.apply import agent_reply
from ingest.daemon import Daemon
from ingest.queries import list_tickets, ticket_detail
from test_webchat import drained

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
WEBCHAT = "\n[webchat]\nport = 0\n"

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium "
                                                     "(apt-get install chromium); no browser is downloaded"),
]

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        context = await browser.new_context(locale="fa-IR", viewport={"width": 1000, "height": 760})
        context.set_default_timeout(10_000)
        yield await context.new_page()
        await browser.close()


@pytest.fixture
async def daemon(make_daemon: Callable[..., Any]) -> AsyncIterator[Daemon]:
    yield await make_daemon(WEBCHAT)


def base_url(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.http_port}"


async def test_visitor_chats_sees_agent_reply_live_and_history_after_reload(
    daemon: Daemon, page: Any, tmp_path: Path
) -> None:
    await page.goto(f"{base_url(daemon)}/webchat/")
    widget = page.locator(".pv-chat")
    await expect(widget).to_have_attribute("dir", "rtl")
    await expect(page.locator(".pv-status")).to_have_attribute("data-status", "online")

    await page.locator(".pv-input").fill("سلام، پرونده تصادف من به کجا رسید؟")
    await page.locator(".pv-send").click()
    sent = page.locator(".pv-visitor", has_text="پرونده تصادف من")
    await expect(sent).to_have_attribute("data-state", "acked")
    await expect(sent.locator(".pv-text")).to_have_attribute("dir", "auto")

    await drained(daemon)
    [ticket] = await list_tickets(daemon.store)
    # The acknowledgement of the new claim arrives by itself, with the reference.
    await expect(page.locator(".pv-agent", has_text=ticket["reference"])).to_be_visible()
    await daemon.store.write(agent_reply(ticket["reference"], "کارشناس فردا با شما تماس می‌گیرد.", "maryam",
                                         daemon.ingest.context))
    await expect(page.locator(".pv-agent", has_text="کارشناس فردا")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "webchat.png"))
    assert (tmp_path / "webchat.png").stat().st_size > 10_000

    await page.reload()
    await expect(page.locator(".pv-status")).to_have_attribute("data-status", "online")
    log = page.locator(".pv-log")
    await expect(log.locator(".pv-visitor", has_text="پرونده تصادف من")).to_have_attribute("data-state", "acked")
    await expect(log.locator(".pv-agent", has_text="کارشناس فردا")).to_be_visible()
    await expect(log.locator(".pv-msg")).to_have_count(3)
    detail = await ticket_detail(daemon.store, ticket["reference"])
    assert [m["channel"] for m in detail["messages"] if m["direction"] == "in"] == ["webchat"]


async def test_message_written_while_offline_is_sent_on_reconnect_and_stored_once(
    daemon: Daemon, page: Any
) -> None:
    await page.goto(f"{base_url(daemon)}/webchat/")
    await expect(page.locator(".pv-status")).to_have_attribute("data-status", "online")
    connector = daemon.connectors["webchat"]
    await connector.stop()
    await expect(page.locator(".pv-status")).to_have_attribute("data-status", "offline")
    await page.locator(".pv-input").fill("این پیام در قطعی نوشته شد")
    await page.locator(".pv-send").click()
    pending = page.locator(".pv-visitor", has_text="در قطعی")
    await expect(pending).to_have_attribute("data-state", "pending")

    await connector.start(daemon.ingest)
    await expect(pending).to_have_attribute("data-state", "acked", timeout=20_000)
    await drained(daemon)
    [ticket] = await list_tickets(daemon.store)
    assert ticket["message_count"] >= 1
    detail = await ticket_detail(daemon.store, ticket["reference"])
    assert [m["text"] for m in detail["messages"] if m["direction"] == "in"] == ["این پیام در قطعی نوشته شد"]


async def test_web_form_submission_shows_the_claim_reference(daemon: Daemon, page: Any, tmp_path: Path) -> None:
    await page.goto(f"{base_url(daemon)}/webform")
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await page.locator("#name").fill("مریم احمدی")
    await page.locator("#phone").fill("۰۹۳۵۱۲۳۴۵۶۷")
    await page.locator("#email").fill("maryam@example.com")
    await page.locator("#policy_number").fill("DR-99-1234")
    await page.locator("input[name=claim_type][value=health]").check()
    await page.locator("#description").fill("هزینهٔ بستری در بیمارستان؛ صورتحساب پیوست است.")
    await page.locator("#attachments").set_input_files(
        [{"name": "صورتحساب.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" + b"0" * 4096}])
    await page.screenshot(path=str(tmp_path / "webform.png"), full_page=True)
    await page.locator("button[type=submit]").click()

    reference = page.locator("#reference")
    await expect(reference).to_be_visible()
    [ticket] = await list_tickets(daemon.store)
    await expect(reference).to_have_text(ticket["reference"])
    detail = await ticket_detail(daemon.store, ticket["reference"])
    [message] = detail["messages"]
    assert (message["sender"], detail["subject"]) == ("+989351234567", "Web form: health claim")
    assert [a["filename"] for a in message["attachments"]] == ["صورتحساب.pdf"]
    await page.screenshot(path=str(tmp_path / "webform-done.png"))


async def test_web_form_with_a_bad_phone_shows_the_reason_in_persian(daemon: Daemon, page: Any) -> None:
    await page.goto(f"{base_url(daemon)}/webform")
    await page.locator("#name").fill("مریم احمدی")
    await page.locator("#phone").fill("12")
    await page.locator("#description").fill("شرح")
    await page.locator("button[type=submit]").click()
    await expect(page.locator(".field-error[data-field=phone]")).to_contain_text("شماره تلفن معتبر نیست")
    await expect(page.locator("#name")).to_have_value("مریم احمدی")
    assert await list_tickets(daemon.store) == []
