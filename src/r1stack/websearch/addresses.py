"""Which IP addresses the proxy may open a connection to: public ones, plus the CIDRs an operator trusts.

Host names are resolved once, through an injectable resolver, and the fetcher connects to the address checked
here; nothing resolves the name a second time, so DNS rebinding cannot slip a private address in between.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], list[IPAddress]]

# Instance-metadata endpoints hand out cloud credentials; they stay closed even inside a trusted CIDR.
CLOUD_METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
)
# IPv6 prefixes that carry an IPv4 address in their low bits (NAT64 well-known and local-use prefixes).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def system_resolver(host: str) -> list[IPAddress]:
    """All addresses the operating system gives for `host`, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(seen)


def parse_cidrs(values: Iterable[str], what: str) -> tuple[IPNetwork, ...]:
    """CIDR strings to networks; a bad one raises ValueError naming the option (`what`) it came from."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{what}: {value!r} is not a CIDR; write it like 10.0.0.0/8 or fd00::/8"
            ) from None
    return tuple(networks)


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in _NAT64):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if int(addr) >> 32 == 0 and int(addr) > 1:  # deprecated IPv4-compatible form ::a.b.c.d
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _address_class(addr: IPAddress) -> str | None:
    """The name of the non-public class `addr` falls in, or None when it is a public address."""
    for label, hit in (
        ("loopback", addr.is_loopback),
        ("unspecified", addr.is_unspecified),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("private", addr.is_private),
        ("reserved", addr.is_reserved),
    ):
        if hit:
            return label
    if not addr.is_global:  # e.g. carrier-grade NAT 100.64.0.0/10
        return "non-public"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Refuses every address that is not public, except inside `trusted` (never metadata, never IPv4-mapped)."""

    trusted: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> AddressPolicy:
        return cls(trusted=parse_cidrs(cidrs, "trusted CIDR"))

    def refusal(self, addr: IPAddress) -> str | None:
        """Why a connection to `addr` is refused, or None when it is allowed."""
        if addr in CLOUD_METADATA:
            return f"{addr} is a cloud metadata address"
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                return f"{addr} is an IPv4-mapped IPv6 address"
            inner = _embedded_ipv4(addr)
            if inner is not None and (inner in CLOUD_METADATA or _address_class(inner) is not None):
                return f"{addr} embeds the non-public IPv4 address {inner}"
            if inner is not None and any(addr in net for net in _NAT64):
                return None  # DNS64 networks reach public IPv4 sites this way; the embedded address decides
        if any(addr.version == net.version and addr in net for net in self.trusted):
            return None
        label = _address_class(addr)
        return None if label is None else f"{addr} is a {label} address"
