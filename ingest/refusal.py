"""The base of the refusals the agent API answers with: the server's English words, for logs
and any client, plus a stable `reason` and the `params` the words name, from which a client says
the refusal in the agent's own language (the console's `error.<reason>` labels)."""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """A request that cannot be done as asked. `reason` empty: a refusal no client words
    itself (a malformed request, an operator's command), shown as the server words it."""

    code = "invalid"  # the agent API's answer code

    def __init__(self, message: str, reason: str = "", **params: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.params = params

    def answer(self) -> dict[str, Any]:
        """The refusal's fields of an agent API answer."""
        named = {"reason": self.reason, "params": self.params} if self.reason else {}
        return {"code": self.code, "error": str(self), **named}
