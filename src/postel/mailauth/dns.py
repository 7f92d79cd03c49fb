"""The DNS resolver interface SPF, DKIM, DMARC and MX routing use, with two implementations:
``DnsResolver`` (dnspython, asynchronous, with timeouts) and ``FakeResolver`` (in memory,
for tests without a network).

Answers are plain strings so callers never see dnspython types. An empty list means the
name or the type does not exist (NXDOMAIN or NODATA); ``DnsTemporaryError`` means the
answer is unknown (timeout, SERVFAIL, no resolver reachable) and the caller should report a
temporary result rather than a negative one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.nameserver
import dns.resolver
import dns.reversename

from postel.config import DnsConfig, nameserver_address

# RFC 6761 / RFC 2606 names that never exist on the public internet. Without an explicitly
# configured resolver they are answered locally, so a test setup never leaks queries.
RESERVED_SUFFIXES = ("test", "example", "invalid", "localhost")

RDTYPES = ("A", "AAAA", "MX", "TXT", "PTR", "CNAME", "SRV")


class DnsTemporaryError(Exception):
    """The lookup failed for now (timeout, SERVFAIL); the answer is unknown."""


class Resolver(Protocol):
    async def lookup(self, name: str, rdtype: str) -> list[str]:
        """A/AAAA: addresses; MX: "PREF HOST"; TXT: each record's strings joined;
        PTR/CNAME: host names without the trailing dot. [] when nothing exists."""
        ...

    async def lookup_validated(self, name: str, rdtype: str) -> tuple[list[str], bool]:
        """`lookup`, and whether the resolver vouched for the answer with the AD bit
        (RFC 4035 3.2.3): DNSSEC-validated. Only as good as the resolver: trust it only
        when [dns] nameservers is a validating resolver on a path nobody can tamper with
        (a local unbound). An empty answer is never called validated."""
        ...


def normalize(name: str) -> str:
    return name.rstrip(".").lower()


def reverse_name(ip: str) -> str:
    return normalize(dns.reversename.from_address(ip).to_text())


def is_reserved(name: str) -> bool:
    return normalize(name).rpartition(".")[2] in RESERVED_SUFFIXES


class DnsResolver:
    """dnspython's asynchronous resolver with one overall timeout per lookup."""

    def __init__(self, config: DnsConfig) -> None:
        self._explicit = bool(config.nameservers)
        if self._explicit:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*nameserver_address(text))
                for text in config.nameservers
            ]
        else:
            resolver = dns.asyncresolver.Resolver()
        # RFC 6840 5.7: AD in the query asks a validating resolver to say whether the
        # answer was validated (lookup_validated), without the cost of DO and signatures.
        resolver.flags = dns.flags.RD | dns.flags.AD
        resolver.lifetime = config.timeout
        resolver.timeout = min(config.timeout, 2.0)
        resolver.cache = dns.resolver.LRUCache(4096)
        self._resolver = resolver

    async def lookup(self, name: str, rdtype: str) -> list[str]:
        return (await self.lookup_validated(name, rdtype))[0]

    async def lookup_validated(self, name: str, rdtype: str) -> tuple[list[str], bool]:
        if rdtype not in RDTYPES:
            raise ValueError(f"unsupported record type {rdtype}")
        name = normalize(name)
        if not name:
            return [], False
        if not self._explicit and is_reserved(name):
            raise DnsTemporaryError(
                f"{name} is a reserved name (RFC 6761); set [dns] nameservers to resolve it"
            )
        try:
            answer = await self._resolver.resolve(name + ".", rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], False
        except dns.resolver.NoNameservers as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: no server answered ({exc})") from None
        except dns.exception.Timeout:
            raise DnsTemporaryError(f"{name} {rdtype}: timed out") from None
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: {exc}") from None
        validated = bool(answer.response.flags & dns.flags.AD)
        return [_text(rdata, rdtype) for rdata in answer], validated


def _text(rdata: object, rdtype: str) -> str:
    if rdtype == "TXT":
        strings: Iterable[bytes] = rdata.strings  # type: ignore[attr-defined]
        return b"".join(strings).decode("utf-8", "replace")
    if rdtype == "MX":
        exchange = normalize(rdata.exchange.to_text())  # type: ignore[attr-defined]
        return f"{rdata.preference} {exchange or '.'}"  # type: ignore[attr-defined]
    if rdtype in ("PTR", "CNAME"):
        return normalize(rdata.target.to_text())  # type: ignore[attr-defined]
    if rdtype == "SRV":  # "PRIORITY WEIGHT PORT TARGET", "." for a disabled service
        target = normalize(rdata.target.to_text()) or "."  # type: ignore[attr-defined]
        return (f"{rdata.priority} {rdata.weight} "  # type: ignore[attr-defined]
                f"{rdata.port} {target}")  # type: ignore[attr-defined]
    return str(ipaddress.ip_address(rdata.address))  # type: ignore[attr-defined]


class FakeResolver:
    """In-memory records for tests: add(name, type, value); fail(name) makes every lookup
    of that name a temporary error; names in `validated` answer as DNSSEC-validated.
    Counts lookups so tests can check limits."""

    def __init__(self, records: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.failing: set[str] = set()
        self.validated: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        for (name, rdtype), values in (records or {}).items():
            for value in values:
                self.add(name, rdtype, value)

    def add(self, name: str, rdtype: str, value: str) -> None:
        self.records.setdefault((normalize(name), rdtype), []).append(value)

    def fail(self, name: str) -> None:
        self.failing.add(normalize(name))

    async def lookup(self, name: str, rdtype: str) -> list[str]:
        name = normalize(name)
        self.queries.append((name, rdtype))
        if name in self.failing:
            raise DnsTemporaryError(f"{name} {rdtype}: SERVFAIL (fake)")
        return list(self.records.get((name, rdtype), []))

    async def lookup_validated(self, name: str, rdtype: str) -> tuple[list[str], bool]:
        found = await self.lookup(name, rdtype)
        return found, bool(found) and normalize(name) in self.validated
