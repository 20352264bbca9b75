"""The console's letter keys also work with the Persian keyboard layout on (ISIRI 9147, the
standard one): an agent who has just typed a Persian reply should not have to switch layouts to
press `j` or `r`. The aliases are hidden from the key bar, which lists each key once.

A binding's description is a `key.…` label of `console.labels`; `localise_bindings` gives a node's own
copy of its bindings the description in the agent's language."""

from __future__ import annotations

from dataclasses import replace

from textual.binding import Binding
from textual.dom import DOMNode

from console.labels import shown
from console.render import Prefs

# Latin key -> what the same physical key types on the standard Persian layout.
PERSIAN_LAYOUT = {
    "q": "ض", "w": "ص", "e": "ث", "r": "ق", "t": "ف", "y": "غ", "u": "ع", "i": "ه", "o": "خ", "p": "ح",
    "a": "ش", "s": "س", "d": "ی", "f": "ب", "g": "ل", "h": "ا", "j": "ت", "k": "ن", "l": "م",
    "z": "ظ", "x": "ط", "c": "ز", "v": "ر", "b": "ذ", "n": "د", "m": "پ", "question_mark": "arabic_question_mark",
    # Shifted letters (xkb `ir`, ISIRI 9147): shift+a types ؤ, shift+r the fathatan mark.
    "A": "ؤ", "R": "arabic_fathatan", "C": "ژ",
}


def with_persian_layout(bindings: list[Binding]) -> list[Binding]:
    """`bindings` and, for each single-key one the Persian layout types differently, a hidden alias."""
    aliases = [Binding(PERSIAN_LAYOUT[b.key], b.action, b.description, show=False, priority=b.priority)
               for b in bindings if b.key in PERSIAN_LAYOUT]
    return [*bindings, *aliases]


def localise_bindings(node: DOMNode, prefs: Prefs) -> None:
    """`node`'s bindings described in the agent's language. Each instance has its own map of
    keys (`_bindings`), but the lists in it are the class's: they are replaced, never changed
    in place, or the first console's language would stick to the class. A description that is
    no `key.…` label (Textual's own bindings, or one localised already) stays."""
    mapping = node._bindings.key_to_bindings
    for key, bindings in mapping.items():
        mapping[key] = [replace(b, description=shown(b.description, prefs)) if b.description.startswith("key.") else b
                        for b in bindings]
