"""Take, assign, status, priority and queue: the same keys on the list and in the ticket view."""

from __future__ import annotations

from typing import Any, cast

from textual import work
from textual.screen import Screen

from console.app import ConsoleApp
from console.client import ApiRequestError
from console.labels import shown, term
from console.pickers import PRIORITIES, STATUSES, Choice, NamePrompt


class TicketActions(Screen[Any]):
    """Mixed into screens that have a current ticket (`selected_ref`)."""

    # Actions in the command palette, named by their `cmd.<action>` labels.
    PALETTE_ACTIONS: tuple[str, ...] = ("take", "assign", "status", "priority", "move")

    def selected_ref(self) -> str | None:
        raise NotImplementedError

    @property
    def _console(self) -> ConsoleApp:
        return cast(ConsoleApp, self.app)

    async def _act(self, op: str, **args: Any) -> None:
        try:
            await self._console.api(op, **args)
        except (ApiRequestError, ConnectionError):
            return
        prefs = self._console.prefs
        self.notify(shown("done", prefs, op=term("op", op, prefs), ref=args.get("ref", "")), timeout=2)

    async def action_take(self) -> None:
        if ref := self.selected_ref():
            await self._act("take", ref=ref)

    @work
    async def action_assign(self) -> None:
        ref = self.selected_ref()
        if not ref:
            return
        name = await self.app.push_screen_wait(NamePrompt(shown("assign_to", self._console.prefs, ref=ref),
                                                          self._console.agent.get("name", "")))
        if name is None:
            return
        if name.strip():
            await self._act("assign", ref=ref, agent=name.strip())
        else:
            await self._act("unassign", ref=ref)

    @work
    async def action_status(self) -> None:
        if ref := self.selected_ref():
            status = await self.app.push_screen_wait(
                Choice(shown("status_of", self._console.prefs, ref=ref), self._console.choices("status", STATUSES)))
            if status:
                await self._act("set_status", ref=ref, status=status)

    @work
    async def action_priority(self) -> None:
        if ref := self.selected_ref():
            priority = await self.app.push_screen_wait(
                Choice(shown("priority_of", self._console.prefs, ref=ref), self._console.choices("priority", PRIORITIES)))
            if priority:
                await self._act("set_priority", ref=ref, priority=priority)

    @work
    async def action_move(self) -> None:
        if not (ref := self.selected_ref()):
            return
        try:
            queues = (await self._console.api("queue_names"))["queues"]
        except (ApiRequestError, ConnectionError):
            return
        # Queue names are the firm's own, shown as configured.
        queue = await self.app.push_screen_wait(Choice(shown("move_to", self._console.prefs, ref=ref),
                                                       tuple((q, q) for q in queues)))
        if queue:
            await self._act("set_queue", ref=ref, queue=queue)
