"""Hosted domains: adding and removing them, the system overview (names: admin.names)."""

from __future__ import annotations

from typing import Any

from postel.admin import audit
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import store_refusals
from postel.admin.names import existing_domain, new_domain
from postel.store.model import Account, Role


def list_domains(ctx: AdminContext, actor: Actor) -> list[str]:
    actor.require_admin()
    return [d.name for d in ctx.store.directory.list_domains()]


def domain_stats(ctx: AdminContext, actor: Actor) -> list[dict[str, Any]]:
    actor.require_admin()
    return [
        {"name": d.name, "users": users, "storage_bytes": size,
         "created_at": d.created_at.isoformat()}
        for d, users, size in ctx.store.web.domain_stats()
    ]


def add_domain(ctx: AdminContext, actor: Actor, name: str) -> str:
    actor.require_admin()
    domain = new_domain(name)
    with store_refusals("domain"):
        ctx.store.directory.add_domain(domain)
    audit.record(ctx, actor, domain, "domain.add", domain)
    return domain


def remove_domain(ctx: AdminContext, actor: Actor, name: str) -> str:
    actor.require_admin()
    domain = existing_domain(name)
    with store_refusals():
        ctx.store.directory.remove_domain(domain)
    audit.record(ctx, actor, domain, "domain.remove", domain)
    return domain


def list_domain_admins(ctx: AdminContext, actor: Actor) -> list[Account]:
    actor.require_admin()
    return [a for a in ctx.store.directory.list_accounts() if a.role is not Role.USER]
