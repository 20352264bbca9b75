"""A one-line key legend. Textual's Footer rebuilds a widget per key on every screen switch,
which cost more than the rest of opening a ticket; this is one Static drawn once per screen."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
    }
    """

    def on_mount(self) -> None:
        self.call_after_refresh(self.show_keys)

    def show_keys(self) -> None:
        legend = Text()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show:
                continue
            label = binding.key_display or self.app.get_key_display(binding)
            legend.append(f" {label} ", "bold reverse")
            legend.append(f" {binding.description}  ")
        self.update(legend)
