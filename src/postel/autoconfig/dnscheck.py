"""The live DNS check: does what DNS answers match the records we suggest?

Each suggested record comes back as found, missing, different (something else is
published there) or unknown (DNS did not answer). Lookups go to the resolvers of [dns]
(or the system's), through the one postel.mailauth.dns Resolver of the context; tests pass
the in-memory FakeResolver.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from postel.autoconfig.dnsrecords import DnsRecord, Match
from postel.mailauth.dns import DnsTemporaryError, Resolver, normalize


class Status(enum.StrEnum):
    FOUND = "found"
    MISSING = "missing"
    DIFFERENT = "different"
    UNKNOWN = "unknown"  # DNS failed or timed out: try again later
    SKIPPED = "not checked"  # a placeholder row (e.g. no DKIM key yet)


@dataclass(frozen=True)
class Checked:
    record: DnsRecord
    status: Status
    seen: tuple[str, ...] = ()  # what DNS answered at the name, for the "different" case
    detail: str = ""


# -- comparing -------------------------------------------------------------------------


def _host(text: str) -> str:
    return normalize(text)


def _tags(text: str) -> dict[str, str]:
    """tag=value pairs (RFC 6376 3.2 syntax, shared by DMARC, MTA-STS and TLS-RPT),
    whitespace-insensitive; keys lowercase."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _ours(answers: list[str], prefix: str) -> list[str]:
    prefix = prefix.lower()
    found = []
    for answer in answers:
        text = answer.strip()
        head = text[: len(prefix)].lower()
        rest = text[len(prefix):len(prefix) + 1]
        if head == prefix and rest in ("", " ", ";"):
            found.append(text)
    return found


def compare(record: DnsRecord, answers: list[str]) -> Status:
    """Found / missing / different for the records matched by one lookup's answers."""
    if record.match is Match.MX:
        if not answers:
            return Status.MISSING
        want = _host(record.value.split()[-1])
        hosts = {_host(a.split()[-1]) for a in answers}
        return Status.FOUND if want in hosts else Status.DIFFERENT
    if record.match is Match.SPF:
        spf = _ours(answers, record.txt_prefix)
        if not spf:
            return Status.MISSING
        # Two SPF records are a permanent error (RFC 7208 3.2): never "found".
        if len(spf) == 1 and spf[0].lower().split() == record.value.lower().split():
            return Status.FOUND
        return Status.DIFFERENT
    if record.match is Match.TAGS:
        published = _ours(answers, record.txt_prefix)
        if not published:
            return Status.MISSING
        tags = _tags(record.value)
        return Status.FOUND if any(_tags(p) == tags for p in published) else Status.DIFFERENT
    if record.match is Match.SRV:
        if not answers:
            return Status.MISSING
        want_srv = _srv(record.value)
        return Status.FOUND if any(_srv(a) == want_srv for a in answers) else Status.DIFFERENT
    if record.match is Match.EXISTS:
        return Status.FOUND if answers else Status.MISSING
    raise ValueError(f"compare() does not handle {record.match}")


def _srv(text: str) -> tuple[str, ...]:
    parts = text.split()
    return (*parts[:3], _host(parts[3]) if len(parts) > 3 else "")


async def _addresses(lookup: Resolver, name: str) -> set[str]:
    found = await asyncio.gather(lookup.lookup(name, "A"), lookup.lookup(name, "AAAA"))
    return {address for answers in found for address in answers}


async def check_record(record: DnsRecord, lookup: Resolver) -> Checked:
    try:
        if record.match is Match.NONE:
            return Checked(record, Status.SKIPPED)
        if record.match is Match.CNAME:
            return await _check_alias(record, lookup)
        if record.match is Match.EXISTS:
            answers = sorted(await _addresses(lookup, record.name))
        else:
            answers = await lookup.lookup(record.name, record.rtype)
        return Checked(record, compare(record, answers), tuple(answers))
    except DnsTemporaryError as exc:
        return Checked(record, Status.UNKNOWN, detail=str(exc))


async def _check_alias(record: DnsRecord, lookup: Resolver) -> Checked:
    """A CNAME to our host is what we suggest; A/AAAA records with exactly our host's
    addresses work the same for clients, so they count as found too."""
    target = _host(record.value)
    cnames = await lookup.lookup(record.name, "CNAME")
    if cnames:
        status = Status.FOUND if target in {_host(c) for c in cnames} else Status.DIFFERENT
        return Checked(record, status, tuple(cnames))
    mine, theirs = await asyncio.gather(_addresses(lookup, record.name),
                                        _addresses(lookup, target))
    if not mine:
        return Checked(record, Status.MISSING)
    status = Status.FOUND if theirs and mine == theirs else Status.DIFFERENT
    return Checked(record, status, tuple(sorted(mine)))


async def check_all(records: tuple[DnsRecord, ...] | list[DnsRecord],
                    lookup: Resolver) -> list[Checked]:
    """Every record checked at once, results in the records' order."""
    return list(await asyncio.gather(*(check_record(r, lookup) for r in records)))
