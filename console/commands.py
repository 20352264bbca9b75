"""The console's own commands in Textual's command palette (ctrl+p): every action reachable
by name as well as by key, and "open PV-…" for the tickets on screen."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.labels import shown


class ConsoleCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        """(name, callback, help) in the agent's language: `cmd.<name>` and `cmd.<name>.help` labels."""
        app: Any = self.app
        prefs = app.prefs
        named = [("search", app.action_search), ("supervisor", app.action_supervisor),
                 ("reports", app.action_reports), ("keys", app.action_help)]
        screen: Any = self.screen
        named += [(action, getattr(screen, f"action_{action}")) for action in getattr(screen, "PALETTE_ACTIONS", ())]
        commands = [(shown(f"cmd.{name}", prefs), callback, shown(f"cmd.{name}.help", prefs))
                    for name, callback in named]
        for ref in getattr(screen, "palette_refs", lambda: [])():
            commands.append((shown("cmd.open", prefs, ref=ref), partial(app.open_ticket, ref),
                             shown("cmd.open.help", prefs)))
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
