"""The domain-name rules of the operations.

Two rules, on purpose. A name to *host* must be a qualified domain name (two labels or
more): mail for "localhost" or a bare host name cannot reach us from anywhere else. A name
that only *looks up* a domain already hosted is checked for syntax only, so a domain that
exists (the first admin's `localhost` on a machine without a hostname, or one made before a
rule changed) stays manageable: a page never refuses to show what the store holds.
"""

from __future__ import annotations

from postel.admin.errors import Kind, OperationError
from postel.mail.address import AddressError, Domain


def _parse(text: str) -> Domain:
    name = text.strip()
    try:
        return Domain.parse(name)
    except AddressError as exc:
        raise OperationError(Kind.INVALID, f"{name or 'The name'} is not a valid domain "
                                           f"name: {exc}", "domain") from None


def existing_domain(text: str) -> str:
    """The stored (U-label) spelling of a domain named to look it up: syntax only."""
    return _parse(text).unicode


def new_domain(text: str) -> str:
    """The stored spelling of a domain to host: syntax, and qualified (RFC 1034 3.1)."""
    domain = _parse(text)
    if not domain.is_qualified:
        raise OperationError(Kind.INVALID,
                             f"{domain} is not a valid domain name: a hosted domain needs "
                             f"at least two labels, like example.com", "domain")
    return domain.unicode
