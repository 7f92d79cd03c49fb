"""The webmail page: one app shell after logon; everything else comes from the API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from postel.store.model import Account
from postel.web.pages import login_required, render


@login_required()
async def app_shell(request: Request, me: Account) -> Response:
    return render(request, "mail/app.html")
