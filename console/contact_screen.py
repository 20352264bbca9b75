"""One contact (`C` in the ticket view): identities, claims, duplicate suggestions and merges,
with the supervisor's CRM actions on the highlighted line: merge a suggested duplicate into this
contact, undo a merge, split an identity off. Each asks first, naming both sides; the agent API
refuses them to agents without the role, and the console shows its refusal.

Dismissed with whether anything changed, so the ticket view beneath reloads its contact."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.app import ConsoleApp
from console.client import ApiRequestError
from console.crm import (
    Confirm,
    contact_card,
    contact_name,
    identity_text,
    identity_words,
    merge_prompt,
)
from console.key_bar import KeyBar
from console.keys import with_persian_layout
from console.labels import say, shown, shown_term
from console.render import Prefs, safe_text, when


def _section(title: str, prefs: Prefs) -> Option:
    return Option(Text(shown(title, prefs), style="bold underline"), disabled=True)


def _aside(text: str, prefs: Prefs) -> Option:
    return Option(Text(f"  ({shown(text, prefs)})", style="dim"), disabled=True)


class ContactScreen(Screen[bool]):
    DEFAULT_CSS = """
    #contact-header {
        height: auto;
        background: $primary-background;
        padding: 0 1;
    }
    #contact-items {
        height: 1fr;
        border: none;
    }
    """
    BINDINGS = with_persian_layout([
        Binding("escape", "back", "key.back"),
        Binding("m", "merge", "key.merge"),
        Binding("u", "undo", "key.undo"),
        Binding("x", "split", "key.split"),
        Binding("g", "reload", "key.refresh"),
    ])

    def __init__(self, contact_id: int) -> None:
        super().__init__()
        self.contact_id = contact_id
        self.profile: dict[str, Any] | None = None
        # Option id -> what the line stands for: ("identity", {...}), ("claim", ref),
        # ("duplicate", (other profile, reason)), ("merge", {...}).
        self.lines: dict[str, tuple[str, Any]] = {}
        self.changed = False

    @property
    def console(self) -> ConsoleApp:
        return cast(ConsoleApp, self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="contact-header")
        yield OptionList(id="contact-items")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.action_reload()

    @work(exclusive=True, group="contact")
    async def action_reload(self) -> None:
        try:
            profile = await self.console.api("contact", contact=self.contact_id)
            duplicates = await self._duplicates() if self._supervisor else None
        except (ApiRequestError, ConnectionError):  # shown by `api`
            if self.profile is None:
                self.dismiss(self.changed)
            return
        if self.is_attached:
            self.show(profile, duplicates)

    @property
    def _supervisor(self) -> bool:
        return self.console.agent.get("role") in ("supervisor", "admin")

    async def _duplicates(self) -> list[tuple[dict[str, Any], str, str]]:
        """The suggestions naming this contact, each as (the other contact, reason, value)."""
        suggestions = (await self.console.api("duplicates"))["suggestions"]
        found = []
        for s in suggestions:
            if self.contact_id in s["contact_ids"]:
                for other in s["contact_ids"]:
                    if other != self.contact_id:
                        found.append((await self.console.api("contact", contact=other), s["reason"], s["value"]))
        return found

    def show(self, profile: dict[str, Any], duplicates: list[tuple[dict[str, Any], str, str]] | None) -> None:
        prefs = self.console.prefs
        self.profile = profile
        header = [contact_name(profile, prefs)]
        details = [profile.get("organisation") or "", profile.get("role") or "", ", ".join(profile.get("tags") or [])]
        if any(details):
            header.append(safe_text(" · ".join(d for d in details if d), prefs, single_line=True))
        if profile.get("merged_into"):
            header.append(Text(shown("contact_merged_into", prefs, id=profile["merged_into"]), style="bold yellow"))
        self.query_one("#contact-header", Static).update(Text("\n").join(header))

        self.lines = {}
        options = [_section("section.identities", prefs)]
        for ident in profile["identities"]:
            options.append(self._line(f"i{ident['id']}", ("identity", ident), Text.assemble(
                "  ", identity_text(ident, prefs), (shown("since", prefs, when=when(ident["created_at"], prefs)), "dim"))))
        options.append(_section("section.claims", prefs))
        for claim in profile["claims"]:
            options.append(self._line(f"t{claim['ref']}", ("claim", claim["ref"]), Text.assemble(
                "  ", (claim["ref"], "bold"), f"  {shown_term('status', claim['status'], prefs)}  {claim['queue']}  ",
                safe_text(claim["subject"] or "", prefs, single_line=True))))
        options.append(_section("section.duplicates", prefs))
        if not duplicates:
            options.append(_aside("none" if duplicates is not None else "supervisors_only", prefs))
        for n, (other, reason, value) in enumerate(duplicates or []):
            options.append(self._line(f"d{n}", ("duplicate", (other, reason)), Text.assemble(
                f"  {reason}: ", safe_text(value, prefs, single_line=True), "  ", contact_card(other, prefs))))
        options.append(_section("section.merges", prefs))
        if not profile["merges"]:
            options.append(_aside("none", prefs))
        for merge in reversed(profile["merges"]):  # the newest first: the one to undo is at hand
            options.append(self._line(f"g{merge['id']}", ("merge", merge), self._merge_text(merge)))
        items = self.query_one(OptionList)
        highlighted = items.highlighted
        items.set_options(options)
        if highlighted is not None and highlighted < items.option_count:
            items.highlighted = highlighted
        else:
            items.action_first()

    def _line(self, option_id: str, what: tuple[str, Any], prompt: Text) -> Option:
        self.lines[option_id] = what
        return Option(prompt, id=option_id)

    def _merge_text(self, merge: dict[str, Any]) -> Text:
        prefs = self.console.prefs
        if merge["kept_id"] == self.contact_id:
            what = say("merge_in", prefs, id=merge["merged_id"])
        else:
            what = say("merge_out", prefs, id=merge["kept_id"])
        undone = shown("undone", prefs, when=when(merge["undone_at"], prefs)) if merge["undone_at"] else ""
        return Text.assemble(shown("merge_line", prefs, when=when(merge["at"], prefs), what=what),
                             safe_text(merge["actor"], prefs, single_line=True),
                             (undone, "dim"), style="dim" if undone else "")

    def highlighted_line(self) -> tuple[str, Any] | None:
        option = self.query_one(OptionList).highlighted_option
        return self.lines.get(option.id or "") if option is not None else None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        what = self.lines.get(event.option.id or "")
        if what is not None and what[0] == "claim":
            self.console.open_ticket(what[1])

    # -- the CRM actions ---------------------------------------------------------------------

    async def _change(self, question: Text, op: str, **args: Any) -> Any:
        """Ask; on yes, the request (a refusal is shown by `api`); then show the contact as it is."""
        if not await self.app.push_screen_wait(Confirm(question)):
            return None
        try:
            result = await self.console.api(op, **args)
        except (ApiRequestError, ConnectionError):
            return None
        self.changed = True
        self.action_reload()
        return result

    @work(exclusive=True, group="change")
    async def action_merge(self) -> None:
        what = self.highlighted_line()
        if self.profile is None or what is None or what[0] != "duplicate":
            self.notify(shown("highlight_duplicate", self.console.prefs), severity="warning")
            return
        other, reason = what[1]
        result = await self._change(merge_prompt(self.profile, other, reason, self.console.prefs),
                                    "merge_contacts", keep=self.contact_id, merge=other["id"])
        if result is not None:
            self.notify(shown("merged", self.console.prefs, other=other["id"], contact=self.contact_id,
                              merge=result["merge"]))

    @work(exclusive=True, group="change")
    async def action_undo(self) -> None:
        """The highlighted merge, else the newest one into this contact not undone yet."""
        if self.profile is None:
            return
        what = self.highlighted_line()
        merges = [what[1]] if what is not None and what[0] == "merge" else [
            m for m in reversed(self.profile["merges"]) if m["kept_id"] == self.contact_id]
        merge = next((m for m in merges if not m["undone_at"]), None)
        if merge is None:
            self.notify(shown("no_merge_to_undo", self.console.prefs), severity="warning")
            return
        prefs = self.console.prefs
        question = Text("\n").join([
            Text(shown("undo_question", prefs, merge=merge["id"]), style="bold"),
            Text(shown("undo_explained", prefs, merged=merge["merged_id"], kept=merge["kept_id"])),
        ])
        result = await self._change(question, "undo_contact_merge", merge=merge["id"])
        if result is not None:
            self.notify(shown("undone_notice", prefs, merge=merge["id"], contact=result["restored"]))

    @work(exclusive=True, group="change")
    async def action_split(self) -> None:
        what = self.highlighted_line()
        if self.profile is None or what is None or what[0] != "identity":
            self.notify(shown("highlight_identity", self.console.prefs), severity="warning")
            return
        ident, prefs = what[1], self.console.prefs
        question = Text("\n").join([
            # The identity is customer text inside the sentence: the line is reordered whole.
            safe_text(say("split_question", prefs, identity=identity_words(ident, prefs)), prefs, single_line=True,
                      style="bold"),
            contact_card(self.profile, prefs),
            Text(shown("split_explained", prefs)),
        ])
        result = await self._change(question, "split_identity", identity=ident["id"])
        if result is not None:
            self.notify(shown("split_done", prefs, contact=result["contact"]))

    def action_back(self) -> None:
        self.dismiss(self.changed)
