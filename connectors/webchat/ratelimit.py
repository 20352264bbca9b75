"""Per-session sliding-window rate limit for chat messages."""

from __future__ import annotations

from collections import deque


class RateLimiter:
    """At most `limit` events per `window` seconds per key (0 = unlimited). Keys idle for a
    whole window are forgotten, swept at most once a window so the check stays O(1)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._last_sweep = 0.0

    def check(self, key: str, now: float) -> float | None:
        """Records the event and returns None when allowed; else the seconds until it would be."""
        if not self.limit:
            return None
        self._sweep(now)
        events = self._events.setdefault(key, deque())
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
