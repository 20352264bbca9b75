"""Signed bot deep links as the daemon hands them out (router/deeplink.py signs and checks):
the store's key, and the bots whose links are known.

The key is generated once per store and kept in it (`store_keys`): nothing to configure or to
forget, it lives exactly as long as the claims its links name (a link mailed last year still
vouches after any number of restarts), and two firms' stores never share one. Deleting the row
makes a new key at the next use: every link handed out before then stops vouching (it still
threads onto its claim).
"""

from __future__ import annotations

import secrets

from ingest.records import BotLink
from ingest.store import Store, Tx
from router.deeplink import start_parameter

KEY_NAME = "deep_link"


def deep_link_key(tx: Tx) -> bytes:
    """The store's deep-link key, made on first use (a write operation)."""
    row = tx.one("SELECT value FROM store_keys WHERE name = ?", (KEY_NAME,))
    if row is not None:
        return bytes(row["value"])
    key = secrets.token_bytes(32)
    tx.execute("INSERT INTO store_keys (name, value, created_at) VALUES (?, ?, ?)", (KEY_NAME, key, tx.stamp))
    return key


async def read_deep_link_key(store: Store) -> bytes:
    """The key for a read (the agent API); b"" until some write made it (the daemon does at start)."""
    row = await store.fetchone("SELECT value FROM store_keys WHERE name = ?", (KEY_NAME,))
    return bytes(row["value"]) if row else b""


class BotLinks:
    """The bots a customer can be sent to, as they become known: a connector learns its bot's
    username (getMe) after it started. Read on the store writer's thread, so the tuple is
    replaced whole, never changed in place."""

    def __init__(self) -> None:
        self.bots: tuple[BotLink, ...] = ()

    def add(self, link: BotLink) -> None:
        self.bots = (*(b for b in self.bots if b.connector != link.connector), link)

    def for_claim(self, key: bytes, ref: str, *, besides: str = "") -> list[BotLink]:
        """Each bot's signed link to claim `ref` (in `url`), but for bots on channel `besides`
        (a customer already writing to us there has no use for one)."""
        return [BotLink(b.connector, b.channel, b.scope, f"{b.url}{start_parameter(key, b.scope, ref)}")
                for b in self.bots if key and b.channel != besides]
