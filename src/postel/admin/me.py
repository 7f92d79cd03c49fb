"""My Settings: what a signed-in user changes on their own account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from postel.admin import audit
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError
from postel.admin.validate import backup_address, display_name, strong_password_hash
from postel.auth.passwords import verify_password
from postel.store.model import Account


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def update_me(ctx: AdminContext, actor: Actor, *, display_name_text: str | None = None,
              backup_email: str | None = None, current_password: str = "") -> Account:
    """Change the display name and the backup address. The backup address is where
    "Forgot your password?" sends its link, so changing it asks for the current password
    (a stolen session alone must not become a permanent takeover), spends every reset
    link sent before, and tells both the old and the new address."""
    me = actor.own_account()
    values: dict[str, Any] = {}
    if display_name_text is not None:
        values["display_name"] = display_name(display_name_text)
    new_backup = me.backup_email
    if backup_email is not None:
        new_backup = backup_address(backup_email, me.email)
    backup_changes = new_backup != me.backup_email
    if backup_changes:
        if not verify_password(me.password_hash, current_password):
            raise OperationError(Kind.INVALID, "To change the backup address, enter your "
                                 "current password.", "current_password")
        values["backup_email"] = new_backup
    if not values:
        return me
    account = ctx.store.directory.update_account(me.email, **values)
    if backup_changes:
        ctx.store.web.reset_tokens_spend(me.id)
        audit.record(ctx, actor, me.domain, "me.backup_email", me.email,
                     backup_email=new_backup)
        _tell_backup_addresses(ctx, actor, me, new_backup)
    return account


def _tell_backup_addresses(ctx: AdminContext, actor: Actor, me: Account,
                           new_backup: str | None) -> None:
    if me.backup_email:
        # The old address learns of it, so a takeover does not go unnoticed.
        ctx.notify(me, f"The backup address of {me.email} was changed",
                   f"The backup address of {me.email} was changed from this address to "
                   f"{new_backup or 'none'} at {stamp()} (from {actor.ip}).\n\nReset links "
                   f"go there from now on. If this was not you, ask your domain "
                   f"administrator to reset the password at once.\n")
    if new_backup:
        # Tell the new address why it will get mail from us (and that it is set).
        ctx.send(
            new_backup,
            f"Backup address for {me.email}",
            f"{me.email} chose this address as its backup email address.\n\n"
            f"If that account's password is forgotten, a reset link will be sent "
            f"here.\nIf you do not know why you got this message, you may ignore it.\n",
        )


def change_my_password(ctx: AdminContext, actor: Actor, current: str, new: str, *,
                       keep_session: str = "") -> Account:
    me = actor.own_account()
    if not verify_password(me.password_hash, current):
        raise OperationError(Kind.INVALID, "The current password is not correct.",
                             "current_password")
    password_hash = strong_password_hash(new, me.email, "new_password")
    account = ctx.store.directory.update_account(me.email, password_hash=password_hash)
    ctx.store.web.sessions_delete_for_account(account.id, keep=keep_session)
    ctx.store.web.reset_tokens_spend(account.id)  # a link sent before must not undo this
    audit.record(ctx, actor, me.domain, "me.password", me.email)
    ctx.notify(account, f"The password of {account.email} was changed",
               f"The password of {account.email} was changed from My Settings at "
               f"{stamp()} (from {actor.ip}).\n\nIf this was not you, ask your domain "
               f"administrator to reset it at once.\n")
    return account
