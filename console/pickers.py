"""Small modal dialogs: pick one of a list, or type a name."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from console.keys import with_persian_layout

STATUSES = ("new", "assigned", "awaiting_documents", "awaiting_insurer", "inspection_scheduled", "assessed",
            "awaiting_settlement", "closed", "reopened")
PRIORITIES = ("low", "normal", "high", "urgent")
AVAILABILITY = ("available", "away", "offline")  # router.assignment.AgentStatus


class Choice(ModalScreen[str | None]):
    CSS_PATH = "pickers.tcss"
    # A modal screen hides the app's keys: j/k (on either keyboard layout) are bound again here,
    # or they did nothing and enter picked the first choice ("new" for a status).
    BINDINGS = with_persian_layout([Binding("escape", "dismiss_none", "key.cancel"),
                                    Binding("j", "app.cursor_down", "key.down", show=False),
                                    Binding("k", "app.cursor_up", "key.up", show=False)])

    def __init__(self, title: str, choices: tuple[tuple[str, str], ...]) -> None:
        """`choices`: (the value dismissed with, what the agent reads)."""
        super().__init__()
        self.title_text = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text))
            yield OptionList(*(Option(Text(shown), id=value) for value, shown in self.choices))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class NamePrompt(ModalScreen[str | None]):
    CSS_PATH = "pickers.tcss"
    BINDINGS = [Binding("escape", "dismiss_none", "key.cancel")]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.title_text))
            yield Input(self.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
