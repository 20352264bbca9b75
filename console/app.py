"""The agent console: a Textual app that is a client of the agent API only.

Screens push themselves; the app owns the API client, turns pushed events into `ApiEvent`
messages and hands them down to every screen on the stack that shows live data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

from textual.app import App
from textual.binding import Binding
from textual.command import Provider
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input
from websockets.exceptions import InvalidURI

from console.client import AgentClient, ApiRequestError, AuthenticationError
from console.commands import ConsoleCommands
from console.keys import localise_bindings, with_persian_layout
from console.labels import refusal, shown, shown_term, term, visual
from console.render import Prefs, parse_time


class ApiEvent(Message):
    """An event pushed by the agent API (or a resync request)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__()
        self.payload = payload


class ConnectionState(Message):
    def __init__(self, state: str) -> None:
        super().__init__()
        self.state = state


@runtime_checkable
class LiveScreen(Protocol):
    def apply_event(self, payload: dict[str, Any]) -> None: ...


# Timeline events that pop up a console alert (named by `alert.<kind>` labels): who sees it.
SLA_ALERTS = {"sla_warning": "all", "sla_breached": "all", "supervisor_alert": "supervisors"}


class ConsoleApp(App[None]):
    CSS_PATH = "app.tcss"
    # Textual's own entries included, in the agent's language (console/commands.py).
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {ConsoleCommands}
    BINDINGS = with_persian_layout([
        Binding("j", "cursor_down", "key.down", show=False),
        Binding("k", "cursor_up", "key.up", show=False),
        Binding("question_mark", "help", "key.help"),
        Binding("slash", "search", "key.search"),
        Binding("v", "supervisor", "key.supervisor"),
        Binding("R", "reports", "key.reports"),
        Binding("A", "availability", "key.availability", show=False),  # listed in help (?)
        Binding("q", "quit", "key.quit"),
    ])

    def __init__(self, url: str, token: str, prefs: Prefs | None = None, *,
                 client: AgentClient | None = None, clock: Callable[[], datetime] | None = None) -> None:
        """`client` and `clock` are for tests that render fixed data (snapshots)."""
        super().__init__()
        self.prefs = prefs or Prefs()
        self.title = shown("title", self.prefs)
        localise_bindings(self, self.prefs)
        self.client = client or AgentClient(url, token)
        self.client.on_event = lambda e: self.post_message(ApiEvent(e))
        self.client.on_state = lambda s: self.post_message(ConnectionState(s))
        self.connection = "connecting"
        self._clock = clock
        self._clock_offset = timedelta(0)

    @property
    def agent(self) -> dict[str, Any]:
        return self.client.agent

    def now(self) -> datetime:
        """The daemon's idea of now (SLA countdowns must not depend on this machine's clock)."""
        return self._clock() if self._clock else datetime.now(UTC) + self._clock_offset

    async def on_mount(self) -> None:
        from console.main_screen import MainScreen

        try:
            await self.client.connect()
        except (AuthenticationError, OSError, InvalidURI) as exc:
            # Not 0: a script or service manager must see that the console never logged in.
            self.exit(return_code=1, message=shown("login_failed", self.prefs, error=str(exc)))
            return
        self.connection = "connected"
        server_now = parse_time(self.client.server_now)
        if server_now is not None:
            self._clock_offset = server_now - datetime.now(UTC)
        await self.push_screen(MainScreen())

    def push_screen(self, screen: Any, *args: Any, **kwargs: Any) -> Any:
        """Every screen is pushed here (`push_screen_wait` too): its keys are described in the
        agent's language before the key bar reads them."""
        if isinstance(screen, Screen):
            localise_bindings(screen, self.prefs)
        return super().push_screen(screen, *args, **kwargs)

    async def on_unmount(self) -> None:
        await self.client.close()

    def on_api_event(self, message: ApiEvent) -> None:
        if not self.is_running:  # shutting down: the screens' widgets are being removed
            return
        for screen in self.screen_stack:
            # A screen pushed but not yet mounted has no widgets to update; its own first load,
            # after mounting, reads what this event reports.
            if isinstance(screen, LiveScreen) and screen.is_mounted:
                screen.apply_event(message.payload)
        kind = message.payload.get("kind", "")
        audience = SLA_ALERTS.get(kind)
        if audience and (audience == "all" or self.client.agent.get("role") in ("supervisor", "admin")):
            # Only the ticket reference and the clock: never customer text in a toast.
            clock = message.payload.get("data", {}).get("clock", "")
            alert = shown("sla_alert", self.prefs, ref=message.payload.get("ticket", ""),
                          alert=term("alert", kind, self.prefs), clock=term("clock", clock, self.prefs) if clock else "")
            self.notify(alert.strip(), severity="error" if kind == "sla_breached" else "warning", timeout=10)

    def on_connection_state(self, message: ConnectionState) -> None:
        self.connection = message.state
        for screen in self.screen_stack:
            getattr(screen, "connection_changed", lambda: None)()
        if message.state != "connected":
            self.notify(shown("connection", self.prefs, state=term("state", message.state, self.prefs)),
                        severity="warning")

    async def api(self, op: str, **args: Any) -> Any:
        """A request; a refusal is shown to the agent and re-raised for the caller to stop."""
        try:
            return await self.client.request(op, **args)
        except ApiRequestError as exc:  # in the agent's language, or the server's words
            self.notify(visual(refusal(exc.reason, exc.params, str(exc), self.prefs), self.prefs), severity="error",
                        timeout=6)
            raise
        except ConnectionError:
            self.notify(shown("not_connected", self.prefs), severity="error", timeout=6)
            raise

    # -- keys that work everywhere -----------------------------------------------------------

    def action_cursor_down(self) -> None:
        getattr(self.focused, "action_cursor_down", lambda: None)()

    def action_cursor_up(self) -> None:
        getattr(self.focused, "action_cursor_up", lambda: None)()

    def action_help(self) -> None:
        from console.help_screen import HelpScreen

        self.push_screen(HelpScreen())

    def action_search(self) -> None:
        from console.search_screen import SearchScreen

        # `/` among the results edits the query: a search pushed on a search needed an `esc` each.
        if isinstance(self.screen, SearchScreen):
            self.screen.query_one(Input).focus()
        else:
            self.push_screen(SearchScreen())

    def action_reports(self) -> None:
        from console.reports_screen import ReportsScreen

        if self.agent.get("role") not in ("supervisor", "admin"):
            self.notify(shown("needs_supervisor.reports", self.prefs), severity="warning")
        elif not isinstance(self.screen, ReportsScreen):  # shown already: not a second one on top
            self.push_screen(ReportsScreen())

    def action_supervisor(self) -> None:
        from console.supervisor_screen import SupervisorScreen

        if self.agent.get("role") not in ("supervisor", "admin"):
            self.notify(shown("needs_supervisor.view", self.prefs), severity="warning")
        elif not isinstance(self.screen, SupervisorScreen):  # shown already: not a second one on top
            self.push_screen(SupervisorScreen())

    def action_availability(self) -> None:
        from console.pickers import AVAILABILITY, Choice

        async def chosen(status: str | None) -> None:
            if status is None:
                return
            result = await self.api("availability", status=status)
            handed = len(result.get("reassigned", []))
            named = term("availability", status, self.prefs)
            self.notify(shown("you_are_moved", self.prefs, status=named, count=handed) if handed
                        else shown("you_are", self.prefs, status=named), timeout=6)

        self.push_screen(Choice(shown("your_availability", self.prefs), self.choices("availability", AVAILABILITY)),
                         chosen)

    def choices(self, group: str, values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """(value, as the agent reads it) for a picker."""
        return tuple((value, shown_term(group, value, self.prefs)) for value in values)

    def open_ticket(self, ref: str) -> None:
        from console.ticket_screen import TicketScreen

        self.push_screen(TicketScreen(ref))


def run_console(url: str, token: str, prefs: Prefs | None = None) -> int:
    """`python run.py console --url ws://... --token ...`; returns the exit status."""
    app = ConsoleApp(url, token, prefs)
    app.run()
    if app.return_code:
        return app.return_code
    return 0
