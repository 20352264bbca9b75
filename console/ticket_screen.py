"""One ticket: the whole cross-channel thread in time order (messages, notes, status and
delivery events, attachments), the contact panel, and the keys to answer and act on it."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from console.app import ConsoleApp
from console.key_bar import KeyBar
from console.client import ApiRequestError
from console.composer import Composer
from console.crm import Confirm, link_prompt
from console.keys import with_persian_layout
from console.labels import refusal, say, shown, shown_term
from console.templates import fill
from console.render import Prefs, countdown, safe_text
from console.thread_view import PAGE, ThreadView
from console.ticket_actions import TicketActions


def reply_options(offered: list[dict[str, Any]], prefs: Prefs) -> list[tuple[Text, str]]:
    """The composer's channel choices: each of the server's `reply_channels` with whom it reaches."""
    return [(Text.assemble(f"{shown_term('channel', r['channel'], prefs)} → ",
                           safe_text(r["recipient"], prefs, single_line=True)),
             r["channel"]) for r in offered]


class ContactPanel(Static):
    """The customer: names, identities and their other claims, cut to the panel's width (in
    logical order, so a Persian name or subject keeps its beginning)."""

    def __init__(self, prefs: Prefs, ref: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prefs = prefs
        self.ref = ref
        self.panel: dict[str, Any] | None = None
        self._drawn_for = 0

    def show(self, panel: dict[str, Any] | None) -> None:
        self.panel = panel
        self._draw()

    def on_resize(self) -> None:
        if self.size.width != self._drawn_for:
            self._draw()

    def _draw(self) -> None:
        self._drawn_for = self.size.width
        width = max(self.size.width, 12)
        prefs, panel = self.prefs, self.panel
        if panel is None:
            self.update(Text(shown("no_contact", prefs)))
            return
        lines = [safe_text(panel["display_name"] or say("no_name", prefs), prefs, single_line=True, style="bold",
                           limit=width)]
        if panel.get("organisation"):
            lines.append(safe_text(panel["organisation"], prefs, single_line=True, limit=width))
        lines.append(Text(shown("identities", prefs), style="underline"))
        for i in panel["identities"]:
            kind = shown_term("kind", i["kind"], prefs)
            lines.append(Text.assemble(f"{kind}: ", safe_text(i["value"], prefs, single_line=True,
                                                              limit=width - len(kind) - 2)))
        lines.append(Text(shown("claims", prefs), style="underline"))
        for t in panel["tickets"]:
            lines.append(Text.assemble((t["ref"], "bold" if t["ref"] == self.ref else ""),
                                       f" {shown_term('status', t['status'], prefs)}"))
            lines.append(Text.assemble("  ", safe_text(t["subject"], prefs, single_line=True, limit=width - 2)))
        lines.append(Text.assemble(("\n C ", "bold reverse"), (shown("contact_screen_hint", prefs), "dim")))
        self.update(Text("\n").join(lines))


class TicketScreen(TicketActions):
    PALETTE_ACTIONS = TicketActions.PALETTE_ACTIONS + (
        "reply", "note", "toggle_contact", "copy_bot_link", "link_sender", "contact_screen")
    CSS_PATH = "ticket_screen.tcss"
    # Below 100 columns the contact panel is hidden (`c` shows it): the thread gets the width.
    WIDE = 100
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    COUNTDOWN_SECONDS = 30.0  # the SLA countdown in the header is redrawn this often
    BINDINGS = with_persian_layout([
        Binding("escape", "back", "key.back"),
        Binding("r", "reply", "key.reply"),
        Binding("n", "note", "key.note"),
        Binding("t", "take", "key.take"),
        Binding("a", "assign", "key.assign"),
        Binding("s", "status", "key.status"),
        Binding("p", "priority", "key.priority"),
        Binding("m", "move", "key.move"),
        Binding("c", "toggle_contact", "key.contact"),
        # Off the key bar (at 80 columns it would take a line of the thread): the marked message
        # names `l`, the contact panel `C`; both are in help (?) and the command palette.
        Binding("C", "contact_screen", "key.contact_screen", show=False),
        Binding("l", "link_sender", "key.link_sender", show=False),
    ])

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref
        self.detail: dict[str, Any] | None = None
        self._wide: bool | None = None

    @property
    def console(self) -> ConsoleApp:
        return cast(ConsoleApp, self.app)

    def selected_ref(self) -> str | None:
        return self.ref

    def compose(self) -> ComposeResult:
        yield Static(id="ticket-header")
        with Horizontal():
            yield ThreadView(self.console.prefs, id="thread")
            with VerticalScroll(id="contact-pane"):
                yield ContactPanel(self.console.prefs, self.ref, id="contact")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(ThreadView).focus()
        self.load()
        self.set_interval(self.COUNTDOWN_SECONDS, self._tick)

    def _tick(self) -> None:
        # The due time stays; the time left to it does not (an agent keeps a claim open for long).
        if self.detail is not None:
            self._header(self.detail)

    @work(exclusive=True, group="ticket")
    async def load(self) -> None:
        try:
            detail = await self.console.api("open_ticket", ref=self.ref, limit=PAGE)
        except (ApiRequestError, ConnectionError):
            self.app.pop_screen()
            return
        if self.is_attached:  # not left while the ticket was on its way
            self.show(detail)

    def show(self, detail: dict[str, Any]) -> None:
        self.detail = detail
        self.workers.cancel_group(self, "earlier")  # a page asked for the thread shown before
        self.query_one(ThreadView).show_thread(detail["messages"], detail["timeline"], detail.get("earlier", 0))
        self._header(detail)
        self._contact(detail.get("contact_panel"))

    def on_thread_view_need_earlier(self) -> None:
        self.load_earlier()

    @work(exclusive=True, group="earlier")
    async def load_earlier(self) -> None:
        thread = self.query_one(ThreadView)
        try:
            page = await self.console.api("thread", ref=self.ref, before=thread.oldest_message_id(), limit=PAGE)
        except (ApiRequestError, ConnectionError):
            return
        if not self.is_attached:
            return
        thread.add_earlier(page["messages"], page["timeline"], page["earlier"])

    def on_resize(self) -> None:
        # The thread lays itself out again when its own width changes (`ThreadView.on_resize`).
        wide = self.size.width >= self.WIDE
        if wide != self._wide:  # across the breakpoint, the panel is as the new width has it
            self._wide = wide
            self.remove_class("-contact-on", "-contact-off")
        if self.detail is not None:
            self._header(self.detail)

    def action_toggle_contact(self) -> None:
        """Show the contact panel if hidden (as it is by default below WIDE columns), else hide it."""
        shown = self.query_one("#contact-pane").display
        self.set_class(not shown, "-contact-on")
        self.set_class(shown, "-contact-off")

    def _header(self, t: dict[str, Any]) -> None:
        prefs = self.console.prefs
        room = max(16, self.size.width - len(t["reference"]) - 5)
        self.query_one("#ticket-header", Static).update(Text.assemble(
            (f" {t['reference']} ", "bold reverse"), " ",
            safe_text(t["subject"], prefs, single_line=True, style="bold", limit=room),
            # Field by field, each label reordered on its own: the line reads left to right in either language.
            "\n ", (shown_term("status", t["status"], prefs), "bold"),
            f" · {shown_term('priority', t['priority'], prefs)} · {t['queue']}"
            f" · {shown('header_assignee', prefs, assignee=t['assignee'] or '-')} · {shown('col.sla', prefs)} ",
            countdown(t.get("sla_due_at"), t.get("sla_warn_at"), self.console.now(), prefs),
            (shown("merged_into", prefs, ref=t["merged_into"]) if t.get("merged_into") else ""),
        ))

    def _contact(self, panel: dict[str, Any] | None) -> None:
        self.query_one(ContactPanel).show(panel)

    # -- live --------------------------------------------------------------------------------

    def apply_event(self, payload: dict[str, Any]) -> None:
        if payload.get("type") == "resync":
            self.load()
            return
        if payload.get("ticket") != self.ref or self.detail is None:
            return
        if payload.get("kind") == "merged_from":  # another ticket's thread joined this one: show it
            self.load()
            return
        thread = self.query_one(ThreadView)
        if payload.get("message") is not None:
            thread.add_message(payload["message"])
            if payload["message"]["direction"] == "in":
                self.refresh_reply_channels()
        else:
            thread.add_event({"at": payload["at"], "kind": payload["kind"], "actor": payload["actor"], **payload["data"]})
        if payload.get("summary"):
            self.detail.update(payload["summary"])
            self._header(self.detail)

    # -- answering ---------------------------------------------------------------------------

    @property
    def messages(self) -> dict[str, dict[str, Any]]:
        return self.query_one(ThreadView).messages

    def reply_channel(self) -> str | None:
        """The channel to preselect: the highlighted customer message's when a reply can go on
        it (to the claim's contact, whoever wrote that message), else the server's default."""
        offered = (self.detail or {}).get("reply_channels") or []
        highlighted = self.query_one(ThreadView).highlighted_message()
        if highlighted and highlighted["direction"] == "in" and any(r["channel"] == highlighted["channel"] for r in offered):
            return highlighted["channel"]
        return next((r["channel"] for r in offered if r["default"]), None)

    @work
    async def action_reply(self) -> None:
        if self.detail is None:
            return
        # Exactly where the server will send (`reply_routes`): nothing offered that it refuses.
        offered = self.detail.get("reply_channels") or []
        prefs = self.console.prefs
        if not offered:
            why = refusal(self.detail.get("no_reply_code"), self.detail.get("no_reply_params") or {},
                          self.detail.get("no_reply_reason") or "", prefs)
            self.notify(shown("no_reply_channel", prefs, reason=why), severity="warning", timeout=8)
            return
        result = await self.app.push_screen_wait(Composer(
            shown("reply_to", prefs, ref=self.ref), reply_options(offered, prefs), self.reply_channel(),
            await self._templates()))
        if result is not None:
            await self._act("reply", ref=self.ref, text=result.text, channel=result.channel)

    @work(exclusive=True, group="reply-channels")
    async def refresh_reply_channels(self) -> None:
        """A customer wrote: a reply may go on a channel it could not before, or by default on another."""
        try:
            found = await self.console.api("reply_channels", ref=self.ref)
        except (ApiRequestError, ConnectionError):
            return
        if self.is_attached and self.detail is not None:
            self.detail.update(found)

    async def _templates(self) -> list[tuple[str, str]]:
        """The configured reply templates, filled for this ticket."""
        detail = self.detail or {}
        values = {"ref": self.ref, "customer": (detail.get("contact") or {}).get("name") or "",
                  "agent": self.app.agent.get("name", ""), "subject": detail.get("subject") or ""}
        listed = await self.app.api("templates")
        return [(t["name"], fill(t["text"], values)) for t in listed["templates"]]

    @work
    async def action_note(self) -> None:
        result = await self.app.push_screen_wait(Composer(shown("note_on", self.console.prefs, ref=self.ref), [], None))
        if result is not None:
            await self._act("note", ref=self.ref, text=result.text)

    def action_copy_bot_link(self) -> None:
        links = (self.detail or {}).get("bot_links") or []
        if not links:
            self.notify(shown("no_bot_link", self.console.prefs), severity="warning")
            return
        urls = "\n".join(link["url"] for link in links)
        self.app.copy_to_clipboard(urls)
        self.notify(f"{shown('copied', self.console.prefs)}\n{urls}", timeout=10)

    # -- CRM -------------------------------------------------------------------------------

    def action_contact_screen(self) -> None:
        from console.contact_screen import ContactScreen

        panel = (self.detail or {}).get("contact_panel")
        if panel is None:
            self.notify(shown("no_claim_contact", self.console.prefs), severity="warning")
            return
        self.app.push_screen(ContactScreen(panel["id"]), self._contact_changed)

    def _contact_changed(self, changed: bool | None) -> None:
        if changed:  # a merge, undo or split there: the panel and the thread's marks here
            self.load()

    @work(exclusive=True, group="link")
    async def action_link_sender(self) -> None:
        """The highlighted message's sender joins the claim's contact (a merge, keeping the
        claim's), after a confirmation naming both; the API refuses agents without the role."""
        message = self.query_one(ThreadView).highlighted_message()
        if message is None or message.get("from_contact") is None:
            self.notify(shown("highlight_message", self.console.prefs), severity="warning")
            return
        if message["from_contact"]:
            self.notify(shown("already_contact", self.console.prefs), timeout=4)
            return
        try:
            found = await self.console.api("message_sender", ref=self.ref, message=message["id"])
        except (ApiRequestError, ConnectionError):  # the refusal is shown by `api`
            return
        if found["claim"] is None or found["sender"]["id"] == found["claim"]["id"]:
            self.load()  # linked meanwhile (or the claim has no contact): show it as it is
            return
        if not await self.app.push_screen_wait(Confirm(link_prompt(found, self.ref, self.console.prefs))):
            return
        try:
            result = await self.console.api("merge_contacts", keep=found["claim"]["id"], merge=found["sender"]["id"])
        except (ApiRequestError, ConnectionError):
            return
        self.notify(shown("linked", self.console.prefs, sender=found["sender"]["id"], claim=found["claim"]["id"],
                          merge=result["merge"]), timeout=8)
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
