"""How a poller marks a message it has committed, and how it finds the ones still unmarked.

    processed = "flag"               keyword $Parvandeh (the default)
    processed = "flag:\\Seen"        a system flag: \\Seen, \\Flagged or \\Answered
    processed = "flag:$Claims"       any IMAP keyword
    processed = "move:Parvandeh"     move the message to that folder (created when missing)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DEFAULT_KEYWORD = "$Parvandeh"
# System flag → the SEARCH key matching messages that lack it (RFC 3501 6.4.4).
SYSTEM_FLAG_UNSET = {"\\Seen": "UNSEEN", "\\Flagged": "UNFLAGGED", "\\Answered": "UNANSWERED"}
_KEYWORD = re.compile(r'^[^\s(){%*"\\\]\x00-\x1f\x7f]+$')  # an IMAP atom


@dataclass(frozen=True, slots=True)
class ProcessedMark:
    action: Literal["flag", "move"]
    target: str  # the flag or keyword, or the destination folder

    @classmethod
    def parse(cls, spec: str) -> ProcessedMark:
        action, _, target = spec.partition(":")
        if action == "flag":
            flag = target or DEFAULT_KEYWORD
            if flag in SYSTEM_FLAG_UNSET or (_KEYWORD.match(flag) and not flag.startswith("\\")):
                return cls("flag", flag)
            raise ValueError(f"flag {flag!r} is not an IMAP keyword or one of {', '.join(SYSTEM_FLAG_UNSET)}")
        if action == "move" and target.strip():
            return cls("move", target.strip())
        raise ValueError('"flag", "flag:KEYWORD" (e.g. "flag:\\\\Seen") or "move:FOLDER"')

    def unprocessed_criteria(self) -> list[str]:
        """SEARCH criteria for messages not yet marked. A moved message has left the folder,
        so there everything present is unprocessed."""
        if self.action == "move":
            return ["ALL"]
        if self.target in SYSTEM_FLAG_UNSET:
            return [SYSTEM_FLAG_UNSET[self.target]]
        return ["NOT", "KEYWORD", self.target]
