"""Which client address the per-address limits count against (`[webchat]
new_sessions_per_ip_per_minute`, `forms_per_ip_per_hour`).

By default it is the socket peer. Behind a TLS reverse proxy every visitor's peer is the proxy,
so `trusted_proxy_header` names the header the proxy puts the visitor's address in; it is only
read when the peer is one of `trusted_proxies` (addresses or networks), because anyone else can
send any header they like.

- "X-Real-IP": the proxy sets it to the address it saw (nginx
  `proxy_set_header X-Real-IP $remote_addr;`), replacing whatever the client sent.
- "X-Forwarded-For": a list each proxy *appends* to (nginx `$proxy_add_x_forwarded_for`). The
  client can put anything in the list it sends, so only entries added by proxies we trust are
  facts: we read it from the right, skipping addresses that are themselves trusted proxies (a
  chain of proxies), and take the first other one: with one proxy, the right-most entry, the
  address that proxy saw. The left-most entry, often taken as "the client", is whatever the
  client chose to write, and trusting it would let anyone pick a fresh address per request.

A header that is missing or not an address leaves the peer (the proxy) as the address: a
misconfigured proxy makes its visitors share one limit rather than escape it.

IPv6 addresses are counted per /64 network, as one household or host is given a whole /64 and
can pick any address in it; IPv4-mapped IPv6 addresses count as the IPv4 address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HEADERS = ("X-Forwarded-For", "X-Real-IP")


def parse_address(text: str | None) -> IPAddress | None:
    """An address as a peer or a proxy header gives it ("[::1]:443" and "1.2.3.4:80" included,
    as some proxies send them), or None when it is not one (e.g. "unknown", an obfuscated
    RFC 7239 identifier)."""
    if not text:
        return None
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two colons
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # no IPv6 zone
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """`trusted_proxies` as networks ("10.0.0.5" is 10.0.0.5/32); raises ValueError on a bad one."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def limit_key(address: IPAddress | None) -> str:
    """What a limit counts by: the IPv4 address, or the IPv6 address's /64 network."""
    if address is None:
        return "?"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ClientAddress:
    def __init__(self, header: str, trusted_proxies: Iterable[str]) -> None:
        self.header = header
        self.trusted = parse_networks(trusted_proxies)

    def _trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)

    def resolve(self, peer: str | None, header_values: list[str]) -> IPAddress | None:
        """The client's address, from the socket peer and every value of the configured header
        (in the order received: several X-Forwarded-For lines are one list)."""
        address = parse_address(peer)
        if not self.header or address is None or not self._trusted(address):
            return address
        if self.header == "X-Real-IP":
            real = parse_address(header_values[-1]) if header_values else None
            return address if real is None else real
        hops = [hop for value in header_values for hop in value.split(",")]
        for hop in reversed(hops):
            forwarded = parse_address(hop)
            if forwarded is None:
                return address  # garbage where a trusted proxy's entry should be: go no further
            address = forwarded
            if not self._trusted(forwarded):
                break
        return address

    def key(self, peer: str | None, header_values: list[str]) -> str:
        """The limit key for a request (`limit_key` of `resolve`)."""
        return limit_key(self.resolve(peer, header_values))
