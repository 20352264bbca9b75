"""Waiting on what a stand-in recorded: tests and the demo wait until a far end has seen N things."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def wait_for_count(items: list[T], count: int, changed: asyncio.Event, timeout: float) -> list[T]:
    """`items` once it holds `count` entries (the stand-in sets `changed` whenever it records one);
    TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while len(items) < count:
            changed.clear()
            await changed.wait()
    return items
