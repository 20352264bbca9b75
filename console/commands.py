"""The console's own commands in Textual's command palette (ctrl+p): every action reachable
by name as well as by key, and "open PV-…" for the tickets on screen."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ConsoleCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        commands = [
            ("Search claims", app.action_search, "claim reference, phone, email, national id, text"),
            ("Supervisor view", app.action_supervisor, "agents, load and breaches"),
            ("Reports", app.action_reports, "opened, closed, response times, SLA compliance, channel mix"),
            ("Keys", app.action_help, "every key of the console"),
        ]
        screen: Any = self.screen
        for name, action, help_text in getattr(screen, "PALETTE_ACTIONS", ()):
            commands.append((name, getattr(screen, f"action_{action}"), help_text))
        for ref in getattr(screen, "palette_refs", lambda: [])():
            commands.append((f"Open {ref}", partial(app.open_ticket, ref), "open this claim"))
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
