"""The logon page (full email address + password) and logout.

Failures answer with one message that does not say which of the two was wrong. Lockout
per IP and per account is the FailureLimiter shared with SMTP, IMAP and POP3 (web
failures count there too); each failure is also delayed, doubling with the recent
failures of that IP or account (`web.login_backoff_base` .. `web.login_backoff_max`).
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from postel.mail.address import AddressError, parse_email
from postel.web.pages import form, redirect, render, safe_next
from postel.web.security import current_account, end_session, start_session
from postel.web.state import Web, client_ip, web_of

BAD_LOGON = "The email address or password is incorrect."
THROTTLED = ("Too many failed logons from your address or for this account. Wait a few "
             "minutes and try again, or use “Forgot your password?”.")


def backoff_delay(web: Web, failures: int) -> float:
    if failures <= 0 or web.config.login_backoff_base <= 0:
        return 0.0
    return float(min(web.config.login_backoff_base * 2 ** (failures - 1),
                     web.config.login_backoff_max))


def _key(username: str) -> str:
    try:
        return parse_email(username.strip()).key
    except AddressError:
        return ""


async def logon(request: Request) -> Response:
    account = await current_account(request)
    next_url = safe_next(request.query_params.get("next"), "/")
    if request.method == "GET":
        if account is not None:
            return redirect(request, next_url)
        return render(request, "logon.html", next=next_url, email="", error="")
    values = await form(request)
    web = web_of(request)
    email = values.get("email", "")[:320]
    password = values.get("password", "")[:1024]
    next_url = safe_next(values.get("next"), "/")
    ip = client_ip(request)
    result = await web.context.authenticator.authenticate(email, password, ip, protocol="web")
    if result.account is None:
        key = _key(email)
        failures = web.login_failures.add("ip:" + ip)
        if key:
            failures = max(failures, web.login_failures.add("account:" + key))
        await asyncio.sleep(backoff_delay(web, failures))
        message = THROTTLED if result.throttled else BAD_LOGON
        status = 429 if result.throttled else 401
        return render(request, "logon.html", status, next=next_url, email=email,
                      error=message)
    web.login_failures.clear("account:" + result.account.email)
    await asyncio.to_thread(start_session, request, result.account)
    if not result.account.backup_email:
        # The seed: "You chose your backup email address when you first logged into your
        # webmail" - ask for one until it is set.
        return redirect(request, "/settings/welcome?next=" + quote(next_url, safe="/"))
    return redirect(request, next_url)


async def logout(request: Request) -> Response:
    if request.method == "POST":
        await form(request)
        await asyncio.to_thread(end_session, request)
    return redirect(request, "/logon")


async def home(request: Request) -> Response:
    account = await current_account(request)
    return redirect(request, "/mail" if account else "/logon")  # the Inbox
