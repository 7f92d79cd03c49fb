"""My Settings > Account Settings: display name, Backup Email Address, change password;
and the first-logon prompt for a backup address."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from postel.admin import me as my
from postel.admin.actor import Actor
from postel.admin.errors import Kind, OperationError
from postel.admin.tokens import hash_token
from postel.store.model import Account
from postel.web.pages import form, login_required, redirect, render, safe_next
from postel.web.security import start_session
from postel.web.state import client_ip, web_of

SAVED = {
    "profile": "Your settings were saved.",
    "password": "Your password was changed. Other sessions were signed out.",
    "signout": "Every other session was signed out.",
}


async def _sessions(request: Request, me: Account) -> int:
    """How many signed-in sessions the account has (this one included)."""
    count: int = await asyncio.to_thread(web_of(request).store.web.sessions_count, me.id)
    return count


@login_required()
async def account_settings(request: Request, me: Account) -> Response:
    web = web_of(request)
    if request.method == "GET":
        saved = SAVED.get(request.query_params.get("saved", ""), "")
        return render(request, "settings.html", account=me, saved=saved, error="",
                      field="", values={}, sessions=await _sessions(request, me))
    values = await form(request)
    actor = Actor.of(me, client_ip(request))
    action = values.get("action", "profile")
    try:
        if action == "signout":
            await asyncio.to_thread(
                web.store.web.sessions_delete_for_account, me.id,
                keep=hash_token(request.state.session_token),
            )
            return redirect(request, "/settings?saved=signout")
        if action == "password":
            if values.get("new_password", "") != values.get("confirm", ""):
                raise OperationError(Kind.INVALID, "The two new passwords are not the same.",
                                     "confirm")
            account = await asyncio.to_thread(
                my.change_my_password, web.admin, actor, values.get("current_password", ""),
                values.get("new_password", ""),
            )
            # Every session began before the change and is now void: start a fresh one.
            await asyncio.to_thread(start_session, request, account)
        else:
            await asyncio.to_thread(
                my.update_me, web.admin, actor, display_name_text=values.get("display_name", ""),
                backup_email=values.get("backup_email", ""),
            )
    except OperationError as exc:
        return render(request, "settings.html", exc.status, account=me, saved="",
                      error=exc.message, field=exc.field, values=values,
                      sessions=await _sessions(request, me))
    return redirect(request, f"/settings?saved={'password' if action == 'password' else 'profile'}")


@login_required()
async def welcome(request: Request, me: Account) -> Response:
    """First logon without a backup address: ask for one (it can be skipped)."""
    web = web_of(request)
    next_url = safe_next(request.query_params.get("next"), "/settings")
    if request.method == "GET":
        if me.backup_email:
            return redirect(request, next_url)
        return render(request, "welcome.html", next=next_url, error="", backup="")
    values = await form(request)
    next_url = safe_next(values.get("next"), "/settings")
    backup = values.get("backup_email", "")
    try:
        await asyncio.to_thread(
            my.update_me, web.admin, Actor.of(me, client_ip(request)), backup_email=backup
        )
    except OperationError as exc:
        return render(request, "welcome.html", exc.status, next=next_url, error=exc.message,
                      backup=backup)
    return redirect(request, next_url)
