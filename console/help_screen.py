"""`?`: every key, in one place."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.keys import with_persian_layout
from console.labels import shown

# (key, its `help.…` label)
KEYS = (
    ("j / k", "help.move"), ("space / ctrl+u", "help.read"), ("enter", "help.open"), ("tab", "help.tab"),
    ("← / →", "help.columns"), ("r", "help.reply"), ("n", "help.note"), ("t", "help.take"), ("a", "help.assign"),
    ("s", "help.status"), ("p", "help.priority"), ("m", "help.queue"), ("c / C", "help.contact"),
    ("l", "help.link"), ("A", "help.availability"), ("/", "help.search"), ("v", "help.supervisor"),
    ("R", "help.reports"), ("ctrl+p", "help.palette"), ("esc", "help.back"), ("q", "help.quit"),
)
KEY_WIDTH = max(len(key) for key, _ in KEYS)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "pickers.tcss"
    BINDINGS = with_persian_layout([Binding("escape", "close", "key.close"),
                                    Binding("question_mark", "close", "key.close")])

    def compose(self) -> ComposeResult:
        prefs = cast(Any, self.app).prefs
        # Scrolls on a terminal too short for every key (the last ones, quit among them, must
        # not be cut off).
        with VerticalScroll(classes="dialog"):
            yield Static(Text("\n").join(Text.assemble((f"{key:>{KEY_WIDTH}}  ", "bold"), shown(what, prefs))
                                         for key, what in KEYS))

    def action_close(self) -> None:
        self.dismiss(None)
