"""Pure display helpers: customer text made harmless, right-to-left lines, Jalali dates, digits,
SLA countdowns and channel icons. Everything returns rich `Text` (never markup strings), so
nothing a customer writes is ever parsed as Textual markup."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from persiantools import digits as fa_digits
from persiantools.jdatetime import JalaliDate, JalaliDateTime
from rich.text import Text

from console.visual_order import paragraph_level, visual

TEHRAN = ZoneInfo("Asia/Tehran")
Language = Literal["fa", "en"]
LANGUAGES: tuple[Language, ...] = ("fa", "en")

# ESC-introduced sequences: CSI (colours, cursor moves), OSC (titles, hyperlinks, clipboard),
# DCS/SOS/PM/APC strings, and two-character escapes. Shown, never obeyed.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -~]?)"
)
# C0 (but tab and newline), DEL and C1 controls (0x9B is a one-byte CSI on some terminals), and
# the bidi embeddings, overrides and isolates: `\u202egpj.exe` would show as "exe.jpg".
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_RTL = re.compile(r"[\u0590-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFF]")


@dataclass(frozen=True, slots=True)
class Prefs:
    """Display preferences: Jalali or Gregorian dates, Persian or Latin digits, whether
    to reorder right-to-left lines (off for terminals that do bidi themselves), and the
    language of the console's own labels (`console.labels`)."""

    calendar: Literal["jalali", "gregorian"] = "jalali"
    digits: Literal["persian", "latin"] = "persian"
    bidi: bool = True
    language: Language = "fa"


def _visible_control(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀..␟: the Unicode "control pictures"
    if code == 0x7F:
        return "␡"
    return f"<{code:02X}>"


def neutralise(text: str) -> str:
    """Customer text with every escape sequence and control character made visible and inert:
    `\\x1b[31m` shows as `␛[31m`. Tabs become spaces; newlines stay."""
    text = _ESCAPE_SEQUENCE.sub(lambda m: "␛" + neutralise(m.group(0)[1:]), text)
    return _CONTROL.sub(lambda m: _visible_control(m.group(0)), text.replace("\t", "    "))


def display_lines(line: str, prefs: Prefs, width: int | None = None) -> list[str]:
    """One logical line in the order a terminal without bidi support should print it, brackets
    and other mirrored characters in a right-to-left run facing the way it reads. A
    right-to-left line is wrapped to `width` first: wrapping after reordering would put the end
    of the sentence on the first row."""
    if not (prefs.bidi and _RTL.search(line)):
        return [line]
    rows = _wrap(line, width) if width and width > 0 else [line]
    # Each row keeps the direction of the whole line: a Persian sentence whose second row starts
    # with "PV-1405-…" or a number is still read right to left.
    base = paragraph_level(line)
    return [visual(row, base) for row in rows]


def _wrap(line: str, width: int) -> list[str]:
    """Greedy word wrap (textwrap is several times slower, and this runs per message)."""
    if len(line) <= width:
        return [line]
    rows: list[str] = []
    current = ""
    for word in line.split(" "):
        while len(word) > width:  # a word longer than the row is cut
            if current:
                rows.append(current)
                current = ""
            rows.append(word[:width])
            word = word[width:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            rows.append(current)
            current = word
    rows.append(current)
    return rows


def clip(line: str, limit: int) -> str:
    """`line` cut to `limit` characters in logical order, "…" marking the cut: cut before any
    right-to-left reordering, a Persian line keeps its beginning (and the "…" lands on its left)."""
    if len(line) <= limit:
        return line
    return line[:max(0, limit - 1)].rstrip() + "…"


def safe_text(text: str, prefs: Prefs, *, style: str = "", single_line: bool = False, width: int | None = None,
              limit: int | None = None) -> Text:
    """Customer-supplied text as a rich Text: neutralised, reordered per line, no markup.
    `single_line` text never wraps (it is cut with an ellipsis instead); with `limit` it is cut
    to that many characters before reordering, so what a narrow column shows is its beginning."""
    clean = neutralise(text)
    if single_line:
        line = " ".join(clean.split())
        if limit is not None:
            line = clip(line, limit)
        return Text(display_lines(line, prefs)[0], style=style, no_wrap=True, overflow="ellipsis")
    rows = [row for line in clean.split("\n") for row in display_lines(line, prefs, width)]
    return Text("\n".join(rows), style=style)


def number(value: int | str, prefs: Prefs) -> str:
    return fa_digits.en_to_fa(str(value)) if prefs.digits == "persian" else str(value)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: str | None, prefs: Prefs, *, with_time: bool = True) -> str:
    """An instant in Tehran time, Jalali by default."""
    moment = parse_time(value)
    if moment is None:
        return ""
    local = moment.astimezone(TEHRAN)
    fmt = "%Y/%m/%d %H:%M" if with_time else "%Y/%m/%d"
    shown = JalaliDateTime.to_jalali(local).strftime(fmt) if prefs.calendar == "jalali" else local.strftime(fmt)
    return number(shown, prefs)


def day(value: date, prefs: Prefs) -> str:
    """A calendar day, Jalali by default."""
    shown = JalaliDate(value).strftime("%Y/%m/%d") if prefs.calendar == "jalali" else value.strftime("%Y/%m/%d")
    return number(shown, prefs)


def countdown(due: str | None, warn: str | None, now: datetime, prefs: Prefs) -> Text:
    """Time left to the SLA due time, coloured by risk: green, yellow from the warning time,
    red (and negative) once breached. Empty when nobody is waiting."""
    due_at = parse_time(due)
    if due_at is None:
        return Text("")
    left = due_at - now
    overdue = left < timedelta(0)
    minutes = int(abs(left).total_seconds() // 60)
    hours, mins = divmod(minutes, 60)
    label = f"{'-' if overdue else ''}{hours}:{mins:02d}"
    warn_at = parse_time(warn)
    style = "bold red" if overdue else ("yellow" if warn_at and now >= warn_at else "green")
    return Text(number(label, prefs), style=style)


CHANNEL_ICONS = {
    "email": "✉", "sms": "✆", "whatsapp": "Ⓦ", "call": "☎", "telegram": "✈", "bale": "Ⓑ",
    "webchat": "⌨", "webform": "▤", "internal": "✎",
}


def channel_icons(channels: list[str]) -> Text:
    return Text(" ".join(CHANNEL_ICONS.get(c, c[:2]) for c in channels))
