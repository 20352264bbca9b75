"""The console's own labels in Persian (the default) and English: the catalogue is whole, every
key and palette entry is named in it, and a console run in Persian against a real daemon shows
Persian headers, key descriptions and notifications in display order for terminals without
bidi, with Persian digits. `[console] language` and `--lang` choose the language."""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding

import console.app
import console.composer
import console.contact_screen
import console.crm
import console.help_screen
import console.main_screen
import console.pickers
import console.render
import console.reports_screen
import console.search_screen
import console.supervisor_screen
import console.thread_view
import console.ticket_screen
from config.loader import ConfigError, console_settings, load_settings
from connectors.registry import settings_schemas
from console.app import ConsoleApp
from console.composer import counter
from console.labels import LABELS, SYSTEM_COMMANDS, say, shown, term, visual
from console.main_screen import MainScreen
from console.search_screen import SearchScreen
from console.render import Prefs, display_lines
from console.ticket_actions import TicketActions
from run import build_parser
from tests.test_agent_api import Harness, running_harness
from tests.test_console import SIZE, screen_text, ticket_list, until

PERSIAN = Prefs()  # the code's default, as the shipped configuration's


@pytest.fixture
async def harness(make_daemon: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with running_harness(make_daemon) as h:
        yield h


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_label_has_both_languages_with_the_same_placeholders() -> None:
    for key, (fa, en) in LABELS.items():
        assert fa.strip() and en.strip(), key
        assert placeholders(fa) == placeholders(en), key
        if en != fa:  # Persian where it differs from the English ("SLA" is the same in both)
            assert re.search(r"[\u0600-\u06FF]", fa), key


def console_classes() -> list[type]:
    modules = (console.app, console.main_screen, console.ticket_screen, console.contact_screen, console.crm,
               console.help_screen, console.reports_screen, console.search_screen, console.supervisor_screen,
               console.composer, console.pickers, console.thread_view)
    return [v for m in modules for v in vars(m).values()
            if isinstance(v, type) and v.__module__ == m.__name__ and "BINDINGS" in vars(v)]


def test_every_key_and_palette_entry_is_named_in_the_catalogue() -> None:
    classes = console_classes()
    assert len(classes) >= 12
    for cls in classes:
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding) and binding.description in LABELS, (cls, binding)
    actions = {a for cls in (TicketActions, console.ticket_screen.TicketScreen) for a in cls.PALETTE_ACTIONS}
    assert {f"cmd.{a}" for a in actions} | {f"cmd.{a}.help" for a in actions} <= set(LABELS)
    assert all(label in LABELS for _, label in console.help_screen.KEYS)
    # The server's values agents read: each has its Persian name.
    named = ({f"status.{s}" for s in console.pickers.STATUSES} | {f"priority.{p}" for p in console.pickers.PRIORITIES}
             | {f"availability.{a}" for a in console.pickers.AVAILABILITY}
             | {f"channel.{c}" for c in console.render.CHANNEL_ICONS}
             | {f"event.{e}" for e in console.thread_view.SHOWN_EVENTS} | {f"alert.{k}" for k in console.app.SLA_ALERTS})
    assert named <= set(LABELS), named - set(LABELS)


def test_numbers_take_the_agents_digits_and_references_stay_as_written() -> None:
    assert say("more_characters", PERSIAN, count=1234) == "… (۱۲۳۴ نویسه دیگر)"
    assert say("more_characters", Prefs(digits="latin", language="en"), count=1234) == "… (1234 more characters)"
    assert say("reply_to", PERSIAN, ref="PV-1405-000123") == "پاسخ به PV-1405-000123"
    assert term("status", "awaiting_documents", PERSIAN) == "در انتظار مدارک"
    assert term("channel", "a_plugins_channel", PERSIAN) == "a_plugins_channel"  # no name: as sent
    assert counter("س" * 71, "sms", Prefs(bidi=False)) == "۷۱ نویسه · پیامک: ۲ بخش UCS-2"


def test_labels_are_reordered_for_terminals_without_bidi_keeping_their_gaps_in_place() -> None:
    line = say("internal_note", PERSIAN)
    assert line.startswith("  ") and visual(line, PERSIAN) == "  " + display_lines(line.strip(), PERSIAN)[0]
    assert visual(line, PERSIAN) != line  # reordered
    assert visual(line, Prefs(bidi=False)) == line  # the terminal does bidi itself
    assert shown("key.take", Prefs(language="en")) == "Take"


async def test_a_persian_console_shows_persian_headers_keys_rows_and_notifications(harness: Harness) -> None:
    ref = await harness.mail(subject="claim one", sender="a@example.com")
    app = ConsoleApp(harness.url, await harness.agent("sara"), PERSIAN)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])

        def on_screen(logical: str) -> bool:
            # In display order: the terminal is taken not to do bidi itself (the default).
            return display_lines(logical, PERSIAN)[0] in screen_text(app)

        status = term("status", ticket_list(app).tickets[ref]["status"], PERSIAN)  # new, or assigned to sara
        # Headers, the key bar (t takes the ticket, / searches, q quits), the row, the top bar.
        labels = ("موضوع", "وضعیت", "مسئول", "قدیمی‌ترین انتظار", "برداشتن", "جستجو", "خروج", status, "همه صف‌ها")
        await until(pilot, lambda: all(on_screen(logical) for logical in labels))
        shown_now = screen_text(app)
        assert "موضوع" not in shown_now and "Take" not in shown_now and "Subject" not in shown_now
        assert "۱ / ۱" in shown_now  # the list's count in Persian digits

        await pilot.press("t")
        done = shown("done", PERSIAN, op=term("op", "take", PERSIAN), ref=ref)
        await until(pilot, lambda: any(n.message == done for n in app._notifications))
        assert ref in done and done != say("done", PERSIAN, op=term("op", "take", PERSIAN), ref=ref)  # reordered
        await until(pilot, lambda: ticket_list(app).tickets[ref]["assignee"] == "sara")

        await pilot.press("question_mark")  # help: every key described in Persian
        await until(pilot, lambda: on_screen("فهرست فرمان‌ها"))
        assert on_screen("پاسخ در کانال پیام انتخاب‌شده")


