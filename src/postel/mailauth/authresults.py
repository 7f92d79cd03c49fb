"""The Authentication-Results header field (RFC 8601): writing ours, removing forgeries.

RFC 8601 5: a receiving server must remove (or rename) instances that claim its own
authserv-id before adding its own, or downstream readers would trust a sender's forgery.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import BinaryIO

from postel.mailauth.dkim import DkimVerdict
from postel.mailauth.dmarc import DmarcVerdict
from postel.mailauth.headers import HeaderTooLarge, read_header_section
from postel.mailauth.spf import SpfVerdict

COPY_CHUNK = 64 * 1024

WriteFunc = Callable[[bytes], None]


def _value(text: str) -> str:
    """A pvalue (RFC 8601 2.2): a token, or a quoted string when it has specials."""
    if re.fullmatch(r"[A-Za-z0-9.@_+=/!#$%&'*^`{|}~-]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str, result: str) -> str:
    """Why, as a CFWS comment; only for results that are not a plain pass."""
    if result == "pass":
        return ""
    cleaned = re.sub(r"[()\\\r\n]", " ", text).strip()
    return f" ({cleaned})" if cleaned else ""


def format_header(
    authserv_id: str,
    *,
    spf_mailfrom: SpfVerdict | None,
    mailfrom: str,
    spf_helo: SpfVerdict | None,
    helo: str,
    dkim: Sequence[DkimVerdict],
    dmarc: DmarcVerdict | None,
) -> bytes:
    """The whole field, folded one result per line, CRLF-terminated."""
    results: list[str] = []
    if spf_mailfrom is not None:
        results.append(
            f"spf={spf_mailfrom.result}{_comment(spf_mailfrom.reason, spf_mailfrom.result)} "
            f"smtp.mailfrom={_value(mailfrom or spf_mailfrom.domain)}"
        )
    if spf_helo is not None:
        results.append(
            f"spf={spf_helo.result}{_comment(spf_helo.reason, spf_helo.result)} "
            f"smtp.helo={_value(helo)}"
        )
    if not dkim:
        results.append("dkim=none")
    for verdict in dkim:
        results.append(
            f"dkim={verdict.result}{_comment(verdict.reason, verdict.result)} "
            f"header.d={_value(verdict.domain)}"
            f" header.s={_value(verdict.selector)} header.b={_value(verdict.signature_prefix)}"
        )
    if dmarc is not None:
        policy = f" policy.dmarc={dmarc.policy}" if dmarc.result.value == "fail" else ""
        results.append(
            f"dmarc={dmarc.result}{_comment(dmarc.reason, dmarc.result)}{policy} "
            f"header.from={_value(dmarc.from_domain)}"
        )
    if not results:
        return f"Authentication-Results: {authserv_id}; none\r\n".encode()
    body = ";\r\n\t".join(results)
    return f"Authentication-Results: {authserv_id};\r\n\t{body}\r\n".encode()


def claims_authserv_id(value: str, authserv_id: str) -> bool:
    """Does an Authentication-Results value start with this authserv-id?"""
    value = re.sub(r"\([^)]*\)", " ", value)  # CFWS comments may precede the id
    first = value.strip().split(";", 1)[0].split()
    return bool(first) and first[0].lower() == authserv_id.lower()


def copy_without_forgeries(source: BinaryIO, write: WriteFunc, authserv_id: str) -> int:
    """Copy a message from `source`'s position to `write`, leaving out header fields
    Authentication-Results that claim `authserv_id`. Returns how many were removed."""
    start = source.tell()
    try:
        headers, separator = read_header_section(source)
    except HeaderTooLarge:
        source.seek(start)
        _copy(source, write)
        return 0
    removed = 0
    for header in headers:
        if header.lower == "authentication-results" and claims_authserv_id(
            header.value, authserv_id
        ):
            removed += 1
            continue
        write(header.raw)
    write(separator)
    _copy(source, write)
    return removed


def _copy(source: BinaryIO, write: WriteFunc) -> None:
    while chunk := source.read(COPY_CHUNK):
        write(chunk)
