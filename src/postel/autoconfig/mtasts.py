"""MTA-STS (RFC 8461): the policy document and the id its DNS record carries."""

from __future__ import annotations

import hashlib


def policy_text(mode: str, mx_hosts: list[str], max_age: int) -> str:
    """The policy file (RFC 8461 3.2): "key: value" lines, each ended by CRLF."""
    lines = ["version: STSv1", f"mode: {mode}"]
    lines += [f"mx: {host}" for host in mx_hosts]
    lines.append(f"max_age: {max_age}")
    return "".join(line + "\r\n" for line in lines)


def policy_id(text: str) -> str:
    """The id of the _mta-sts TXT record (RFC 8461 3.1: 1 to 32 letters and digits). It is
    derived from the policy itself, so changing the policy changes the id senders watch."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]
