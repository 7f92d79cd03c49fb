"""Aliases of a domain (extra addresses, and the "@domain" catch-all)."""

from __future__ import annotations

from postel.admin import audit
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError, store_refusals
from postel.admin.names import existing_domain
from postel.admin.validate import email_key
from postel.store.model import Alias


def list_aliases(ctx: AdminContext, actor: Actor, domain: str | None) -> list[Alias]:
    """One domain's aliases; None: every domain's (system admins only)."""
    if domain is None:
        actor.require_admin()
        return ctx.store.directory.list_aliases(None)
    domain = existing_domain(domain)
    actor.require_domain(domain)
    return ctx.store.directory.list_aliases(domain)


def domain_of_source(source: str) -> str:
    """The domain an alias source ("info@example.com", "@example.com") belongs to."""
    domain = source.strip().rpartition("@")[2]
    if not domain:
        raise OperationError(Kind.INVALID, f"{source.strip() or 'The alias'} is not a valid "
                                           f"alias: give an address or @domain", "source")
    return existing_domain(domain)


def _alias_source(domain: str, source: str) -> str:
    source = source.strip()
    if source in ("", "*", "@"):
        return "@" + domain  # catch-all
    if source.startswith("@"):
        if existing_domain(source[1:]) != domain:
            raise OperationError(Kind.INVALID, f"The alias must be an address of {domain}.",
                                 "source")
        return "@" + domain  # catch-all, in any spelling of the domain
    if "@" not in source:
        source = f"{source}@{domain}"
    key = email_key(source, "source")
    if key.rpartition("@")[2] != domain:
        raise OperationError(Kind.INVALID, f"The alias must be an address of {domain}.",
                             "source")
    return key


def _alias_pair(actor: Actor, domain: str, source: str,
                destination: str) -> tuple[str, str, str]:
    """(domain, source key, destination key) of an alias `actor` may manage."""
    domain = existing_domain(domain)
    actor.require_domain(domain)
    # Destinations are stored as lookup keys, so removing accepts any spelling too.
    return domain, _alias_source(domain, source), email_key(destination, "destination")


def add_alias(ctx: AdminContext, actor: Actor, domain: str, source: str,
              destination: str) -> Alias:
    domain, key, target = _alias_pair(actor, domain, source, destination)
    with store_refusals("source"):
        alias = ctx.store.directory.add_alias(key, target)
    audit.record(ctx, actor, domain, "alias.add", key, destination=target)
    return alias


def remove_alias(ctx: AdminContext, actor: Actor, domain: str, source: str,
                 destination: str) -> None:
    domain, key, target = _alias_pair(actor, domain, source, destination)
    with store_refusals():
        ctx.store.directory.remove_alias(key, target)
    audit.record(ctx, actor, domain, "alias.remove", key, destination=target)
