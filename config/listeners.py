"""The addresses the daemon listens on, and which of them would clash. Pure.

Every listener binds with asyncio (`create_server`: SO_REUSEADDR, and IPV6_ONLY on IPv6
sockets), where on Linux a wildcard address takes its port on every address of its family:
0.0.0.0 clashes with 127.0.0.1 on the same port, "::" with ::1 but not with 127.0.0.1, and ""
(no host) with both. Port 0 asks for a free port and never clashes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from config.loader import ConfigError, Settings

# What a host name binds, when the name says it without a lookup.
_NAMED = {"localhost": ("127.0.0.1", "::1")}


@dataclass(frozen=True, slots=True)
class Listener:
    key: str  # the table whose host and port it is: "http", "smtp", "webchat[chat2]"...
    host: str
    port: int


def _addresses(host: str) -> set[str]:
    """The addresses `host` binds, with "v4" and "v6" for a family's wildcard and `host` itself
    for a name we cannot resolve here."""
    host = host.strip().lower().strip("[]")
    if not host:
        return {"v4", "v6"}
    names = _NAMED.get(host, (host,))
    found: set[str] = set()
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            found.add(name)
            continue
        family = f"v{address.version}"
        found.add(family if address.is_unspecified else str(address))
    return found


def overlap(a: str, b: str) -> bool:
    """Whether listeners on hosts `a` and `b` cannot both bind one port."""
    first, second = _addresses(a), _addresses(b)
    return bool(first & second) or _covered(first, second) or _covered(second, first)


def _covered(wildcards: set[str], addresses: set[str]) -> bool:
    """Whether a family wildcard in `wildcards` takes one of `addresses` (a name, either family)."""
    for address in addresses:
        family = address if address in ("v4", "v6") else _family(address)
        if family in wildcards or (family is None and wildcards & {"v4", "v6"}):
            return True
    return False


def _family(address: str) -> str | None:
    try:
        return f"v{ipaddress.ip_address(address).version}"
    except ValueError:
        return None


def connector_listeners(settings: Settings) -> list[Listener]:
    """The [http] front and every connector instance that declares its own sockets."""
    found = [Listener("http", settings.http.host, settings.http.port)]
    for kind, name, conf in settings.connector_instances():
        label = kind if name == kind else f"{kind}[{name}]"
        found += [Listener(label, host, port) for host, port in conf.listens_on()]
    return found


def check_listeners(listeners: Iterable[Listener]) -> None:
    """Raise ConfigError naming the first two listeners that would take the same address."""
    seen: list[Listener] = []
    for listener in listeners:
        if listener.port == 0:
            continue
        for other in seen:
            if other.port == listener.port and overlap(other.host, listener.host):
                raise ConfigError(
                    f"{listener.key}.port = {listener.port} (host {listener.host!r}): {other.key} listens on "
                    f"{other.host!r} port {other.port} already; expected another port (or two distinct addresses "
                    "of the host; 0.0.0.0 takes the port on every IPv4 address)")
        seen.append(listener)
