"""The reply (or note) composer: the text, the channel it goes out on, and for SMS how many
segments it will cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Select, TextArea

from connectors.sms_segments import count_segments
from console.labels import shown
from console.render import Prefs

SEGMENTED_CHANNELS = frozenset({"sms"})


@dataclass(frozen=True, slots=True)
class Composed:
    text: str
    channel: str | None


def counter(text: str, channel: str | None, prefs: Prefs) -> str:
    if channel in SEGMENTED_CHANNELS:
        count = count_segments(text)
        return shown("characters_sms_one" if count.segments == 1 else "characters_sms", prefs, count=len(text),
                     segments=count.segments, encoding=count.encoding)
    return shown("characters", prefs, count=len(text))


class Composer(ModalScreen[Composed | None]):
    CSS_PATH = "composer.tcss"
    BINDINGS = [Binding("ctrl+s", "send", "key.send"), Binding("escape", "cancel", "key.cancel")]

    def __init__(self, title: str, channels: list[tuple[Text, str]], channel: str | None,
                 templates: list[tuple[str, str]] | None = None) -> None:
        """`channels`: (label, channel) to choose from; `templates`: (name, text with
        placeholders already filled) to insert."""
        super().__init__()
        self.title_text = title
        self.channels = channels
        self.channel = channel
        self.templates = dict(templates or [])

    @property
    def prefs(self) -> Prefs:
        return cast(Any, self.app).prefs

    def compose(self) -> ComposeResult:
        prefs = self.prefs
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text), id="composer-title")
            if self.channels:
                yield Select(self.channels, value=self.channel or self.channels[0][1],
                             allow_blank=False, id="channel")
            if self.templates:
                yield Select([(name, name) for name in self.templates], prompt=shown("insert_template", prefs),
                             id="template")
            yield TextArea(id="body")
            yield Label(Text(counter("", self.channel, prefs)), id="counter")
            yield Label(Text(shown("composer_hint", prefs)), classes="hint")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def _update_counter(self) -> None:
        self.query_one("#counter", Label).update(Text(counter(self.query_one(TextArea).text, self.channel, self.prefs)))

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._update_counter()

    def on_select_changed(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str):
            return
        if event.select.id == "template":
            self.query_one(TextArea).insert(self.templates[event.value])
            self.query_one(TextArea).focus()
        else:
            self.channel = event.value
        self._update_counter()

    def action_send(self) -> None:
        text = self.query_one(TextArea).text
        if text.strip():
            self.dismiss(Composed(text, self.channel))
        else:
            self.notify(shown("nothing_to_send", self.prefs), severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)
