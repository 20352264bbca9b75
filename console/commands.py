"""The console's commands in Textual's command palette (ctrl+p): every action reachable by name
as well as by key, "open PV-…" for the tickets on screen, and Textual's own entries (theme,
quit, keys...) — all in the agent's language. This provider stands in for Textual's own one
(`App.COMMANDS`): that one matches what the agent types against the shown name, which for a
Persian name is in display order on a terminal without bidi, so typing "پاسخ" found nothing.
Names are matched in logical order, the order the agent types, and shown in display order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.labels import say, system_command, visual


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # in logical order
    callback: Callable[[], Any]
    help: str
    discover: bool = True  # listed before anything is typed


class ConsoleCommands(Provider):
    def _commands(self) -> list[Command]:
        """Our actions (`cmd.<name>` and `cmd.<name>.help` labels), the claims on screen, and
        Textual's entries by the words Textual gives them (`labels.SYSTEM_COMMANDS`)."""
        app: Any = self.app
        prefs = app.prefs
        named = [("search", app.action_search), ("supervisor", app.action_supervisor),
                 ("reports", app.action_reports), ("keys", app.action_help)]
        screen: Any = self.screen
        named += [(action, getattr(screen, f"action_{action}")) for action in getattr(screen, "PALETTE_ACTIONS", ())]
        commands = [Command(say(f"cmd.{name}", prefs), callback, say(f"cmd.{name}.help", prefs))
                    for name, callback in named]
        commands += [Command(say("cmd.open", prefs, ref=ref), partial(app.open_ticket, ref), say("cmd.open.help", prefs))
                     for ref in getattr(screen, "palette_refs", list)()]
        commands += [Command(system_command(c.title, prefs), c.callback, system_command(c.help, prefs), c.discover)
                     for c in app.get_system_commands(screen)]
        return commands

    async def discover(self) -> Hits:
        prefs = self.app.prefs  # type: ignore[attr-defined]
        for command in self._commands():
            if command.discover:
                yield DiscoveryHit(visual(command.name, prefs), command.callback, help=visual(command.help, prefs))

    async def search(self, query: str) -> Hits:
        prefs = self.app.prefs  # type: ignore[attr-defined]
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.name)
            if score > 0:
                shown = visual(command.name, prefs)
                # The highlight marks the typed letters in logical order: only where that is the
                # order shown.
                yield Hit(score, matcher.highlight(command.name) if shown == command.name else shown,
                          command.callback, help=visual(command.help, prefs))
