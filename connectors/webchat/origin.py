"""Which web pages may talk to the chat server and post the web form (the browser's `Origin`).

With no allow-list, a page served from the same host name as the request (any port: the chat
server has its own) is allowed. A request without an `Origin` header is not from a browser page,
so there is no visitor to protect from a foreign site, and it is let through."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _hostname(host_header: str) -> str:
    return (urlsplit(f"//{host_header.strip()}").hostname or "").lower()


def origin_allowed(origin: str | None, host_header: str | None, allowed: Collection[str]) -> bool:
    if origin is None:
        return True
    origin = normalise_origin(origin)
    if allowed:
        return "*" in allowed or origin in {normalise_origin(a) for a in allowed}
    if origin == "null" or not host_header:
        return False
    return (urlsplit(origin).hostname or "") == _hostname(host_header)
