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
              backup_email: str | None = None) -> Account:
    me = actor.own_account()
    values: dict[str, Any] = {}
    if display_name_text is not None:
        values["display_name"] = display_name(display_name_text)
    new_backup = me.backup_email
    if backup_email is not None:
        new_backup = backup_address(backup_email, me.email)
        values["backup_email"] = new_backup
    if not values:
        return me
    account = ctx.store.directory.update_account(me.email, **values)
    if backup_email is not None and new_backup != me.backup_email:
        audit.record(ctx, actor, me.domain, "me.backup_email", me.email,
                     backup_email=new_backup)
        if new_backup:
            # Tell the new address why it will get mail from us (and that it is set).
            ctx.send(
                new_backup,
                f"Backup address for {me.email}",
                f"{me.email} chose this address as its backup email address.\n\n"
                f"If that account's password is forgotten, a reset link will be sent "
                f"here.\nIf you do not know why you got this message, you may ignore it.\n",
            )
    return account


def change_my_password(ctx: AdminContext, actor: Actor, current: str, new: str, *,
                       keep_session: str = "") -> Account:
    me = actor.own_account()
    if not verify_password(me.password_hash, current):
        raise OperationError(Kind.INVALID, "The current password is not correct.",
                             "current_password")
    password_hash = strong_password_hash(new, me.email, "new_password")
    account = ctx.store.directory.update_account(me.email, password_hash=password_hash)
    ctx.store.web.sessions_delete_for_account(account.id, keep=keep_session)
    audit.record(ctx, actor, me.domain, "me.password", me.email)
    ctx.notify(account, f"The password of {account.email} was changed",
               f"The password of {account.email} was changed from My Settings at "
               f"{stamp()} (from {actor.ip}).\n\nIf this was not you, ask your domain "
               f"administrator to reset it at once.\n")
    return account
