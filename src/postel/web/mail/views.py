"""The webmail page (one app shell after logon; everything else comes from the API) and
its settings page inside My Settings."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from postel.store.model import Account
from postel.web.mail.state import mail_state
from postel.web.pages import form, login_required, redirect, render
from postel.web.state import web_of

MAX_SIGNATURE = 5000


@login_required()
async def app_shell(request: Request, me: Account) -> Response:
    return render(request, "mail/app.html")


@login_required()
async def mail_settings(request: Request, me: Account) -> Response:
    """My Settings > Mail: signature, reading preferences, the addresses I send as."""
    web = web_of(request)
    sql = mail_state(web).sql
    error = ""
    if request.method == "POST":
        values = await form(request)
        signature = values.get("signature", "").replace("\r\n", "\n")
        if len(signature) > MAX_SIGNATURE:
            error = f"The signature may have at most {MAX_SIGNATURE} characters."
        else:
            await asyncio.to_thread(sql.save_prefs, me.id, signature=signature,
                                    mark_read_on_open=values.get("mark_read") == "on")
            return redirect(request, "/settings/mail?saved=1")
    prefs = await asyncio.to_thread(sql.prefs, me.id)
    addresses = sorted(await asyncio.to_thread(web.store.directory.addresses_of, me))
    return render(request, "mail/settings.html", 400 if error else 200, prefs=prefs,
                  addresses=addresses, error=error,
                  saved="Your mail settings were saved." if request.query_params.get(
                      "saved") else "")
