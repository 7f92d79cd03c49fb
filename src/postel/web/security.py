"""Sessions, CSRF tokens, cookies and security headers.

* The session cookie carries a random token; the store keeps only its SHA-256, so rows
  are revocable (delete = signed out) and a database leak hands out no live session.
  Sessions end when idle (`web.session_idle_timeout`), when too old
  (`web.session_max_age`), and when the password changes after they began.
* CSRF: every form and every unsafe API call carries HMAC(secret, cookie token) — the
  session token when signed in, else a random anonymous token in its own cookie (so the
  logon and password-reset forms are protected too). A cross-site page can read neither.
* Cookies use the ``__Host-`` prefix: Secure, Path=/, no Domain; HttpOnly; SameSite=Lax.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postel.admin.tokens import hash_token, new_token
from postel.store.model import Account
from postel.web.state import Web, client_ip, web_of

SESSION_COOKIE = "__Host-postel-session"
ANON_COOKIE = "__Host-postel-anon"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Refresh last_seen_at at most this often (seconds): one write per minute, not per click.
TOUCH_INTERVAL = 60.0

CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


# -- sessions --------------------------------------------------------------------------


def _load_account(web: Web, token: str) -> Account | None:
    """Blocking: the account of a live session token, expiring it when stale."""
    token_hash = hash_token(token)
    found = web.store.web.session_get(token_hash)
    if found is None:
        return None
    account_id, created, last_seen = found
    now = datetime.now(UTC)
    idle = timedelta(seconds=web.config.session_idle_timeout)
    max_age = timedelta(seconds=web.config.session_max_age)
    account = web.store.directory.get_account_by_id(account_id)
    if (
        account is None
        or account.disabled
        or now - last_seen > idle
        or now - created > max_age
        # A password change signs out every session that began before it.
        or account.password_changed_at > created
    ):
        web.store.web.session_delete(token_hash)
        return None
    if (now - last_seen).total_seconds() > TOUCH_INTERVAL:
        web.store.web.session_touch(token_hash)
    return account


async def current_account(request: Request) -> Account | None:
    """The signed-in account of this request (cached per request), or None."""
    if getattr(request.state, "account_loaded", False):
        cached = request.state.account
        assert cached is None or isinstance(cached, Account)
        return cached
    token = request.cookies.get(SESSION_COOKIE, "")
    account = None
    if token and len(token) < 200:
        account = await asyncio.to_thread(_load_account, web_of(request), token)
    if token and account is None:
        request.state.set_session = ""  # expired or revoked: drop the stale cookie
    request.state.account = account
    request.state.account_loaded = True
    request.state.session_token = token if account else ""
    return account


def start_session(request: Request, account: Account) -> str:
    """Blocking: create a session for `account`; the cookie is set by finish()."""
    web = web_of(request)
    token = new_token()
    web.store.web.session_create(
        hash_token(token), account.id, client_ip(request),
        request.headers.get("user-agent", ""),
    )
    request.state.account = account
    request.state.account_loaded = True
    request.state.session_token = token
    request.state.set_session = token
    return token


def end_session(request: Request) -> None:
    """Blocking: delete this request's session; the cookie is cleared by finish()."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        web_of(request).store.web.session_delete(hash_token(token))
    request.state.account = None
    request.state.account_loaded = True
    request.state.session_token = ""
    request.state.set_session = ""


# -- CSRF ------------------------------------------------------------------------------


def _csrf_for(web: Web, token: str) -> str:
    return hmac.new(web.secret, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The token forms of this response must carry (after current_account())."""
    web = web_of(request)
    session = getattr(request.state, "session_token", "")
    if session:
        return _csrf_for(web, session)
    anon = getattr(request.state, "anon_token", "") or request.cookies.get(ANON_COOKIE, "")
    if not anon or len(anon) > 100:
        anon = new_token()
        request.state.set_anon = anon
    request.state.anon_token = anon
    return _csrf_for(web, anon)


def csrf_valid(request: Request, supplied: str) -> bool:
    """True when `supplied` matches this request's session or anonymous cookie."""
    if not supplied:
        return False
    web = web_of(request)
    candidates = [
        getattr(request.state, "session_token", "") or request.cookies.get(SESSION_COOKIE, ""),
        request.cookies.get(ANON_COOKIE, ""),
    ]
    return any(
        token and hmac.compare_digest(_csrf_for(web, token), supplied) for token in candidates
    )


def finish(request: Request, response: Response) -> Response:
    """Set or clear the cookies this request decided on."""
    web = web_of(request)
    set_session = getattr(request.state, "set_session", None)
    if set_session:
        response.set_cookie(
            SESSION_COOKIE, set_session, max_age=int(web.config.session_max_age),
            path="/", secure=True, httponly=True, samesite="lax",
        )
    elif set_session == "":
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                               samesite="lax")
    set_anon = getattr(request.state, "set_anon", "")
    if set_anon:
        response.set_cookie(
            ANON_COOKIE, set_anon, path="/", secure=True, httponly=True, samesite="lax"
        )
    return response


# -- headers and limits ----------------------------------------------------------------


class SecurityHeaders:
    """Adds CSP, HSTS, frame and referrer headers to every response; refuses bodies larger
    than `max_body` bytes with 413 (by Content-Length, and by counting chunked bodies)."""

    def __init__(self, app: ASGIApp, *, hsts_max_age: int, max_body: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains" if hsts_max_age else ""
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            response = Response("Request body too large\n", 413, media_type="text/plain")
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise RequestTooLarge(413, "Request body too large")
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.setdefault("Content-Security-Policy", CSP)
                out.setdefault("X-Frame-Options", "DENY")
                out.setdefault("X-Content-Type-Options", "nosniff")
                out.setdefault("Referrer-Policy", "no-referrer")
                out.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                out.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                if self.hsts and scope.get("scheme") == "https":
                    out.setdefault("Strict-Transport-Security", self.hsts)
                if "cache-control" not in out:
                    static = scope.get("path", "").startswith("/static/")
                    out["Cache-Control"] = "public, max-age=3600" if static else "no-store"
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)


class RequestTooLarge(HTTPException):
    """A chunked body grew past the limit; the app's error handler answers 413."""
