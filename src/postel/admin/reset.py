"""Forgot your password? A reset link to the account's backup address, and its use."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from postel.admin import audit
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError
from postel.admin.me import stamp
from postel.admin.tokens import hash_token, new_token
from postel.admin.validate import strong_password_hash
from postel.mail.address import AddressError, parse_email
from postel.store.model import Account

log = logging.getLogger("postel.admin")

MAX_TOKEN = 200
EXPIRED = ("This reset link has expired or has already been used. Ask for a new one with "
           "“Forgot your password?”.")


def request_reset(ctx: AdminContext, email_text: str, ip: str, *, link_base: str,
                  lifetime: float, allowed: Callable[[str], bool]) -> None:
    """Send a reset link (`link_base?token=...`) to the account's backup address, if any.

    Says nothing to the caller either way: the page answers the same whether or not the
    account exists (no enumeration); it runs after the response is sent, so timing tells
    nothing either. `allowed(key)` counts the request against the account's limit.
    """
    try:
        key = parse_email(email_text.strip()).key
    except AddressError:
        return
    if not allowed(key):
        log.info("password reset: per-account limit reached", extra={"fields": {"to": key}})
        return
    account = ctx.store.directory.get_account(key)
    if account is None or account.disabled or not account.backup_email:
        return
    token = new_token()
    ctx.store.web.reset_token_create(
        hash_token(token), account.id, datetime.now(UTC) + timedelta(seconds=lifetime)
    )
    minutes = max(1, round(lifetime / 60))
    ctx.send(
        account.backup_email,
        f"Reset the password of {account.email}",
        f"Someone (hopefully you) asked to reset the password of {account.email} "
        f"from {ip}.\n\nTo choose a new password, open this link within {minutes} "
        f"minutes:\n\n{link_base}?token={token}\n\nThe link works once. If you did not ask "
        f"for this, ignore this message: your password stays as it is.\n",
    )
    audit.record(ctx, None, account.domain, "password.reset-requested", account.email, ip=ip)


def reset_token_valid(ctx: AdminContext, token: str) -> bool:
    return bool(token) and len(token) < MAX_TOKEN and \
        ctx.store.web.reset_token_account(hash_token(token)) is not None


def complete_reset(ctx: AdminContext, token: str, password: str, confirm: str,
                   ip: str) -> Account:
    if len(token) > MAX_TOKEN or (
        account_id := ctx.store.web.reset_token_account(hash_token(token))
    ) is None:
        raise OperationError(Kind.GONE, EXPIRED)
    if password != confirm:
        raise OperationError(Kind.INVALID, "The two passwords are not the same.", "confirm")
    account = ctx.store.directory.get_account_by_id(account_id)
    if account is None:
        raise OperationError(Kind.GONE, "This reset link has expired or has already been "
                                        "used.")
    password_hash = strong_password_hash(password, account.email)
    changed = ctx.store.web.reset_token_use(hash_token(token), password_hash)
    if changed is None:
        raise OperationError(Kind.GONE, EXPIRED)
    if ctx.limiter is not None:
        ctx.limiter.record_success(ip, changed.email)
    audit.record(ctx, None, changed.domain, "password.reset", changed.email, ip=ip)
    ctx.notify(changed, f"The password of {changed.email} was changed",
               f"The password of {changed.email} was reset with a link sent to this "
               f"address, at {stamp()} (from {ip}).\nEvery web session was signed out.\n\n"
               f"If this was not you, ask your domain administrator to reset it at once.\n")
    return changed
