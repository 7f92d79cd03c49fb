"""Helpers shared by the HTML views: rendering, forms with CSRF, access checks."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from python_multipart.multipart import parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from postel.admin.errors import OperationError
from postel.mail.charsets import text_codec
from postel.store.model import Account, Role
from postel.web.security import CSRF_FIELD, csrf_token, csrf_valid, current_account, finish
from postel.web.state import web_of

View = Callable[[Request], Awaitable[Response]]
AccountView = Callable[[Request, Account], Awaitable[Response]]

# Form fields beyond these are refused: no form here has more.
MAX_FORM_FIELDS = 40


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    web = web_of(request)
    account: Account | None = getattr(request.state, "account", None)
    page = web.templates.get_template(template).render(
        csrf=csrf_token(request),
        me=account,
        Role=Role,
        hostname=web.context.config.hostname,
        path=request.url.path,
        **context,
    )
    return finish(request, HTMLResponse(page, status))


def redirect(request: Request, url: str) -> Response:
    return finish(request, RedirectResponse(url, 303))


def safe_next(target: str | None, default: str) -> str:
    """Only same-site paths: "/x" but never "//evil" or "/\\evil" (open redirects)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


async def form_fields(request: Request) -> dict[str, str]:
    """The text fields of a urlencoded or multipart body. Bad bodies raise HTTPException
    (400 for a malformed one or too many fields, 413 past web.max_request_body, 415 for a
    charset that is no text charset): the form parsing the fuzz target fuzz/web.py drives."""
    _, params = parse_options_header(request.headers.get("Content-Type", ""))
    charset = params.get(b"charset")
    if charset is not None and text_codec(charset.decode("latin-1")) is None:
        # Starlette decodes multipart fields with the codec this names, whatever it is:
        # unicode_escape made lone surrogates, a NUL raised ValueError (a 500). RFC 7578 8
        # gives multipart/form-data no charset parameter; browsers send none. RFC 9110
        # 15.5.16: content in a form the server does not support is 415.
        raise HTTPException(415, "The form's charset is not one this server reads.")
    async with request.form(max_files=0, max_fields=MAX_FORM_FIELDS) as data:
        return {k: v for k, v in data.items() if isinstance(v, str)}


async def form(request: Request) -> dict[str, str]:
    """The submitted form (text fields only), after checking its CSRF token."""
    await current_account(request)
    values = await form_fields(request)
    if not csrf_valid(request, values.get(CSRF_FIELD, "")):
        raise HTTPException(
            403, "This form has expired or did not come from this site. Reload the page "
            "and try again."
        )
    return values


def login_required(*roles: Role) -> Callable[[AccountView], View]:
    """Views for signed-in users; with roles, only for those roles (403 otherwise)."""

    def wrap(view: AccountView) -> View:
        @functools.wraps(view)
        async def inner(request: Request) -> Response:
            account = await current_account(request)
            if account is None:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return redirect(request, "/logon?next=" + quote(target, safe="/"))
            if roles and account.role not in roles:
                raise HTTPException(403, "Your account may not open this page.")
            return await view(request, account)

        return inner

    return wrap


def page_numbers(total: int, page: int, size: int) -> dict[str, int]:
    pages = max(1, (total + size - 1) // size)
    page = min(max(1, page), pages)
    return {"page": page, "pages": pages, "offset": (page - 1) * size, "size": size,
            "total": total}


def int_arg(value: str | None, default: int = 1) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking operation; its OperationError becomes an error page with its status."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except OperationError as exc:
        raise HTTPException(exc.status, exc.message) from None
