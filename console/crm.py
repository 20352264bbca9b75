"""What the console shows before it changes who a claim belongs to: a contact as a card (name,
identities, claims), the prompts that name both sides of a link or merge, and the yes/no dialog.
Everything is rich Text built with `safe_text`: names and identities are customer text."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console.keys import with_persian_layout
from console.labels import say, shown, shown_term
from console.render import Prefs, neutralise, safe_text

CLAIMS_LISTED = 5  # a card names this many claims, then counts the rest


def contact_name(profile: dict[str, Any], prefs: Prefs) -> Text:
    """`#12 علی رضایی`: the id tells two contacts of the same name apart."""
    return Text.assemble((f"#{profile['id']} ", "bold"),
                         safe_text(profile.get("display_name") or say("no_name", prefs), prefs, single_line=True,
                                   style="bold"))


def identity_text(identity: dict[str, Any], prefs: Prefs) -> Text:
    return Text.assemble(f"{shown_term('kind', identity['kind'], prefs)}: ",
                         safe_text(identity["value"], prefs, single_line=True))


def identity_words(identity: dict[str, Any], prefs: Prefs) -> str:
    """`identity_text` in logical order, neutralised, for a sentence reordered whole."""
    return f"{shown_term('kind', identity['kind'], prefs)}: {neutralise(identity['value'])}"


def contact_card(profile: dict[str, Any], prefs: Prefs) -> Text:
    """The contact, its identities one a line, and its claims."""
    lines = [contact_name(profile, prefs)]
    lines += [Text.assemble("    ", identity_text(i, prefs)) for i in profile["identities"]]
    refs = [c["ref"] for c in profile.get("claims", [])]
    listed = ", ".join(refs[:CLAIMS_LISTED])
    if len(refs) > CLAIMS_LISTED:
        lines.append(Text(shown("card_claims_more", prefs, refs=listed, count=len(refs) - CLAIMS_LISTED), style="dim"))
    elif refs:
        lines.append(Text(shown("card_claims", prefs, refs=listed), style="dim"))
    else:
        lines.append(Text(shown("card_no_claims", prefs), style="dim"))
    return Text("\n").join(lines)


def link_prompt(found: dict[str, Any], ref: str, prefs: Prefs) -> Text:
    """The `message_sender` answer as the question: link this sender's contact into the claim's."""
    return Text("\n").join([
        Text(shown("link_question", prefs, ref=ref), style="bold"),
        # The sender's identity is customer text inside the sentence: the line is reordered whole.
        safe_text(say("link_sender_is", prefs, identity=identity_words(found["identity"], prefs)), prefs,
                  single_line=True),
        contact_card(found["sender"], prefs),
        Text(shown("link_joins", prefs)),
        contact_card(found["claim"], prefs),
        Text(shown("link_moves", prefs, ref=ref), style="dim"),
    ])


def merge_prompt(keep: dict[str, Any], merge: dict[str, Any], reason: str, prefs: Prefs) -> Text:
    """A duplicate suggestion as the question: fold `merge` into `keep`."""
    return Text("\n").join([
        Text(shown("merge_question", prefs, reason=reason), style="bold"),
        contact_card(merge, prefs),
        Text(shown("merge_joins", prefs)),
        contact_card(keep, prefs),
        Text(shown("merge_moves", prefs), style="dim"),
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
        Binding("y", "answer(True)", "key.yes"),
        Binding("enter", "answer(True)", "key.yes", show=False),
        Binding("n", "answer(False)", "key.no"),
        Binding("escape", "answer(False)", "key.no", show=False),
    ])

    def __init__(self, prompt: Text) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.prompt, id="confirm-prompt")
            prefs = cast(Any, self.app).prefs
            yield Static(Text.assemble(("\n y ", "bold reverse"), shown("confirm_yes", prefs), (" n ", "bold reverse"),
                                       shown("confirm_no", prefs)))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
