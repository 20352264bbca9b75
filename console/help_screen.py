"""`?`: every key, in one place."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.keys import with_persian_layout

KEYS = (
    ("j / k", "move down / up"), ("space / ctrl+u", "read on / back in a long message"),
    ("enter", "open the queue or ticket"), ("tab", "queues ↔ tickets"), ("← / →", "the list's other columns"),
    ("r", "reply on the channel of the highlighted message"), ("n", "internal note"), ("t", "take the ticket"),
    ("a", "assign (empty: back to the queue)"), ("s", "change status"), ("p", "change priority"),
    ("m", "move to another queue"),
    ("c / C", "contact panel / contact screen (merge, undo, split)"),
    ("l", "link a stranger's message to the claim's contact"),
    ("A", "your availability (available, away, offline)"), ("/", "search"), ("v", "supervisor view"),
    ("R", "reports (supervisors)"), ("ctrl+p", "command palette"), ("esc", "back"), ("q", "quit"),
)
KEY_WIDTH = max(len(key) for key, _ in KEYS)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "pickers.tcss"
    BINDINGS = with_persian_layout([Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close")])

    def compose(self) -> ComposeResult:
        # Scrolls on a terminal too short for every key (the last ones, quit among them, must
        # not be cut off).
        with VerticalScroll(classes="dialog"):
            yield Static(Text("\n").join(Text.assemble((f"{key:>{KEY_WIDTH}}  ", "bold"), what) for key, what in KEYS))

    def action_close(self) -> None:
        self.dismiss(None)
