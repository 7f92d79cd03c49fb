"""Accounts of a domain: list, add, change, delete; a domain admin only in their domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from postel.admin import audit
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError, store_refusals
from postel.admin.names import existing_domain
from postel.admin.validate import backup_address, display_name, email_key, strong_password_hash
from postel.store.model import Account, Role


def user_json(account: Account) -> dict[str, Any]:
    return {
        "email": account.email,
        "display_name": account.display_name,
        "backup_email": account.backup_email,
        "role": account.role.value,
        "quota_bytes": account.quota_bytes,
        "disabled": account.disabled,
        "created_at": account.created_at.isoformat(),
        "password_changed_at": account.password_changed_at.isoformat(),
    }


def _managed_user(ctx: AdminContext, actor: Actor, email: str) -> Account:
    key = email_key(email)
    actor.require_domain(key.rpartition("@")[2])
    account = ctx.store.directory.get_account(key)
    if account is None:
        raise OperationError(Kind.NOT_FOUND, f"user {key} does not exist")
    if account.role is Role.ADMIN and not actor.is_admin:
        raise OperationError(Kind.FORBIDDEN,
                             "Only a system administrator may change a system administrator.")
    return account


def list_accounts(ctx: AdminContext, actor: Actor, domain: str | None) -> list[Account]:
    """Every account of one domain, or of every domain (system admins only), by address."""
    if domain is None:
        actor.require_admin()
        return ctx.store.directory.list_accounts()
    domain = existing_domain(domain)
    actor.require_domain(domain)
    return ctx.store.directory.list_accounts(domain)


def list_users(ctx: AdminContext, actor: Actor, domain: str, query: str, offset: int,
               limit: int) -> tuple[int, list[Account]]:
    """One page of a domain's users matching `query`."""
    domain = existing_domain(domain)
    actor.require_domain(domain)
    if ctx.store.directory.get_domain(domain) is None:
        raise OperationError(Kind.NOT_FOUND, f"The domain {domain} is not hosted here.")
    return ctx.store.web.search_accounts(domain, query.strip()[:100], offset, limit)


def get_user(ctx: AdminContext, actor: Actor, email: str) -> Account:
    return _managed_user(ctx, actor, email)


def _user_values(actor: Actor, email: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if raw.get("display_name") is not None:
        values["display_name"] = display_name(str(raw["display_name"]))
    if raw.get("backup_email") is not None:
        values["backup_email"] = backup_address(str(raw["backup_email"]), email)
    if raw.get("role") is not None:
        try:
            role = Role(str(raw["role"]))
        except ValueError:
            raise OperationError(Kind.INVALID, "The role must be user or domain-admin.",
                                 "role") from None
        if role is Role.ADMIN and not actor.is_admin:
            raise OperationError(Kind.FORBIDDEN,
                                 "Only a system administrator may make system "
                                 "administrators.", "role")
        values["role"] = role
    if raw.get("quota_bytes") is not None:
        quota = raw["quota_bytes"]
        if isinstance(quota, bool) or not isinstance(quota, int) or quota < 0 \
                or quota > 2**62:
            raise OperationError(Kind.INVALID,
                                 "The quota must be a whole number of bytes, 0 for none.",
                                 "quota")
        values["quota_bytes"] = quota
    if raw.get("disabled") is not None:
        if not isinstance(raw["disabled"], bool):
            raise OperationError(Kind.INVALID, "disabled must be true or false.", "disabled")
        values["disabled"] = raw["disabled"]
    if raw.get("password"):
        values["password_hash"] = strong_password_hash(str(raw["password"]), email)
    return values


def check_new_user(ctx: AdminContext, actor: Actor, email: str) -> str:
    """The lookup key of a user that `actor` may add and that does not exist yet: lets a
    caller that still has to ask for the password fail before asking."""
    key = email_key(email)
    domain = key.rpartition("@")[2]
    actor.require_domain(domain)
    if ctx.store.directory.get_domain(domain) is None:
        raise OperationError(Kind.NOT_FOUND, f"domain {domain} is not hosted here; add it "
                                             f"first", "email")
    if ctx.store.directory.get_account(key) is not None:
        raise OperationError(Kind.CONFLICT, f"user {key} already exists", "email")
    return key


def add_user(ctx: AdminContext, actor: Actor, raw: Mapping[str, Any], *,
             in_domain: str | None = None) -> Account:
    """`in_domain`: the user must be in that domain; a bare local part is put there."""
    text = str(raw.get("email") or "").strip()
    if in_domain is not None and text:
        domain = existing_domain(in_domain)
        if "@" not in text:
            text = f"{text}@{domain}"
        elif existing_domain(text.rpartition("@")[2] or domain) != domain:
            raise OperationError(Kind.INVALID, f"The user must be in the domain {domain}.",
                                 "email")
    email = email_key(text)
    domain = email.rpartition("@")[2]
    actor.require_domain(domain)
    if not raw.get("password"):
        raise OperationError(Kind.INVALID, "Give the new user a password.", "password")
    values = _user_values(actor, email, raw)
    with store_refusals("email"):
        account = ctx.store.directory.add_account(
            email,
            values.pop("password_hash"),
            role=values.pop("role", Role.USER),
            backup_email=values.pop("backup_email", None),
            display_name=values.pop("display_name", ""),
            quota_bytes=values.pop("quota_bytes", 0),
        )
    if values.get("disabled"):
        account = ctx.store.directory.update_account(email, disabled=True)
    audit.record(ctx, actor, domain, "user.add", email, role=account.role.value)
    return account


def update_user(ctx: AdminContext, actor: Actor, email: str, raw: Mapping[str, Any]) -> Account:
    account = _managed_user(ctx, actor, email)
    values = _user_values(actor, account.email, raw)
    if actor.is_account(account) and (
        values.get("disabled") or values.get("role", account.role) is not account.role
    ):
        raise OperationError(Kind.INVALID, "You cannot disable yourself or change your own "
                                           "role.")
    changed = {k: v for k, v in values.items() if getattr(account, k, None) != v}
    if not changed:
        return account
    updated = ctx.store.directory.update_account(account.email, **changed)
    if "password_hash" in changed or changed.get("disabled"):
        ctx.store.web.sessions_delete_for_account(account.id)
    detail = {("password" if k == "password_hash" else k):
              ("changed" if k == "password_hash" else str(v)) for k, v in changed.items()}
    audit.record(ctx, actor, account.domain, "user.update", account.email, **detail)
    return updated


def delete_user(ctx: AdminContext, actor: Actor, email: str) -> None:
    account = _managed_user(ctx, actor, email)
    if actor.is_account(account):
        raise OperationError(Kind.INVALID, "You cannot delete your own account.")
    ctx.store.web.forget_account(account.id)
    ctx.store.directory.remove_account(account.email)
    audit.record(ctx, actor, account.domain, "user.delete", account.email)
