"""SPF (RFC 7208): may this IP address send mail for this domain?

``check_host`` is the function of RFC 7208 section 4, asynchronous over the ``Resolver``
interface so a check never blocks the event loop and tests run without a network.
Explanations (``exp=``) are not fetched: Postel records results, it does not relay them.

Why not pyspf: it looks DNS up through a blocking module-level function, so it would block
the event loop (or need a thread per check) and could not use our resolver with its
timeouts, configurable nameservers and in-memory fake for tests.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import time
from dataclasses import dataclass, field

from postel.mailauth.dns import DnsTemporaryError, Resolver, normalize, reverse_name

# RFC 7208 4.6.4: at most 10 terms that cause DNS lookups, and at most 2 void lookups.
MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
# RFC 7208 4.6.4: at most 10 MX or PTR names are looked at per mechanism.
MAX_NAMES_PER_MECHANISM = 10

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SpfResult(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


QUALIFIERS = {
    "+": SpfResult.PASS,
    "-": SpfResult.FAIL,
    "~": SpfResult.SOFTFAIL,
    "?": SpfResult.NEUTRAL,
}


@dataclass(frozen=True)
class SpfVerdict:
    result: SpfResult
    domain: str  # the domain whose policy was checked
    reason: str = ""


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


@dataclass
class _Check:
    """State shared by one check_host() and every include/redirect it follows."""

    resolver: Resolver
    ip: IpAddress
    sender: str  # local-part@domain (postmaster@helo for the HELO identity)
    helo: str
    dns_terms: int = 0
    void_lookups: int = 0
    seen: set[str] = field(default_factory=set)

    def count_term(self) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise _PermError(f"more than {MAX_DNS_TERMS} DNS-querying terms (RFC 7208 4.6.4)")

    async def lookup(self, name: str, rdtype: str, *, void_counts: bool = True) -> list[str]:
        try:
            answers = await self.resolver.lookup(name, rdtype)
        except DnsTemporaryError as exc:
            raise _TempError(str(exc)) from None
        if not answers and void_counts:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise _PermError(f"more than {MAX_VOID_LOOKUPS} void lookups (RFC 7208 4.6.4)")
        return answers


def _valid_domain(domain: str) -> bool:
    """RFC 7208 4.3: a multi-label domain name with labels of 1 to 63 octets."""
    labels = domain.split(".")
    return len(labels) > 1 and all(0 < len(label) <= 63 for label in labels) and (
        len(domain) <= 253
    )


async def check_host(
    resolver: Resolver, ip: str, domain: str, sender: str, *, helo: str = ""
) -> SpfVerdict:
    """RFC 7208 4: evaluate `domain`'s SPF policy for a client at `ip`.

    `sender` is the MAIL FROM address, or postmaster@<helo> when checking the HELO name.
    """
    domain = normalize(domain)
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not _valid_domain(domain):
        return SpfVerdict(SpfResult.NONE, domain, "not a valid domain name")
    check = _Check(resolver, address, sender, helo)
    try:
        result = await _evaluate(check, domain)
    except _TempError as exc:
        return SpfVerdict(SpfResult.TEMPERROR, domain, str(exc))
    except _PermError as exc:
        return SpfVerdict(SpfResult.PERMERROR, domain, str(exc))
    return SpfVerdict(result[0], domain, result[1])


async def _record(check: _Check, domain: str) -> str | None:
    """RFC 7208 4.5: the one TXT record starting with "v=spf1", or None."""
    texts = await check.lookup(domain, "TXT", void_counts=False)
    records = [t for t in texts if re.match(r"(?i)v=spf1(\s|$)", t)]
    if len(records) > 1:
        raise _PermError(f"{domain} has {len(records)} SPF records")
    return records[0] if records else None


async def _evaluate(check: _Check, domain: str) -> tuple[SpfResult, str]:
    record = await _record(check, domain)
    if record is None:
        return SpfResult.NONE, f"{domain} has no SPF record"
    terms = record.split()[1:]
    redirect: str | None = None
    seen_modifiers: set[str] = set()
    mechanisms: list[tuple[str, str, str]] = []  # (qualifier, name, argument)
    for term in terms:
        modifier = re.fullmatch(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", term)
        if modifier:
            name = modifier.group(1).lower()
            if name in ("redirect", "exp"):
                if name in seen_modifiers:  # RFC 7208 6: at most once each
                    raise _PermError(f"{name}= appears twice")
                seen_modifiers.add(name)
            if name == "redirect":
                redirect = modifier.group(2)
            continue  # unknown modifiers are ignored (RFC 7208 6)
        qualifier = term[0] if term[0] in QUALIFIERS else "+"
        body = term[1:] if term[0] in QUALIFIERS else term
        name, _, argument = body.partition(":")
        if "/" in name:  # "a/24", "mx/24//64"
            name, _, cidr = name.partition("/")
            argument = f"{argument}/{cidr}" if argument else f"/{cidr}"
        mechanisms.append((qualifier, name.lower(), argument))
    for qualifier, name, argument in mechanisms:
        if await _matches(check, domain, name, argument):
            return QUALIFIERS[qualifier], f"matched {qualifier}{name}"
    if redirect is not None:
        check.count_term()
        target = await _expand(check, redirect, domain)
        if not _valid_domain(target):
            raise _PermError(f"redirect to invalid domain {target!r}")
        if target in check.seen:
            raise _PermError(f"redirect loop at {target}")
        check.seen.add(target)
        result, reason = await _evaluate(check, target)
        if result is SpfResult.NONE:  # RFC 7208 6.1
            raise _PermError(f"redirect target {target} has no SPF record")
        return result, reason
    return SpfResult.NEUTRAL, "no mechanism matched"


def _split_cidr(argument: str) -> tuple[str, int | None, int | None]:
    """"example.com/24//64" -> ("example.com", 24, 64)."""
    match = re.fullmatch(r"(.*?)(?:/(\d+))?(?://(\d+))?", argument)
    assert match is not None
    v4 = int(match.group(2)) if match.group(2) else None
    v6 = int(match.group(3)) if match.group(3) else None
    if (v4 is not None and v4 > 32) or (v6 is not None and v6 > 128):
        raise _PermError(f"bad CIDR length in {argument!r}")
    return match.group(1), v4, v6


def _in_network(ip: IpAddress, address: str, v4: int | None, v6: int | None) -> bool:
    try:
        candidate = ipaddress.ip_address(address)
    except ValueError:
        return False
    if candidate.version != ip.version:
        return False
    length = (v4 if v4 is not None else 32) if ip.version == 4 else (
        v6 if v6 is not None else 128
    )
    network = ipaddress.ip_network(f"{candidate}/{length}", strict=False)
    return ip in network


async def _matches(check: _Check, domain: str, name: str, argument: str) -> bool:
    ip = check.ip
    address_type = "A" if ip.version == 4 else "AAAA"
    if name == "all":
        return True
    if name in ("ip4", "ip6"):
        try:
            network = ipaddress.ip_network(argument, strict=False)
        except ValueError:
            raise _PermError(f"bad {name}:{argument}") from None
        if (name == "ip4") != (network.version == 4):
            raise _PermError(f"{name}:{argument} has the wrong address family")
        return ip.version == network.version and ip in network
    if name == "include":
        check.count_term()
        if not argument:
            raise _PermError("include without a domain")
        target = await _expand(check, argument, domain)
        if not _valid_domain(target):
            raise _PermError(f"include of invalid domain {target!r}")
        result, _ = await _evaluate(check, target)
        # RFC 7208 5.2: pass matches; fail, softfail and neutral do not; errors propagate.
        if result is SpfResult.TEMPERROR:
            raise _TempError(f"include:{target}: temporary error")
        if result in (SpfResult.PERMERROR, SpfResult.NONE):
            raise _PermError(f"include:{target} gave {result}")
        return result is SpfResult.PASS
    if name in ("a", "mx"):
        check.count_term()
        spec, v4, v6 = _split_cidr(argument)
        target = await _expand(check, spec, domain) if spec else domain
        if name == "a":
            hosts = [target]
        else:
            exchanges = await check.lookup(target, "MX")
            if len(exchanges) > MAX_NAMES_PER_MECHANISM:
                raise _PermError(f"{target} has more than {MAX_NAMES_PER_MECHANISM} MX hosts")
            hosts = [e.partition(" ")[2] for e in exchanges if e.partition(" ")[2] != "."]
        for host in hosts:
            for address in await check.lookup(host, address_type, void_counts=name == "a"):
                if _in_network(ip, address, v4, v6):
                    return True
        return False
    if name == "ptr":
        check.count_term()
        target = await _expand(check, argument, domain) if argument else domain
        names = await check.lookup(reverse_name(str(ip)), "PTR")
        for host in names[:MAX_NAMES_PER_MECHANISM]:
            if host != target and not host.endswith("." + target):
                continue
            addresses = await check.lookup(host, address_type, void_counts=False)
            if any(_in_network(ip, a, None, None) for a in addresses):
                return True
        return False
    if name == "exists":
        check.count_term()
        if not argument:
            raise _PermError("exists without a domain")
        target = await _expand(check, argument, domain)
        return bool(await check.lookup(target, "A"))
    raise _PermError(f"unknown mechanism {name!r}")


_MACRO = re.compile(r"%\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-|%")


async def _expand(check: _Check, spec: str, domain: str) -> str:
    """RFC 7208 7: macro expansion of a domain-spec."""
    local, _, sender_domain = check.sender.rpartition("@")
    ip = check.ip
    dotted = str(ip) if ip.version == 4 else ".".join(ip.exploded.replace(":", ""))

    def value(letter: str) -> str:
        return {
            "s": check.sender,
            "l": local or "postmaster",
            "o": sender_domain,
            "d": domain,
            "i": dotted,
            "p": "unknown",  # RFC 7208 7.3: "p" SHOULD NOT be used; unknown is allowed
            "v": "in-addr" if ip.version == 4 else "ip6",
            "h": check.helo,
            "c": str(ip),
            "r": "unknown",
            "t": str(int(time.time())),
        }[letter.lower()]

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "%%":
            return "%"
        if text == "%_":
            return " "
        if text == "%-":
            return "%20"
        if text == "%":
            raise _PermError(f"bad macro in {spec!r}")
        letter, digits, reverse, delimiters = match.groups()
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value(letter))
        if reverse:
            parts.reverse()
        if digits:
            if int(digits) == 0:
                raise _PermError(f"zero digits in macro of {spec!r}")
            parts = parts[-int(digits):]
        return ".".join(parts)

    expanded = _MACRO.sub(replace, spec)
    # RFC 7208 7.3: long results keep their rightmost labels, 253 octets at most.
    while len(expanded) > 253 and "." in expanded:
        expanded = expanded.partition(".")[2]
    return normalize(expanded)
