"""The checks on mail arriving on port 25, in one call: SPF for MAIL FROM and HELO, DKIM,
DMARC with alignment, the Authentication-Results header, and what to do with the message.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from postel.config import MailauthConfig
from postel.mail.address import Address
from postel.mail.mime import parse_addresses
from postel.mailauth import dkim as dkim_module
from postel.mailauth.authresults import format_header
from postel.mailauth.dmarc import Disposition, DmarcResult, DmarcVerdict, evaluate
from postel.mailauth.dns import Resolver
from postel.mailauth.headers import HeaderTooLarge, read_headers
from postel.mailauth.spf import SpfResult, SpfVerdict, check_host


class Action(enum.Enum):
    ACCEPT = "accept"
    QUARANTINE = "quarantine"  # deliver into Junk
    REJECT = "reject"  # 550 5.7.1
    DEFER = "defer"  # 451 4.7.x: try again later


@dataclass(frozen=True)
class InboundVerdict:
    action: Action
    header: bytes  # Authentication-Results, CRLF-terminated; b"" when nothing was checked
    reason: str = ""
    dmarc: DmarcVerdict | None = None


def is_trusted(ip: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def from_domains(path: Path, offset: int = 0) -> list[str]:
    """The domains (A-labels) of every address in every From header of the message in
    `path` from byte `offset` (DMARC wants exactly one)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            headers = read_headers(handle)
    except HeaderTooLarge:
        return []
    domains: list[str] = []
    for header in headers:
        if header.lower != "from":
            continue
        for address in parse_addresses(header.value):
            host = address.host
            if host:
                domains.append(Address("x", host.lower()).ascii_domain())
    return domains


def _helo_domain(helo: str) -> str | None:
    """The HELO name SPF can check: a domain, not an address literal (RFC 7208 2.3)."""
    name = helo.strip().rstrip(".").lower()
    if not name or name.startswith("[") or "." not in name:
        return None
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        return name


async def check_inbound(
    resolver: Resolver,
    config: MailauthConfig,
    authserv_id: str,
    path: Path,
    *,
    ip: str,
    helo: str,
    mail_from: str,
) -> InboundVerdict:
    """Check the message in `path` (as received, before our trace headers).

    Never raises for DNS trouble: failures become temperror results, and DEFER when they
    keep DMARC from deciding and the configuration asks for that.
    """
    if is_trusted(ip, config.trusted_networks):
        return InboundVerdict(Action.ACCEPT, b"", "trusted network")
    helo_domain = _helo_domain(helo)
    sender_domain = mail_from.rpartition("@")[2].lower() if mail_from else ""
    sender_domain = Address("x", sender_domain).ascii_domain() if sender_domain else ""

    async def spf_helo() -> SpfVerdict | None:
        if helo_domain is None:
            return None
        return await check_host(resolver, ip, helo_domain, f"postmaster@{helo_domain}",
                                helo=helo_domain)

    async def spf_mailfrom() -> SpfVerdict | None:
        if not mail_from:
            return None  # RFC 7208 2.4: a null sender is checked through its HELO name
        return await check_host(resolver, ip, sender_domain, mail_from, helo=helo)

    helo_result, mailfrom_result, dkim_results, author_domains = await asyncio.gather(
        spf_helo(),
        spf_mailfrom(),
        dkim_module.verify(resolver, path),
        asyncio.to_thread(from_domains, path),
    )
    # RFC 7489 4.1: the SPF identity is MAIL FROM, or the HELO name for a null sender.
    spf_for_dmarc = mailfrom_result or helo_result
    spf_domain = sender_domain if mailfrom_result is not None else (helo_domain or "")
    if spf_for_dmarc is None:
        spf_for_dmarc = SpfVerdict(SpfResult.NONE, "", "no identity to check")
    dmarc = await evaluate(resolver, author_domains, spf_for_dmarc, spf_domain, dkim_results)
    header = format_header(
        authserv_id,
        spf_mailfrom=mailfrom_result,
        mailfrom=mail_from,
        spf_helo=helo_result,
        helo=helo_domain or "",
        dkim=dkim_results,
        dmarc=dmarc,
    )
    action, reason = _decide(config, dmarc)
    return InboundVerdict(action, header, reason, dmarc)


def _decide(config: MailauthConfig, dmarc: DmarcVerdict) -> tuple[Action, str]:
    if dmarc.result is DmarcResult.TEMPERROR and config.defer_on_dns_error:
        return Action.DEFER, f"DMARC check of {dmarc.from_domain} failed temporarily"
    if dmarc.result is not DmarcResult.FAIL or config.dmarc_policy == "none":
        return Action.ACCEPT, ""
    reason = f"DMARC policy of {dmarc.from_domain} ({dmarc.policy}): {dmarc.reason}"
    if dmarc.disposition is Disposition.REJECT and config.dmarc_policy == "reject":
        return Action.REJECT, reason
    if dmarc.disposition in (Disposition.REJECT, Disposition.QUARANTINE):
        return Action.QUARANTINE, reason
    return Action.ACCEPT, ""
