"""The operations behind the pages and the JSON API: one implementation of every rule
(who may do what, validation, audit), called by both. Blocking: run in a worker thread.

Errors are ``OpError(status, message)``: the message is fit to show to the person.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from postel.auth.passwords import WeakPassword, check_strength, hash_password, verify_password
from postel.mail.address import AddressError, parse_email
from postel.store.errors import AlreadyExists, NotFound, StoreError
from postel.store.model import Account, Alias, Role
from postel.web.mailer import send_system_mail
from postel.web.security import hash_token, new_token
from postel.web.state import Web

log = logging.getLogger("postel.web")

MAX_NAME = 200


class OpError(Exception):
    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where (for permissions and the audit log)."""

    account: Account
    ip: str

    @property
    def is_admin(self) -> bool:
        return self.account.role is Role.ADMIN


def _audit(web: Web, actor: Actor | None, domain: str, action: str, target: str = "",
           ip: str = "", **detail: Any) -> None:
    web.store.web.audit_add(
        actor=actor.account.email if actor else "",
        ip=actor.ip if actor else ip,
        domain=domain,
        action=action,
        target=target,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else "",
    )


def email_key(text: str, field: str = "email") -> str:
    try:
        return parse_email(text.strip()).key
    except AddressError as exc:
        raise OpError(400, f"{text.strip() or 'The address'} is not a valid email address: "
                           f"{exc}", field) from None


def domain_name(text: str) -> str:
    name = text.strip().lower().rstrip(".")
    try:
        domain = parse_email("postmaster@" + name).domain
    except AddressError as exc:
        raise OpError(400, f"{name or 'The name'} is not a valid domain name: {exc}",
                      "domain") from None
    if domain.startswith("[") or "." not in domain:
        raise OpError(400, f"{name} is not a valid domain name", "domain")
    return domain


def backup_address(text: str, own: str) -> str | None:
    """A validated backup address, or None to clear it."""
    text = text.strip()
    if not text:
        return None
    key = email_key(text, "backup_email")
    if key == own:
        raise OpError(400, "The backup address must be another mailbox than this account "
                           "itself: it is where you get back in when you cannot log on.",
                      "backup_email")
    return text


def _strong(password: str, email: str, field: str = "password") -> str:
    try:
        check_strength(password, email)
    except WeakPassword as exc:
        raise OpError(400, f"Please choose another password: {exc}.", field) from None
    return hash_password(password)


def _notify(web: Web, account: Account, subject: str, body: str) -> None:
    if account.backup_email:
        try:
            send_system_mail(web.store, web.system_from, account.backup_email, subject, body)
        except Exception:
            log.exception("could not send a notice to the backup address")


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


# -- my settings -----------------------------------------------------------------------


def update_me(web: Web, actor: Actor, *, display_name: str | None = None,
              backup_email: str | None = None) -> Account:
    me = actor.account
    values: dict[str, Any] = {}
    if display_name is not None:
        if len(display_name) > MAX_NAME:
            raise OpError(400, f"The display name is longer than {MAX_NAME} characters.",
                          "display_name")
        values["display_name"] = display_name.strip()
    new_backup = me.backup_email
    if backup_email is not None:
        new_backup = backup_address(backup_email, me.email)
        values["backup_email"] = new_backup
    if not values:
        return me
    account = web.store.directory.update_account(me.email, **values)
    if backup_email is not None and new_backup != me.backup_email:
        _audit(web, actor, me.domain, "me.backup_email", me.email, backup_email=new_backup)
        if new_backup:
            # Tell the new address why it will get mail from us (and that it is set).
            send_system_mail(
                web.store, web.system_from, new_backup,
                f"Backup address for {me.email}",
                f"{me.email} chose this address as its backup email address.\n\n"
                f"If that account's password is forgotten, a reset link will be sent "
                f"here.\nIf you do not know why you got this message, you may ignore it.\n",
            )
    return account


