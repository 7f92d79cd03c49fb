"""Where to deliver mail for a domain: MX hosts in preference order (RFC 5321 5.1).

Equal preferences are shuffled so load spreads; no MX means the domain itself is the
implicit MX; a null MX (RFC 7505: one record "0 .") means the domain takes no mail.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from postel.mailauth.dns import DnsTemporaryError, Resolver


class RouteError(Exception):
    def __init__(self, message: str, *, permanent: bool, status: str) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status  # RFC 3463 enhanced status for a DSN


@dataclass(frozen=True)
class Host:
    name: str
    addresses: tuple[str, ...]


async def mail_exchangers(resolver: Resolver, domain: str) -> list[str]:
    """Host names to try, best first. Raises RouteError."""
    if domain.startswith("[") and domain.endswith("]"):  # address literal (RFC 5321 4.1.3)
        return [domain]
    try:
        records = await resolver.lookup(domain, "MX")
    except DnsTemporaryError as exc:
        raise RouteError(f"MX lookup for {domain}: {exc}", permanent=False,
                         status="4.4.3") from None
    parsed: list[tuple[int, str]] = []
    for record in records:
        preference, _, host = record.partition(" ")
        if preference.isdigit() and host:
            parsed.append((int(preference), host))
    if any(host == "." for _, host in parsed):
        # RFC 7505 3: a null MX says the domain accepts no mail: fail at once (5.1.10).
        raise RouteError(f"{domain} accepts no mail (null MX, RFC 7505)", permanent=True,
                         status="5.1.10")
    if not parsed:
        return [domain]  # RFC 5321 5.1: the implicit MX
    random.shuffle(parsed)
    parsed.sort(key=lambda entry: entry[0])
    return [host for _, host in parsed]


async def addresses(resolver: Resolver, host: str) -> list[str]:
    """IPv6 then IPv4 addresses of one host. Raises DnsTemporaryError."""
    if host.startswith("[") and host.endswith("]"):
        literal = host[1:-1].removeprefix("IPv6:")
        try:
            return [str(ipaddress.ip_address(literal))]
        except ValueError:
            return []
    found: list[str] = []
    errors: list[str] = []
    for rdtype in ("AAAA", "A"):
        try:
            found += await resolver.lookup(host, rdtype)
        except DnsTemporaryError as exc:
            errors.append(str(exc))
    if not found and errors:
        raise DnsTemporaryError("; ".join(errors))
    return found
