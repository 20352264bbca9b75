"""Where an IMAP poller got to in one mailbox: UIDVALIDITY and the highest UID below which
every message was accepted and marked processed. A small JSON file per connector instance,
replaced atomically, so a restart resumes without re-reading the whole folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass(frozen=True, slots=True)
class MailboxState:
    host: str
    username: str
    folder: str
    uidvalidity: int
    last_uid: int = 0

    def same_mailbox(self, other: MailboxState) -> bool:
        """Same account and folder, and UIDs still mean the same messages (RFC 3501 2.3.1.1)."""
        return (self.host, self.username, self.folder, self.uidvalidity) == (
            other.host, other.username, other.folder, other.uidvalidity)

    def advanced_to(self, uid: int) -> MailboxState:
        return replace(self, last_uid=max(self.last_uid, uid))


def load_state(path: Path) -> MailboxState | None:
    """The saved state, or None when there is none or it cannot be read (a fresh start is
    safe: unprocessed messages are found by their missing mark, and the core drops redeliveries)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return MailboxState(host=str(data["host"]), username=str(data["username"]), folder=str(data["folder"]),
                            uidvalidity=int(data["uidvalidity"]), last_uid=int(data["last_uid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_state(path: Path, state: MailboxState) -> None:
    """Write-then-rename with fsync: after a crash the file is the old state or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(asdict(state), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