async def test_the_reports_name_their_groups_without_an_insurer_or_assignee_in_persian(harness: Harness) -> None:
    await harness.mail(subject="claim one", sender="a@example.com")
    app = ConsoleApp(harness.url, await harness.agent("boss", "supervisor"), PERSIAN)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and len(ticket_list(app).order) == 1)
        await pilot.press("R")
        await until(pilot, lambda: type(app.screen).__name__ == "ReportsScreen")
        await pilot.press("b")  # by insurer: the claim has none
        await until(pilot, lambda: visual("(بدون بیمه‌گر)", PERSIAN) in screen_text(app))
        await pilot.press("b", "b")  # by queue, by agent: nobody holds it
        await until(pilot, lambda: visual("(بی‌مسئول)", PERSIAN) in screen_text(app))
        assert "(none)" not in screen_text(app) and "(unassigned)" not in screen_text(app)


async def test_the_palette_finds_persian_names_as_the_agent_types_them(harness: Harness) -> None:
    """Shown in display order on a terminal without bidi, matched in the order typed: Textual's
    own entries (theme, quit, keys...) as well as ours."""
    ref = await harness.mail(subject="claim one", sender="a@example.com")
    app = ConsoleApp(harness.url, await harness.agent("sara"), PERSIAN)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        textuals = list(app.get_system_commands(app.screen))
        assert len(textuals) >= 4 and all(c.title in SYSTEM_COMMANDS and c.help in SYSTEM_COMMANDS for c in textuals)
        await pilot.press("ctrl+p")
        await pilot.press(*"خروج")  # quit, typed as a Persian agent types it
        await until(pilot, lambda: display_lines("خروج از کنسول", PERSIAN)[0] in screen_text(app))
        await pilot.press(*["backspace"] * 4, *"پوسته")  # Textual's theme entry
        await until(pilot, lambda: display_lines("تغییر پوسته رنگی کنسول", PERSIAN)[0] in screen_text(app))
        await pilot.press(*["backspace"] * 5, *"جستجو")  # ours: search, and it runs
        await until(pilot, lambda: display_lines(say("cmd.search", PERSIAN), PERSIAN)[0] in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))


async def test_an_english_console_has_none_of_the_persian_labels(harness: Harness) -> None:
    ref = await harness.mail(subject="claim one", sender="a@example.com")
    app = ConsoleApp(harness.url, await harness.agent("sara"), Prefs(language="en"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and ticket_list(app).order == [ref])
        await until(pilot, lambda: "t  Take" in screen_text(app))
        # Persian digits there are (the agent's digits), but no Persian word.
        assert "Subject" in screen_text(app) and not re.search(r"[\u0620-\u06D5]", screen_text(app))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parvandeh.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_console_language_is_configured_and_checked(tmp_path: Path) -> None:
    assert console_settings().language == "fa"  # the shipped default
    assert load_settings(connector_schemas=settings_schemas()).console.language == "fa"
    english = write(tmp_path, '[console]\nlanguage = "en"\n')
    assert console_settings(english).language == "en"
    assert console_settings(english, {"PARVANDEH__CONSOLE__LANGUAGE": "fa"}).language == "fa"
    wrong = write(tmp_path, '[console]\nlanguage = "de"\n')
    for load in (console_settings, load_settings):
        with pytest.raises(ConfigError, match=r"console\.language = 'de': expected 'fa' or 'en'"):
            load(wrong)


def test_run_py_console_takes_lang(tmp_path: Path) -> None:
    args = build_parser().parse_args(["console", "--token", "pvd_x", "--lang", "en"])
    assert args.lang == "en"
    assert build_parser().parse_args(["console", "--token", "pvd_x"]).lang is None  # the configuration decides
    with pytest.raises(SystemExit):
        build_parser().parse_args(["console", "--token", "pvd_x", "--lang", "de"])


def test_one_consoles_language_does_not_stick_to_the_next() -> None:
    # The bindings' lists are shared with the class: changed in place, the first console's
    # language was every later console's too.
    persian, english = (ConsoleApp("ws://127.0.0.1:9", "pvd_x", prefs) for prefs in (PERSIAN, Prefs(language="en")))

    def quit_key(app: ConsoleApp) -> str:
        return app._bindings.key_to_bindings["q"][0].description

    assert quit_key(persian) == shown("key.quit", PERSIAN) != quit_key(english) == "Quit"
    assert ConsoleApp._merged_bindings is not None
    assert ConsoleApp._merged_bindings.key_to_bindings["q"][0].description == "key.quit"
