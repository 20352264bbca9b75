"""Sliding-window rate limits: chat messages per session, new chat sessions and web-form
submissions per client address (see `clientaddr.py` for what the address is)."""

from __future__ import annotations

import math
from collections import deque

# Keys remembered at most, per limiter: a flood of distinct keys (addresses, sessions) costs a
# bounded amount of memory (about 1.5 KiB a key: 15 MiB at most), not whatever the flood sends.
MAX_KEYS = 10_000


class RateLimiter:
    """At most `limit` events per `window` seconds per key (0 = unlimited). Keys idle for a
    whole window are forgotten, swept at most once a window so the check stays O(1). At most
    `max_keys` keys are kept: past that the least recently seen key is forgotten, so a flood of
    distinct keys errs towards letting an old key through again, never towards refusing a new
    one."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}  # least recently seen first
        self._last_sweep = 0.0

    def __len__(self) -> int:
        return len(self._events)

    def check(self, key: str, now: float) -> float | None:
        """Records the event and returns None when allowed; else the seconds until it would be."""
        if not self.limit:
            return None
        self._sweep(now)
        events = self._events.pop(key, None)
        if events is None:
            events = deque()
            while len(self._events) >= self.max_keys:
                del self._events[next(iter(self._events))]
        self._events[key] = events  # (re)inserted last: the most recently seen
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.window - now
        events.append(now)
        return None

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self.window:
            return
        self._last_sweep = now
        for key in [k for k, events in self._events.items() if not events or events[-1] <= now - self.window]:
            del self._events[key]


def retry_after_header(seconds: float) -> str:
    """An HTTP Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
