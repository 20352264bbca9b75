"""What the console shows before it changes who a claim belongs to: a contact as a card (name,
identities, claims), the prompts that name both sides of a link or merge, and the yes/no dialog.
Everything is rich Text built with `safe_text`: names and identities are customer text."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console.keys import with_persian_layout
from console.render import Prefs, safe_text

CLAIMS_LISTED = 5  # a card names this many claims, then counts the rest


def contact_name(profile: dict[str, Any], prefs: Prefs) -> Text:
    """`#12 علی رضایی`: the id tells two contacts of the same name apart."""
    return Text.assemble((f"#{profile['id']} ", "bold"),
                         safe_text(profile.get("display_name") or "(no name)", prefs, single_line=True, style="bold"))


def identity_text(identity: dict[str, Any], prefs: Prefs) -> Text:
    return Text.assemble(f"{identity['kind']}: ", safe_text(identity["value"], prefs, single_line=True))


def contact_card(profile: dict[str, Any], prefs: Prefs) -> Text:
    """The contact, its identities one a line, and its claims."""
    lines = [contact_name(profile, prefs)]
    lines += [Text.assemble("    ", identity_text(i, prefs)) for i in profile["identities"]]
    refs = [c["ref"] for c in profile.get("claims", [])]
    if refs:
        more = f" and {len(refs) - CLAIMS_LISTED} more" if len(refs) > CLAIMS_LISTED else ""
        lines.append(Text(f"    claims: {', '.join(refs[:CLAIMS_LISTED])}{more}", style="dim"))
    else:
        lines.append(Text("    no claims of its own", style="dim"))
    return Text("\n").join(lines)


def link_prompt(found: dict[str, Any], ref: str, prefs: Prefs) -> Text:
    """The `message_sender` answer as the question: link this sender's contact into the claim's."""
    return Text("\n").join([
        Text(f"Link the sender of this message to the contact of {ref}?", style="bold"),
        Text.assemble("The sender, ", identity_text(found["identity"], prefs), ", is contact"),
        contact_card(found["sender"], prefs),
        Text("It joins the claim's contact (kept):"),
        contact_card(found["claim"], prefs),
        Text(f"Its identities and claims move over; replies on {ref} go to it too. Undo: C, then u.", style="dim"),
    ])


def merge_prompt(keep: dict[str, Any], merge: dict[str, Any], reason: str, prefs: Prefs) -> Text:
    """A duplicate suggestion as the question: fold `merge` into `keep`."""
    return Text("\n").join([
        Text(f"Merge these two contacts ({reason})?", style="bold"),
        contact_card(merge, prefs),
        Text("joins (kept):"),
        contact_card(keep, prefs),
        Text("Its identities, claims and notes move over. Undo: u on the merge.", style="dim"),
    ])


class Confirm(ModalScreen[bool]):
    """Yes or no to a change named in full; anything but yes leaves things as they are."""

    DEFAULT_CSS = """
    Confirm {
        align: center middle;
    }
    Confirm .dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    """
    BINDINGS = with_persian_layout([
        Binding("y", "answer(True)", "Yes"),
        Binding("enter", "answer(True)", "Yes", show=False),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ])

    def __init__(self, prompt: Text) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.prompt, id="confirm-prompt")
            yield Static(Text.assemble(("\n y ", "bold reverse"), " yes   ", (" n ", "bold reverse"), " no (esc)"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
