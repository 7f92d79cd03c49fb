"""DMARC (RFC 7489): does the From domain's owner vouch for this message?

A message passes when SPF or DKIM passes for a domain aligned with the From header's
domain. The organizational domain (RFC 7489 3.2) is approximated without the Public
Suffix List: the last two labels, or three under a known two-label public suffix.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from postel.mailauth.dkim import DkimResult, DkimVerdict
from postel.mailauth.dns import DnsTemporaryError, Resolver, normalize
from postel.mailauth.spf import SpfResult, SpfVerdict

# Public suffixes of two labels that are common in mail; the rest of the world is treated
# as "the registrable domain is the last two labels".
TWO_LABEL_SUFFIXES = frozenset(
    f"{second}.{tld}"
    for tld, seconds in {
        "uk": ("co", "org", "ac", "gov", "ltd", "plc", "me", "net", "nhs", "sch"),
        "au": ("com", "net", "org", "edu", "gov", "asn", "id"),
        "nz": ("co", "org", "net", "ac", "govt", "school"),
        "jp": ("co", "ne", "or", "ac", "go", "ad", "ed", "gr", "lg"),
        "br": ("com", "net", "org", "gov", "edu"),
        "za": ("co", "org", "net", "gov", "ac"),
        "in": ("co", "net", "org", "gov", "ac", "edu", "res"),
        "cn": ("com", "net", "org", "gov", "edu", "ac"),
        "kr": ("co", "ne", "or", "go", "ac"),
        "il": ("co", "org", "net", "ac", "gov"),
        "mx": ("com", "org", "gob", "edu", "net"),
        "tr": ("com", "net", "org", "gov", "edu"),
        "tw": ("com", "net", "org", "gov", "edu"),
        "hk": ("com", "net", "org", "gov", "edu"),
        "sg": ("com", "net", "org", "gov", "edu"),
    }.items()
    for second in seconds
)


def organizational_domain(domain: str) -> str:
    labels = normalize(domain).split(".")
    keep = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """RFC 7489 3.1: strict needs the same name, relaxed the same organizational domain."""
    domain, from_domain = normalize(domain), normalize(from_domain)
    if mode == "s":
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)


class DmarcResult(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Disposition(enum.StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass(frozen=True)
class DmarcVerdict:
    result: DmarcResult
    from_domain: str
    policy: Disposition = Disposition.NONE  # what the domain asks for on failure
    disposition: Disposition = Disposition.NONE  # what applies to this message (pct=)
    reason: str = ""


@dataclass(frozen=True)
class DmarcRecord:
    policy: Disposition
    subdomain_policy: Disposition
    adkim: str
    aspf: str
    pct: int


def parse_record(text: str) -> DmarcRecord | None:
    """RFC 7489 6.3; None when the text is not a usable DMARC record."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    if tags.get("v") != "DMARC1":
        return None
    try:
        policy = Disposition(tags.get("p", "").lower())
    except ValueError:
        # RFC 7489 6.6.3: a record with rua= but a bad p= is treated as p=none.
        if "rua" not in tags:
            return None
        policy = Disposition.NONE
    try:
        subdomain_policy = Disposition(tags.get("sp", policy.value).lower())
    except ValueError:
        subdomain_policy = policy
    pct_text = tags.get("pct", "100")
    pct = min(100, int(pct_text)) if pct_text.isdigit() else 100
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    return DmarcRecord(policy, subdomain_policy, adkim, aspf, pct)


async def _lookup_record(resolver: Resolver, domain: str) -> DmarcRecord | None:
    texts = await resolver.lookup(f"_dmarc.{domain}", "TXT")
    records = [t for t in texts if re.match(r"v\s*=\s*DMARC1\s*(;|$)", t)]
    if len(records) != 1:  # RFC 7489 6.6.3: none, or more than one, means no policy
        return None
    return parse_record(records[0])


async def evaluate(
    resolver: Resolver,
    from_domains: Sequence[str],
    spf: SpfVerdict,
    spf_domain: str,
    dkim: Sequence[DkimVerdict],
    *,
    sample: float | None = None,
) -> DmarcVerdict:
    """RFC 7489 6.6: the verdict for a message whose From header has `from_domains`.

    `spf_domain` is the MAIL FROM domain (or the HELO name for a null sender) that `spf`
    is about. `sample` replaces the random draw for pct= (tests).
    """
    domains = {normalize(d) for d in from_domains if d}
    if len(domains) != 1:
        # RFC 7489 6.6.1: no usable From domain, or several; nothing can be aligned.
        return DmarcVerdict(DmarcResult.PERMERROR, ",".join(sorted(domains)),
                            reason="the message needs exactly one From domain")
    from_domain = domains.pop()
    org = organizational_domain(from_domain)
    try:
        record = await _lookup_record(resolver, from_domain)
        policy_from_org = False
        if record is None and org != from_domain:
            record = await _lookup_record(resolver, org)
            policy_from_org = True
    except DnsTemporaryError as exc:
        return DmarcVerdict(DmarcResult.TEMPERROR, from_domain, reason=str(exc))
    if record is None:
        return DmarcVerdict(DmarcResult.NONE, from_domain, reason="no DMARC policy")
    policy = record.subdomain_policy if policy_from_org else record.policy

    spf_aligned = spf.result is SpfResult.PASS and aligned(spf_domain, from_domain, record.aspf)
    dkim_aligned = any(
        v.result is DkimResult.PASS and aligned(v.domain, from_domain, record.adkim)
        for v in dkim
    )
    if spf_aligned or dkim_aligned:
        how = "DKIM" if dkim_aligned else "SPF"
        return DmarcVerdict(DmarcResult.PASS, from_domain, policy, reason=f"aligned {how} pass")
    pending = spf.result is SpfResult.TEMPERROR and aligned(spf_domain, from_domain, record.aspf)
    pending |= any(
        v.result is DkimResult.TEMPERROR and aligned(v.domain, from_domain, record.adkim)
        for v in dkim
    )
    if pending:
        return DmarcVerdict(DmarcResult.TEMPERROR, from_domain, policy,
                            reason="an aligned check failed temporarily")
    disposition = policy
    draw = random.random() * 100 if sample is None else sample
    if draw >= record.pct:  # RFC 7489 6.6.4: outside pct, the next weaker policy
        disposition = {
            Disposition.REJECT: Disposition.QUARANTINE,
            Disposition.QUARANTINE: Disposition.NONE,
            Disposition.NONE: Disposition.NONE,
        }[policy]
    return DmarcVerdict(DmarcResult.FAIL, from_domain, policy, disposition,
                        reason="no aligned SPF or DKIM pass")