def change_my_password(web: Web, actor: Actor, current: str, new: str, *,
                       keep_session: str = "") -> Account:
    me = actor.account
    if not verify_password(me.password_hash, current):
        raise OpError(400, "The current password is not correct.", "current_password")
    password_hash = _strong(new, me.email, "new_password")
    account = web.store.directory.update_account(me.email, password_hash=password_hash)
    web.store.web.sessions_delete_for_account(account.id, keep=keep_session)
    _audit(web, actor, me.domain, "me.password", me.email)
    _notify(web, account, f"The password of {account.email} was changed",
            f"The password of {account.email} was changed from My Settings at "
            f"{_stamp()} (from {actor.ip}).\n\nIf this was not you, ask your domain "
            f"administrator to reset it at once.\n")
    return account


# -- forgot your password? -------------------------------------------------------------


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def request_reset(web: Web, email_text: str, ip: str) -> None:
    """Send a reset link to the account's backup address, if there is one.

    Says nothing to the caller either way: the page answers the same whether or not the
    account exists (no enumeration); it runs after the response is sent, so timing tells
    nothing either.
    """
    try:
        key = parse_email(email_text.strip()).key
    except AddressError:
        return
    if web.reset_by_account.add(key) > web.config.reset_max_per_account:
        log.info("password reset: per-account limit reached", extra={"fields": {"to": key}})
        return
    account = web.store.directory.get_account(key)
    if account is None or account.disabled or not account.backup_email:
        return
    token = new_token()
    lifetime = web.config.reset_token_lifetime
    web.store.web.reset_token_create(
        hash_token(token), account.id, datetime.now(UTC) + timedelta(seconds=lifetime)
    )
    minutes = max(1, round(lifetime / 60))
    link = f"{web.base_url}/reset-password?token={token}"
    send_system_mail(
        web.store, web.system_from, account.backup_email,
        f"Reset the password of {account.email}",
        f"Someone (hopefully you) asked to reset the password of {account.email} "
        f"from {ip}.\n\nTo choose a new password, open this link within {minutes} "
        f"minutes:\n\n{link}\n\nThe link works once. If you did not ask for this, ignore "
        f"this message: your password stays as it is.\n",
    )
    _audit(web, None, account.domain, "password.reset-requested", account.email, ip=ip)


def reset_token_valid(web: Web, token: str) -> bool:
    return bool(token) and len(token) < 200 and \
        web.store.web.reset_token_account(hash_token(token)) is not None


def complete_reset(web: Web, token: str, password: str, confirm: str, ip: str) -> Account:
    if len(token) > 200 or (account_id := web.store.web.reset_token_account(hash_token(token))) \
            is None:
        raise OpError(410, "This reset link has expired or has already been used. Ask for "
                           "a new one with “Forgot your password?”.")
    if password != confirm:
        raise OpError(400, "The two passwords are not the same.", "confirm")
    account = web.store.directory.get_account_by_id(account_id)
    if account is None:
        raise OpError(410, "This reset link has expired or has already been used.")
    password_hash = _strong(password, account.email)
    changed = web.store.web.reset_token_use(hash_token(token), password_hash)
    if changed is None:
        raise OpError(410, "This reset link has expired or has already been used. Ask for "
                           "a new one with “Forgot your password?”.")
    web.context.limiter.record_success(ip, changed.email)
    _audit(web, None, changed.domain, "password.reset", changed.email, ip=ip)
    _notify(web, changed, f"The password of {changed.email} was changed",
            f"The password of {changed.email} was reset with a link sent to this address, "
            f"at {_stamp()} (from {ip}).\nEvery web session was signed out.\n\n"
            f"If this was not you, ask your domain administrator to reset it at once.\n")
    return changed


# -- domain settings: users ------------------------------------------------------------


def require_domain(actor: Actor, domain: str) -> None:
    """System admins manage every domain; domain admins only their own."""
    if actor.is_admin:
        return
    if actor.account.role is Role.DOMAIN_ADMIN and actor.account.domain == domain:
        return
    raise OpError(403, f"You may not manage the domain {domain}.")


