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


# Where, left to right on the screen, a message's English gloss starts and ends: the left edge of
# its opening parenthesis, of its first letter, and of its closing parenthesis.
GLOSS_EDGES = """(element) => {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const open = node.data.indexOf("(");
        if (open < 0) continue;
        const left = (i) => {
            const range = document.createRange();
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            return range.getBoundingClientRect().left;
        };
        return [left(open), left(open + 1), left(node.data.lastIndexOf(")"))];
    }
    return null;
}"""


async def test_form_errors_english_gloss_reads_left_to_right_in_the_rtl_page(daemon: Daemon, page: Any) -> None:
    await page.goto(f"{base_url(daemon)}/webform")
    await page.locator("button[type=submit]").click()
    error = page.locator(".field-error[data-field=name]")
    await expect(error).to_contain_text("(Name is required.)")
    # Not "(.Name is required.)": the parentheses around the English text and its full stop at its end.
    opening, first_letter, closing = await error.evaluate(GLOSS_EDGES)
    assert opening < first_letter < closing
    summary_item = page.locator(".summary li[data-field=description]")
    opening, first_letter, closing = await summary_item.evaluate(GLOSS_EDGES)
    assert opening < first_letter < closing


async def test_form_sent_back_with_an_error_asks_for_the_attachments_again(daemon: Daemon, page: Any) -> None:
    await page.goto(f"{base_url(daemon)}/webform")
    await page.locator("#name").fill("مریم احمدی")
    await page.locator("#phone").fill("۰۹۳۵۱۲۳۴۵۶۷")
    await page.locator("#email").fill("maryam@")
    await page.locator("#description").fill("صورتحساب بیمارستان پیوست است.")
    await page.locator("#attachments").set_input_files(
        [{"name": "صورتحساب.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" + b"0" * 512}])
    await page.locator("button[type=submit]").click()
    await expect(page.locator(".field-error[data-field=email]")).to_be_visible()
    # The browser shows the file input empty again: the visitor must be told, or the corrected
    # form goes without the bill they believe is attached.
    assert await page.locator("#attachments").evaluate("input => input.files.length") == 0
    await expect(page.locator(".field-error[data-field=attachments]")).to_contain_text("choose them again")
    assert await list_tickets(daemon.store) == []


async def test_closing_the_chat_keeps_keyboard_focus_and_escape_closes_it(daemon: Daemon, page: Any) -> None:
    await page.goto(f"{base_url(daemon)}/webchat/")
    toggle, panel, input_box = page.locator(".pv-toggle"), page.locator(".pv-panel"), page.locator(".pv-input")
    await expect(input_box).to_be_focused()
    await page.locator(".pv-close").click()
    await expect(panel).to_be_hidden()
    await expect(toggle).to_be_focused()  # not lost to the page's <body>
    await page.keyboard.press("Enter")
    await expect(input_box).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(toggle).to_be_focused()


async def test_a_form_field_in_error_is_marked_invalid_and_described_by_its_message(
    daemon: Daemon, page: Any
) -> None:
    await page.goto(f"{base_url(daemon)}/webform")
    await page.locator("#phone").fill("12")
    await page.locator("button[type=submit]").click()
    phone = page.locator("#phone")
    await expect(phone).to_have_attribute("aria-invalid", "true")
    # What a screen reader says on reaching the field, besides its label.
    await expect(phone).to_have_accessible_description("شماره تلفن معتبر نیست؛ مانند ۰۹۱۲۱۲۳۴۵۶۷. "
                                                       "(Phone number is invalid, e.g. 09121234567.)")
    await expect(page.locator("#email")).not_to_have_attribute("aria-invalid", "true")


class Gate:
    """The chat's per-session rate limiter, opened and closed by the test: closed, every message
    is refused with `retry_after` seconds to wait."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.closed = False

    def check(self, key: str, now: float) -> float | None:
        return self.retry_after if self.closed else None


async def test_a_refused_message_is_stored_before_those_written_after_it(daemon: Daemon, page: Any) -> None:
    gate = Gate(retry_after=2.0)
    daemon.connectors["webchat"]._chat.limiter = gate  # type: ignore[attr-defined]
    await page.goto(f"{base_url(daemon)}/webchat/")
    await expect(page.locator(".pv-status")).to_have_attribute("data-status", "online")
    log, input_box = page.locator(".pv-log"), page.locator(".pv-input")

    await input_box.fill("پیام اول")
    await input_box.press("Enter")
    await expect(log.locator(".pv-visitor", has_text="پیام اول")).to_have_attribute("data-state", "acked")
    gate.closed = True
    await input_box.fill("پیام دوم")
    await input_box.press("Enter")
    await expect(page.locator(".pv-notice")).to_have_text("پیام‌ها خیلی سریع فرستاده شده‌اند؛ کمی صبر کنید.")
    gate.closed = False
    # Written while the second waits out its refusal: it goes after it, not ahead.
    await input_box.fill("پیام سوم")
    await input_box.press("Enter")
    for text in ("پیام دوم", "پیام سوم"):
        await expect(log.locator(".pv-visitor", has_text=text)).to_have_attribute("data-state", "acked")

    await drained(daemon)
    [ticket] = await list_tickets(daemon.store)
    detail = await ticket_detail(daemon.store, ticket["reference"])
    assert [m["text"] for m in detail["messages"] if m["direction"] == "in"] == ["پیام اول", "پیام دوم", "پیام سوم"]
