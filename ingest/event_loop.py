"""Runs the daemon on the event loop the config names: uvloop (the default) or the stdlib's.

uvloop does the loop's own work (sockets, transports, timers, callback scheduling) in C on
libuv; the daemon's Python is unchanged. On the webhook benchmark it took ~1,130 to ~1,300-1,440
webhooks/s (docs/decisions.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from config.loader import EventLoopName

T = TypeVar("T")


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop  # only where chosen: the config check has made sure it is installed

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: EventLoopName) -> T:
    """`asyncio.run(main)` on a new loop of the named kind."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