def _managed_user(web: Web, actor: Actor, email: str) -> Account:
    key = email_key(email)
    require_domain(actor, key.rpartition("@")[2])
    account = web.store.directory.get_account(key)
    if account is None:
        raise OpError(404, f"There is no user {key}.")
    if account.role is Role.ADMIN and not actor.is_admin:
        raise OpError(403, "Only a system administrator may change a system administrator.")
    return account


def list_users(web: Web, actor: Actor, domain: str, query: str, offset: int,
               limit: int) -> tuple[int, list[Account]]:
    domain = domain_name(domain)
    require_domain(actor, domain)
    if web.store.directory.get_domain(domain) is None:
        raise OpError(404, f"The domain {domain} is not hosted here.")
    return web.store.web.search_accounts(domain, query.strip()[:100], offset, limit)


def get_user(web: Web, actor: Actor, email: str) -> Account:
    return _managed_user(web, actor, email)


def _user_values(actor: Actor, email: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "display_name" in raw and raw["display_name"] is not None:
        name = str(raw["display_name"]).strip()
        if len(name) > MAX_NAME:
            raise OpError(400, f"The display name is longer than {MAX_NAME} characters.",
                          "display_name")
        values["display_name"] = name
    if "backup_email" in raw and raw["backup_email"] is not None:
        values["backup_email"] = backup_address(str(raw["backup_email"]), email)
    if raw.get("role") is not None:
        try:
            role = Role(str(raw["role"]))
        except ValueError:
            raise OpError(400, "The role must be user or domain-admin.", "role") from None
        if role is Role.ADMIN and not actor.is_admin:
            raise OpError(403, "Only a system administrator may make system administrators.",
                          "role")
        values["role"] = role
    if raw.get("quota_bytes") is not None:
        quota = raw["quota_bytes"]
        if isinstance(quota, bool) or not isinstance(quota, int) or quota < 0 \
                or quota > 2**62:
            raise OpError(400, "The quota must be a whole number of bytes, 0 for none.",
                          "quota")
        values["quota_bytes"] = quota
    if raw.get("disabled") is not None:
        if not isinstance(raw["disabled"], bool):
            raise OpError(400, "disabled must be true or false.", "disabled")
        values["disabled"] = raw["disabled"]
    if raw.get("password"):
        values["password_hash"] = _strong(str(raw["password"]), email)
    return values


def add_user(web: Web, actor: Actor, raw: Mapping[str, Any]) -> Account:
    email = email_key(str(raw.get("email") or ""))
    domain = email.rpartition("@")[2]
    require_domain(actor, domain)
    if not raw.get("password"):
        raise OpError(400, "Give the new user a password.", "password")
    values = _user_values(actor, email, raw)
    try:
        account = web.store.directory.add_account(
            email,
            values.pop("password_hash"),
            role=values.pop("role", Role.USER),
            backup_email=values.pop("backup_email", None),
            display_name=values.pop("display_name", ""),
            quota_bytes=values.pop("quota_bytes", 0),
        )
    except NotFound as exc:
        raise OpError(404, str(exc)) from None
    except AlreadyExists as exc:
        raise OpError(409, str(exc), "email") from None
    if values.get("disabled"):
        account = web.store.directory.update_account(email, disabled=True)
    _audit(web, actor, domain, "user.add", email, role=account.role.value)
    return account


def update_user(web: Web, actor: Actor, email: str, raw: Mapping[str, Any]) -> Account:
    account = _managed_user(web, actor, email)
    values = _user_values(actor, account.email, raw)
    if account.id == actor.account.id and (
        values.get("disabled") or values.get("role", account.role) is not account.role
    ):
        raise OpError(400, "You cannot disable yourself or change your own role.")
    changed = {k: v for k, v in values.items() if getattr(account, k, None) != v}
    if not changed:
        return account
    updated = web.store.directory.update_account(account.email, **changed)
    if "password_hash" in changed or changed.get("disabled"):
        web.store.web.sessions_delete_for_account(account.id)
    detail = {k: (str(v) if k != "password_hash" else "changed") for k, v in changed.items()}
    detail = {("password" if k == "password_hash" else k): v for k, v in detail.items()}
    _audit(web, actor, account.domain, "user.update", account.email, **detail)
    return updated


def delete_user(web: Web, actor: Actor, email: str) -> None:
    account = _managed_user(web, actor, email)
    if account.id == actor.account.id:
        raise OpError(400, "You cannot delete your own account.")
    web.store.web.forget_account(account.id)
    web.store.directory.remove_account(account.email)
    _audit(web, actor, account.domain, "user.delete", account.email)


# -- domain settings: aliases ----------------------------------------------------------


def list_aliases(web: Web, actor: Actor, domain: str) -> list[Alias]:
    domain = domain_name(domain)
    require_domain(actor, domain)
    return web.store.directory.list_aliases(domain)


def _alias_source(domain: str, source: str) -> str:
    source = source.strip()
    if source in ("", "*", "@", "@" + domain):
        return "@" + domain  # catch-all
    if "@" not in source:
        source = f"{source}@{domain}"
    key = email_key(source, "source")
    if key.rpartition("@")[2] != domain:
        raise OpError(400, f"The alias must be an address of {domain}.", "source")
    return key


def add_alias(web: Web, actor: Actor, domain: str, source: str, destination: str) -> Alias:
    domain = domain_name(domain)
    require_domain(actor, domain)
    key = _alias_source(domain, source)
    target = email_key(destination, "destination")
    try:
        alias = web.store.directory.add_alias(key, target)
    except NotFound as exc:
        raise OpError(404, str(exc)) from None
    except AlreadyExists as exc:
        raise OpError(409, str(exc), "source") from None
    _audit(web, actor, domain, "alias.add", key, destination=target)
    return alias


def remove_alias(web: Web, actor: Actor, domain: str, source: str, destination: str) -> None:
    domain = domain_name(domain)
    require_domain(actor, domain)
    key = _alias_source(domain, source)
    try:
        web.store.directory.remove_alias(key, destination.strip())
    except NotFound as exc:
        raise OpError(404, str(exc)) from None
    _audit(web, actor, domain, "alias.remove", key, destination=destination.strip())


# -- audit -----------------------------------------------------------------------------


def audit_log(web: Web, actor: Actor, domain: str | None, offset: int,
              limit: int) -> tuple[int, list[dict[str, Any]]]:
    """One domain's log (its admins), or every domain's (system admins only)."""
    if domain is None:
        if not actor.is_admin:
            raise OpError(403, "Only system administrators see the audit log of every domain.")
    else:
        domain = domain_name(domain)
        require_domain(actor, domain)
    total, rows = web.store.web.audit_list(domain, offset, limit)
    for row in rows:
        row["at"] = row["at"].isoformat()
    return total, rows


# -- system ----------------------------------------------------------------------------


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise OpError(403, "Only system administrators may do this.")


def domain_stats(web: Web, actor: Actor) -> list[dict[str, Any]]:
    _require_admin(actor)
    return [
        {"name": d.name, "users": users, "storage_bytes": size,
         "created_at": d.created_at.isoformat()}
        for d, users, size in web.store.web.domain_stats()
    ]


def add_domain(web: Web, actor: Actor, name: str) -> str:
    _require_admin(actor)
    domain = domain_name(name)
    try:
        web.store.directory.add_domain(domain)
    except AlreadyExists as exc:
        raise OpError(409, str(exc), "domain") from None
    _audit(web, actor, domain, "domain.add", domain)
    return domain


def remove_domain(web: Web, actor: Actor, name: str) -> None:
    _require_admin(actor)
    domain = domain_name(name)
    try:
        web.store.directory.remove_domain(domain)
    except NotFound as exc:
        raise OpError(404, str(exc)) from None
    except StoreError as exc:
        raise OpError(409, str(exc)) from None
    _audit(web, actor, domain, "domain.remove", domain)


def list_domain_admins(web: Web, actor: Actor) -> list[Account]:
    _require_admin(actor)
    return [a for a in web.store.directory.list_accounts() if a.role is not Role.USER]
