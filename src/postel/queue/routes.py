"""Where to deliver mail for a domain: MX hosts in preference order (RFC 5321 5.1).

Equal preferences are shuffled so load spreads; no MX means the domain itself is the
implicit MX; a null MX (RFC 7505: one record "0 .") means the domain takes no mail.
``exchangers`` also says whether the resolver validated the MX answer with DNSSEC, which
REQUIRETLS asks of the MX lookup (RFC 8689 4.2.1).
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


@dataclass(frozen=True)
class Exchangers:
    hosts: list[str]  # best first
    # The MX answer carried the resolver's AD bit. Never for an address literal or the
    # implicit MX: no MX answer vouches for those.
    validated: bool


async def mail_exchangers(resolver: Resolver, domain: str) -> list[str]:
    """Host names to try, best first. Raises RouteError."""
    return (await exchangers(resolver, domain)).hosts


async def exchangers(resolver: Resolver, domain: str) -> Exchangers:
    """The hosts to try and whether DNSSEC vouched for them. Raises RouteError."""
    if domain.startswith("[") and domain.endswith("]"):  # address literal (RFC 5321 4.1.3)
        return Exchangers([domain], validated=False)
    try:
        records, validated = await resolver.lookup_validated(domain, "MX")
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
        return Exchangers([domain], validated=False)  # RFC 5321 5.1: the implicit MX
    random.shuffle(parsed)
    parsed.sort(key=lambda entry: entry[0])
    return Exchangers([host for _, host in parsed], validated)


def requiretls_refusal(mx: Exchangers, domain: str, mx_auth: str) -> RouteError | None:
    """RFC 8689 4.2.1: the MX lookup of a REQUIRETLS message must be DNSSEC-validated (or
    validated by MTA-STS, which Postel does not do); `mx_auth` "certificate" waives that
    and leaves the certificate check alone. The failure is 5.7.30 (RFC 8689 5)."""
    if mx_auth == "dnssec" and not mx.validated:
        return RouteError(f"REQUIRETLS: the MX records of {domain} are not DNSSEC-validated "
                          "by the resolver (outbound.requiretls_mx_auth)",
                          permanent=True, status="5.7.30")
    return None


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
