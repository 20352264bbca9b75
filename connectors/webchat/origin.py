"""Which web pages may talk to the chat server and post the web form (the browser's `Origin`).

A page from one of our own host names (any port: the chat server has its own) is always
allowed: the host the request was sent to and, behind a proxy that may rewrite that, the host of
`[http] public_base_url`. `allowed_origins` adds other sites (the firm's site embedding the
widget), or "*" for any. A request without an `Origin` header is not from a browser page, so
there is no visitor to protect from a foreign site, and it is let through."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def is_origin(value: str) -> bool:
    """Whether `value` can equal a browser's Origin: http(s)://host[:port], nothing after it."""
    try:
        parts = urlsplit(normalise_origin(value))
        parts.port  # noqa: B018 - raises on a port that is no number or out of range
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or parts.path or parts.query or parts.fragment:
        return False
    # Browsers send a host in ASCII (an IDN as xn--...), never a pattern: "*.example.ir" matched none.
    return re.fullmatch(r"[a-z0-9.\-]+|[0-9a-f:.]+", parts.hostname or "") is not None


def _hostname(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # "http://[x": not a host name at all
        return ""


def own_hosts(host_header: str | None, public_base_url: str) -> frozenset[str]:
    """The host names our own pages are served from."""
    hosts = {_hostname(f"//{host_header.strip()}") if host_header else "", _hostname(public_base_url)}
    return frozenset(hosts - {""})


def origin_allowed(origin: str | None, own: Collection[str], allowed: Collection[str]) -> bool:
    if origin is None:
        return True
    origin = normalise_origin(origin)
    if "*" in allowed or origin in {normalise_origin(a) for a in allowed}:
        return True
    return _hostname(origin) in own  # "null" (a sandboxed page, a file) has no host name
