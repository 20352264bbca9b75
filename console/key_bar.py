"""The key legend at the foot of a screen. Textual's Footer rebuilds a widget per key on every
screen switch, which cost more than the rest of opening a ticket; this is one Static, drawn when
the screen opens and again when its width changes.

Every key the screen shows is on it: on a narrow terminal (80 columns) the legend wraps onto a
second line, key by key, rather than losing the keys at its end (Supervisor, Reports, Quit)."""

from __future__ import annotations

from rich.cells import cell_len
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

    def __init__(self) -> None:
        super().__init__()
        self._drawn_for: int | None = None

    def on_mount(self) -> None:
        self.call_after_refresh(self.show_keys)

    def on_resize(self) -> None:
        if self._drawn_for is not None and self._drawn_for != self.size.width:
            self.show_keys()

    def keys(self, gap: str = "  ") -> list[Text]:
        """One legend item per key the screen shows, in binding order, each ending in `gap`."""
        items = []
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show:
                continue
            label = binding.key_display or self.app.get_key_display(binding)
            items.append(Text.assemble((f" {label} ", "bold reverse"), f" {binding.description}{gap}"))
        return items

    def show_keys(self) -> None:
        width = self.size.width or self.app.size.width
        self._drawn_for = self.size.width
        items = self.keys()
        if cell_len("".join(item.plain for item in items).rstrip()) > width:
            tight = self.keys(gap=" ")  # one line still, if a space less between keys does it
            if cell_len("".join(item.plain for item in tight).rstrip()) <= width:
                items = tight
        lines: list[Text] = [Text()]
        for item in items:
            # The gap that ends an item may fall off the end of a line.
            if lines[-1].cell_len and lines[-1].cell_len + cell_len(item.plain.rstrip()) > width:
                lines.append(Text())
            lines[-1].append_text(item)
        for line in lines:
            if line.cell_len > width:
                line.rstrip()
        self.update(Text("\n").join(lines))
        # Set from the lines: with `height: auto` the bar kept one line when the legend first wrapped.
        self.styles.height = len(lines)
