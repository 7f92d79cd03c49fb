"""Address rules every service shares (standard library only, so sans-IO code may use it)."""

from __future__ import annotations

import ipaddress


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8 (RFC 1122 3.2.1.3), ::1 (RFC 4291 2.5.3) and those IPv4
    addresses written IPv4-mapped, ::ffff:127.x.y.z (RFC 4291 2.5.5.2), which a dual-stack
    socket reports for an IPv4 client. Anything that is not an IP address (a host name,
    "unknown") is not loopback."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # Python before 3.13 says False for ::ffff:127.0.0.1; decide on the IPv4 address.
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def in_networks(address: str, networks: tuple[str, ...]) -> bool:
    """True when `address` lies in one of `networks` (addresses or CIDRs, validated at
    start-up); an IPv4-mapped IPv6 address counts as its IPv4 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)
