"""The thread: every message, note and timeline event of a ticket in time order.

Only the newest items are laid out when a ticket opens (that is where an agent starts reading);
earlier ones are added a page at a time as the agent reads back past the oldest one shown (up
from it, the mouse wheel at the top, or the "earlier" line selected), so a 5,000-message thread
opens as fast as a short one. The agent API sends the newest messages only: once those are all
laid out, reading back asks the ticket screen for the next older page (`NeedEarlier`). A long
text comes cut, and says how much is left out. Prompts are rich Text built once per item."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from console.keys import localise_bindings
from console.labels import say, shown, shown_term, term, visual
from console.render import CHANNEL_ICONS, Prefs, display_lines, neutralise, number, safe_text, when

PAGE = 60
EARLIER = "earlier"

# Timeline events worth a line in the thread; the rest are already visible as messages.
SHOWN_EVENTS = frozenset({
    "status_changed", "assigned", "unassigned", "priority_changed", "queue_changed", "merged_into", "merged_from",
    "delivery_sent", "delivery_failed", "delivery_retrying", "delivery_status", "sla_warning", "sla_breached",
    "supervisor_alert",
})
ARROWS = {"in": "→", "out": "←", "internal": "·"}
HEAD_STYLE = {"in": "bold cyan", "out": "bold green", "internal": "bold yellow"}


def message_prompt(m: dict[str, Any], prefs: Prefs, width: int | None = None) -> Text:
    who = m.get("sender_name") or m.get("sender") or ""
    if m["direction"] != "in":
        who = m.get("author") or say("system", prefs)
    head = Text.assemble(
        (f"{CHANNEL_ICONS.get(m['channel'], m['channel'])} {ARROWS.get(m['direction'], '·')} ",
         HEAD_STYLE.get(m["direction"], "")),
        (when(m["created_at"], prefs), "dim"), "  ",
        safe_text(who, prefs, single_line=True, style=HEAD_STYLE.get(m["direction"], "")),
        (f"  [{shown_term('channel', m['channel'], prefs)}]" if m["kind"] != "note"
         else shown("internal_note", prefs), "dim"),
    )
    if m.get("from_contact") is False:  # named the claim, but is none of its contact's identities
        head.append_text(Text.assemble((shown("not_contact", prefs), "bold yellow"), (shown("links_them", prefs), "dim")))
    if m.get("auto_reason"):  # from the sender's Auto-Submitted header: customer text
        head.append(visual(say("automatic", prefs, reason=neutralise(m["auto_reason"])), prefs), "dim italic")
    lines = [head]
    if m.get("subject") and m["kind"] != "note":
        lines.append(safe_text(m["subject"], prefs, single_line=True, style="bold"))
    body = "display_text" if m.get("display_text") else "text"
    lines.append(safe_text((m.get(body) or "").strip(), prefs, width=width))
    if more := (m.get("more") or {}).get(body):  # cut by the agent API; the store has it all
        lines.append(Text(shown("more_characters", prefs, count=more), style="dim italic"))
    for att in m.get("attachments", []):
        size = shown("bytes", prefs, size=att["size"]) if att.get("size") else ""
        lines.append(Text.assemble(("  + ", "dim"), safe_text(att["filename"], prefs, single_line=True),
                                   (f" {neutralise(att['content_type'] or '')}{size}", "dim")))
    return Text("\n").join([*lines, Text("")])


_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?")


def _detail(value: Any, prefs: Prefs) -> str:
    """An event's value as shown: stored instants (an SLA's due time, in UTC) in Tehran time and
    the agent's calendar and digits, like the event's own time; numbers in the agent's digits;
    mappings value by value."""
    if isinstance(value, str) and _INSTANT.fullmatch(value):
        return when(value, prefs)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_detail(v, prefs)}" for k, v in value.items()) + "}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number(value, prefs)
    return str(value)


# Which names an event's values are (`labels.term` groups): by the event's kind and the field, or
# by the field alone. Other values (agents' names, references, error texts) are shown as stored.
_VALUE_TERMS: dict[tuple[str | None, str], str] = {
    ("status_changed", "old"): "status", ("status_changed", "new"): "status",
    ("priority_changed", "old"): "priority", ("priority_changed", "new"): "priority",
    (None, "old_status"): "status", (None, "clock"): "clock", (None, "channel"): "channel",
    ("delivery_status", "status"): "delivery",
}
# Internal row numbers: nothing an agent can use.
_HIDDEN_FIELDS = frozenset({"at", "kind", "actor", "outbox_id", "message_row"})


def event_details(e: dict[str, Any], prefs: Prefs) -> str:
    """An event's fields in the agent's language, in logical order: "from: normal, to: urgent"
    ("از: عادی، به: فوری"); a field or value with no name in the catalogue as stored."""
    shown_fields = []
    for key, value in e.items():
        if key in _HIDDEN_FIELDS or value is None:
            continue
        group = _VALUE_TERMS.get((e["kind"], key)) or _VALUE_TERMS.get((None, key))
        if isinstance(value, bool):
            text = say("yes" if value else "no", prefs)
        elif group and isinstance(value, str):
            text = term(group, value, prefs)
        else:
            text = _detail(value, prefs)
        shown_fields.append(f"{term('field', key, prefs)}: {text}")
    return say("list_separator", prefs).join(shown_fields)


EVENT_INDENT = "    "  # the rows of an event's details wrapped under its time and kind


def event_prompt(e: dict[str, Any], prefs: Prefs, width: int | None = None) -> Text:
    """One line, or, right-to-left details too long for `width`, the details wrapped under it:
    wrapped before they are reordered, like a message's text (the list wrapping the reordered
    line put the end of the Persian sentence on its first row, and its beginning last)."""
    details = event_details(e, prefs)
    by = say("by_actor", prefs, actor=neutralise(e["actor"] or ""))
    head = Text.assemble(("  · ", "dim"), (when(e["at"], prefs), "dim"), " ",
                         (shown_term("event", e["kind"], prefs), "magenta"))
    line = Text.assemble(head, " ", safe_text(details, prefs, single_line=True), (visual(by, prefs), "dim"))
    if width is None or line.cell_len <= width or display_lines(details, prefs) == [details]:
        return line  # fits, or reads left to right: the list's own wrapping keeps its order
    rows = display_lines(neutralise(f"{details} {by.strip()}"), prefs, width - len(EVENT_INDENT))
    return Text.assemble(head, *(f"\n{EVENT_INDENT}{row}" for row in rows))



@dataclass(slots=True)
class _Item:
    key: tuple[str, int]  # (time, 0 for messages / 1 for events): events after a same-instant message
    option_id: str
    message: dict[str, Any] | None = None
    event: dict[str, Any] | None = None


class ThreadView(OptionList):
    # j/k (and the arrows, pageup/pagedown) move from item to item, showing each from its top:
    # these scroll the text itself, so a message taller than the screen can be read to its end.
    BINDINGS = [
        Binding("space,ctrl+d", "read_down", "key.read_on", show=False),
        Binding("ctrl+u", "read_up", "key.read_back", show=False),
    ]

    class NeedEarlier(Message):
        """Every item here is laid out and the agent asked for earlier ones: the server has them."""

    def __init__(self, prefs: Prefs, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prefs = prefs
        localise_bindings(self, prefs)
        self.items: list[_Item] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.shown_from = 0  # items here not laid out yet
        self.earlier = 0  # messages older than every item here, not sent yet
        self._prompts: dict[str, Text] = {}
        self._events = 0
        self._laid_out_for = 0  # the width the prompts were wrapped to

    def _width(self) -> int | None:
        width = self.content_size.width
        return width - 2 if width > 10 else None

    def on_resize(self) -> None:
        # A terminal resize, or the contact panel shown or hidden beside the thread.
        if self.items and self.size.width != self._laid_out_for:
            self.relayout()

    def _prompt(self, item: _Item) -> Text:
        if not self._prompts:
            self._laid_out_for = self.size.width
        prompt = self._prompts.get(item.option_id)
        if prompt is None:
            prompt = (message_prompt(item.message, self.prefs, self._width()) if item.message is not None
                      else event_prompt(item.event or {}, self.prefs, self._width()))
            self._prompts[item.option_id] = prompt
        return prompt

    def _event_item(self, event: dict[str, Any]) -> _Item:
        self._events += 1
        return _Item((event["at"], 1), f"e{self._events}", event=event)

    def _new_items(self, messages: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> list[_Item]:
        fresh = [m for m in messages if f"m{m['id']}" not in self.messages]
        self.messages.update((f"m{m['id']}", m) for m in fresh)
        items = [_Item((m["created_at"], 0), f"m{m['id']}", message=m) for m in fresh]
        return sorted(items + [self._event_item(e) for e in timeline if e["kind"] in SHOWN_EVENTS],
                      key=lambda item: item.key)

    def show_thread(self, messages: list[dict[str, Any]], timeline: list[dict[str, Any]], earlier: int = 0) -> None:
        """Everything anew, cursor on the newest item; `earlier` older messages are still on the server."""
        self.messages = {}
        self.items = self._new_items(messages, timeline)
        self.earlier = earlier
        self._prompts.clear()
        self.shown_from = max(0, len(self.items) - PAGE)
        self._render_items(highlight=len(self.items) - 1)

    def add_earlier(self, messages: list[dict[str, Any]], timeline: list[dict[str, Any]], earlier: int) -> None:
        """An older page from the server, above everything here; cursor on its newest item."""
        added = self._new_items(messages, timeline)
        self.items = sorted(added + self.items, key=lambda item: item.key)
        self.earlier = earlier
        self.shown_from = max(0, len(added) - PAGE)
        self._render_items(highlight=max(0, len(added) - 1))

    def oldest_message_id(self) -> int | None:
        return min((m["id"] for m in self.messages.values()), default=None)

    def relayout(self) -> None:
        """The width changed: right-to-left text is wrapped to it, so build the prompts again."""
        highlighted = self._item_index(self.highlighted)
        self._prompts.clear()
        self._render_items(highlight=highlighted)

    def _item_index(self, option_index: int | None) -> int | None:
        if option_index is None:
            return None
        return self.shown_from + option_index - self._earlier_lines

    @property
    def _earlier_lines(self) -> int:
        """1 when the "earlier" line heads the list."""
        return 1 if self.shown_from or self.earlier else 0

    def _render_items(self, highlight: int | None) -> None:
        options: list[Option] = []
        if self._earlier_lines:
            hidden = self.shown_from + self.earlier
            options.append(Option(Text(shown("earlier", self.prefs, count=hidden), style="dim italic"), id=EARLIER))
        options += [Option(self._prompt(item), id=item.option_id) for item in self.items[self.shown_from:]]
        self.set_options(options)
        if highlight is not None and highlight >= self.shown_from:
            self.highlighted = highlight - self.shown_from + self._earlier_lines

    def show_earlier(self) -> None:
        """The page of items before those shown, the cursor on the one just above them."""
        if not self.shown_from:
            if self.earlier:
                self.post_message(self.NeedEarlier())
            return
        above = self.shown_from - 1
        self.shown_from = max(0, self.shown_from - PAGE)
        self._render_items(highlight=above)

    def action_cursor_up(self) -> None:
        """Up from the oldest item shown (or the "earlier" line) reads on back: the thread
        scrolls like one list, however much of it is still on the server."""
        if self._earlier_lines and self.highlighted is not None and self.highlighted <= self._earlier_lines:
            self.show_earlier()
        else:
            super().action_cursor_up()

    def on_mouse_scroll_up(self) -> None:
        if self.scroll_y == 0 and self._earlier_lines:  # the wheel at the top: the earlier page
            self.show_earlier()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == EARLIER:
            event.stop()
            self.show_earlier()

    def add_message(self, message: dict[str, Any]) -> None:
        option_id = f"m{message['id']}"
        if option_id in self.messages:
            return
        self.messages[option_id] = message
        self._append(_Item((message["created_at"], 0), option_id, message=message))

    def add_event(self, event: dict[str, Any]) -> None:
        if event["kind"] in SHOWN_EVENTS:
            self._append(self._event_item(event))

    def _append(self, item: _Item) -> None:
        follow = self.highlighted is None or self.highlighted == self.option_count - 1
        self.items.append(item)
        self.add_option(Option(self._prompt(item), id=item.option_id))
        if follow:
            self.highlighted = self.option_count - 1

    def action_read_down(self) -> None:
        self.scroll_relative(y=max(1, self.scrollable_content_region.height - 2), animate=False)

    def action_read_up(self) -> None:
        self.scroll_relative(y=-max(1, self.scrollable_content_region.height - 2), animate=False)

    def highlighted_message(self) -> dict[str, Any] | None:
        option = self.highlighted_option
        return self.messages.get(option.id or "") if option is not None else None
