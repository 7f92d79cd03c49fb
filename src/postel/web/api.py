"""The JSON API under /api/v1: the same operations as the pages (postel.admin).

Authentication is the session cookie of the pages (POST /api/v1/session logs on).
Every unsafe method needs the X-CSRF-Token header: the `csrf_token` that
GET/POST /api/v1/session return. Errors are {"error": message, "field": name}.
The OpenAPI document is at /api/v1/openapi.json (postel.web.openapi).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from postel.admin import aliases as alias_ops
from postel.admin import audit as audit_ops
from postel.admin import domains as domain_ops
from postel.admin import me as my
from postel.admin import reset
from postel.admin import users as user_ops
from postel.admin.actor import Actor
from postel.admin.errors import Kind, OperationError
from postel.store.model import Account
from postel.web import captcha
from postel.web.account.logon import BAD_LOGON, THROTTLED, backoff_delay
from postel.web.account.reset import request_reset
from postel.web.openapi import document
from postel.web.security import (
    CSRF_HEADER,
    csrf_token,
    csrf_valid,
    current_account,
    end_session,
    finish,
    start_session,
)
from postel.web.state import client_ip, web_of

SAFE = ("GET", "HEAD", "OPTIONS")
MAX_PAGE = 200

Handler = Callable[[Request, Any, dict[str, Any]], Awaitable[Any]]


def _error(status: int, message: str, field: str = "") -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status)


def endpoint(*, auth: bool = True) -> Callable[[Handler], Callable[[Request], Awaitable[
        Response]]]:
    """Session and CSRF checks, JSON body parsing and error mapping for one endpoint."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def view(request: Request) -> Response:
            account = await current_account(request)
            if auth and account is None:
                return finish(request, _error(401, "Log on first (POST /api/v1/session)."))
            if request.method not in SAFE and not csrf_valid(
                request, request.headers.get(CSRF_HEADER, "")
            ):
                return finish(request, _error(403, "Missing or wrong X-CSRF-Token header."))
            body: dict[str, Any] = {}
            if request.method in ("POST", "PATCH", "PUT"):
                parsed = json_object(await request.body())
                if isinstance(parsed, str):
                    return finish(request, _error(400, parsed))
                body = parsed
            try:
                result = await handler(request, account, body)
            except OperationError as exc:
                return finish(request, _error(exc.status, exc.message, exc.field))
            if isinstance(result, Response):
                return finish(request, result)
            if result is None:
                return finish(request, Response(status_code=204))
            return finish(request, JSONResponse(result))

        return view

    return wrap


def json_object(raw: bytes) -> dict[str, Any] | str:
    """A request body as a JSON object, or why it is not one (answered 400). Never raises:
    the fuzz target fuzz/web.py holds it to that."""
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        return "The body is not valid JSON."
    except RecursionError:  # issue 15 item 10: "[[[[..." was a 500
        return "The JSON body is nested too deeply."
    if not isinstance(parsed, dict):
        return "The body must be a JSON object."
    return parsed


def _text(body: dict[str, Any], name: str, *, required: bool = False,
          nullable: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise OperationError(Kind.INVALID, f"{name} is required.", name)
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise OperationError(Kind.INVALID, f"{name} must be a string.", name)
    return value


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise OperationError(Kind.INVALID,
                             f"{name} must be a whole number from 0 to {maximum}.", name)
    return int(raw)


def _actor(request: Request, account: Account) -> Actor:
    return Actor.of(account, client_ip(request))


def _thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    return asyncio.to_thread(fn, *args, **kwargs)


# -- session ---------------------------------------------------------------------------


def _session_json(request: Request, account: Account | None) -> dict[str, Any]:
    return {
        "authenticated": account is not None,
        "email": account.email if account else None,
        "role": account.role.value if account else None,
        "csrf_token": csrf_token(request),
    }


async def session(request: Request) -> Response:
    if request.method == "GET":
        account = await current_account(request)
        return finish(request, JSONResponse(_session_json(request, account)))
    return await (_logon if request.method == "POST" else _logout)(request)


@endpoint(auth=False)
async def _logon(request: Request, _: Account | None, body: dict[str, Any]) -> Any:
    web = web_of(request)
    email = _text(body, "email", required=True)[:320]
    password = _text(body, "password", required=True)[:1024]
    ip = client_ip(request)
    result = await web.context.authenticator.authenticate(email, password, ip, protocol="api")
    if result.account is None:
        failures = web.login_failures.add("ip:" + ip)
        await asyncio.sleep(backoff_delay(web, failures))
        if result.throttled:
            raise OperationError(Kind.TOO_MANY, THROTTLED)
        raise OperationError(Kind.UNAUTHENTICATED, BAD_LOGON)
    await _thread(start_session, request, result.account)
    return _session_json(request, result.account)


@endpoint()
async def _logout(request: Request, _: Account, body: dict[str, Any]) -> Any:
    await _thread(end_session, request)
    return None


# -- me --------------------------------------------------------------------------------


@endpoint()
async def me(request: Request, account: Account, body: dict[str, Any]) -> Any:
    if request.method == "PATCH":
        account = await _thread(
            my.update_me, web_of(request).admin, _actor(request, account),
            display_name_text=_text(body, "display_name"), backup_email=_text(body, "backup_email"),
            current_password=_text(body, "current_password") or "",
        )
    return user_ops.user_json(account)


@endpoint()
async def my_password(request: Request, account: Account, body: dict[str, Any]) -> Any:
    changed = await _thread(
        my.change_my_password, web_of(request).admin, _actor(request, account),
        _text(body, "current_password", required=True), _text(body, "new_password",
                                                              required=True),
    )
    await _thread(start_session, request, changed)
    return _session_json(request, changed)


# -- forgot your password? -------------------------------------------------------------


@endpoint(auth=False)
async def new_captcha(request: Request, _: Account | None, body: dict[str, Any]) -> Any:
    try:
        challenge = await _thread(captcha.new_challenge, web_of(request), client_ip(request))
    except captcha.TooManyChallenges:
        raise OperationError(Kind.TOO_MANY,
                             "Too many codes asked for from your address; try later.") \
            from None
    return JSONResponse({"id": challenge, "image": f"/captcha/{challenge}.png",
                         "audio": f"/captcha/{challenge}.wav"}, 201)


@endpoint(auth=False)
async def password_reset(request: Request, _: Account | None, body: dict[str, Any]) -> Any:
    web = web_of(request)
    ip = client_ip(request)
    email = _text(body, "email", required=True)
    if web.reset_by_ip.add(ip) > web.config.reset_max_per_ip:
        raise OperationError(Kind.TOO_MANY, "Too many password reset requests from your address.")
    solved = await _thread(captcha.solve, web, _text(body, "captcha_id", required=True),
                           _text(body, "captcha_answer", required=True)[:32])
    if not solved:
        raise OperationError(Kind.INVALID, "The code did not match, or it expired.",
                             "captcha_answer")
    message = ("If this is an account here with a backup email address, a reset link was "
               "sent to that address. Without a backup address, ask your domain "
               "administrator to reset your password.")
    request_reset(web, email, ip)
    return JSONResponse({"message": message}, 202)


@endpoint(auth=False)
async def password_reset_confirm(request: Request, _: Account | None,
                                 body: dict[str, Any]) -> Any:
    password = _text(body, "new_password", required=True)
    await _thread(reset.complete_reset, web_of(request).admin, _text(body, "token", required=True),
                  password, password, client_ip(request))
    return None


# -- domains, users, aliases, audit ----------------------------------------------------


@endpoint()
async def domains(request: Request, account: Account, body: dict[str, Any]) -> Any:
    web, actor = web_of(request), _actor(request, account)
    if request.method == "POST":
        name = await _thread(domain_ops.add_domain, web.admin, actor,
                             _text(body, "name", required=True))
        return JSONResponse({"name": name}, 201)
    return {"domains": await _thread(domain_ops.domain_stats, web.admin, actor)}


@endpoint()
async def domain(request: Request, account: Account, body: dict[str, Any]) -> Any:
    await _thread(domain_ops.remove_domain, web_of(request).admin, _actor(request, account),
                  request.path_params["domain"])
    return None


_USER_FIELDS = ("email", "password", "display_name", "backup_email", "role")


def _user_body(body: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {name: _text(body, name) for name in _USER_FIELDS}
    quota = body.get("quota_bytes")
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int)):
        raise OperationError(Kind.INVALID, "quota_bytes must be a whole number.", "quota_bytes")
    raw["quota_bytes"] = quota
    disabled = body.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise OperationError(Kind.INVALID, "disabled must be true or false.", "disabled")
    raw["disabled"] = disabled
    return raw


@endpoint()
async def domain_users(request: Request, account: Account, body: dict[str, Any]) -> Any:
    web, actor = web_of(request), _actor(request, account)
    name = request.path_params["domain"]
    if request.method == "POST":
        created = await _thread(user_ops.add_user, web.admin, actor, _user_body(body),
                                in_domain=name)
        return JSONResponse(user_ops.user_json(created), 201)
    offset = _int_param(request, "offset", 0, 10**9)
    limit = _int_param(request, "limit", 50, MAX_PAGE)
    total, found = await _thread(user_ops.list_users, web.admin, actor, name,
                                 request.query_params.get("q", ""), offset, limit)
    return {"total": total, "offset": offset, "users": [user_ops.user_json(a) for a in found]}


@endpoint()
async def user(request: Request, account: Account, body: dict[str, Any]) -> Any:
    web, actor = web_of(request), _actor(request, account)
    email = request.path_params["email"]
    if request.method == "DELETE":
        await _thread(user_ops.delete_user, web.admin, actor, email)
        return None
    if request.method == "PATCH":
        raw = _user_body(body)
        raw.pop("email")
        found = await _thread(user_ops.update_user, web.admin, actor, email, raw)
    else:
        found = await _thread(user_ops.get_user, web.admin, actor, email)
    return user_ops.user_json(found)


@endpoint()
async def aliases(request: Request, account: Account, body: dict[str, Any]) -> Any:
    web, actor = web_of(request), _actor(request, account)
    name = request.path_params["domain"]
    if request.method == "POST":
        alias = await _thread(alias_ops.add_alias, web.admin, actor, name,
                              _text(body, "source", required=True),
                              _text(body, "destination", required=True))
        return JSONResponse({"source": alias.source, "destination": alias.destination}, 201)
    if request.method == "DELETE":
        await _thread(alias_ops.remove_alias, web.admin, actor, name,
                      request.query_params.get("source", ""),
                      request.query_params.get("destination", ""))
        return None
    found = await _thread(alias_ops.list_aliases, web.admin, actor, name)
    return {"aliases": [{"source": a.source, "destination": a.destination} for a in found]}


async def _audit(request: Request, account: Account, domain_name: str | None) -> Any:
    offset = _int_param(request, "offset", 0, 10**9)
    limit = _int_param(request, "limit", 50, MAX_PAGE)
    total, rows = await _thread(audit_ops.audit_log, web_of(request).admin,
                                _actor(request, account),
                                domain_name, offset, limit)
    return {"total": total, "offset": offset, "entries": rows}


@endpoint()
async def domain_audit(request: Request, account: Account, body: dict[str, Any]) -> Any:
    return await _audit(request, account, request.path_params["domain"])


@endpoint()
async def system_audit(request: Request, account: Account, body: dict[str, Any]) -> Any:
    return await _audit(request, account, None)


async def openapi(request: Request) -> Response:
    return JSONResponse(document(), headers={"Cache-Control": "no-cache"})


def routes() -> list[BaseRoute]:
    return [
        Route("/openapi.json", openapi),
        Route("/session", session, methods=["GET", "POST", "DELETE"]),
        Route("/me", me, methods=["GET", "PATCH"]),
        Route("/me/password", my_password, methods=["POST"]),
        Route("/captcha", new_captcha, methods=["POST"]),
        Route("/password-reset", password_reset, methods=["POST"]),
        Route("/password-reset/confirm", password_reset_confirm, methods=["POST"]),
        Route("/domains", domains, methods=["GET", "POST"]),
        Route("/domains/{domain}", domain, methods=["DELETE"]),
        Route("/domains/{domain}/users", domain_users, methods=["GET", "POST"]),
        Route("/domains/{domain}/aliases", aliases, methods=["GET", "POST", "DELETE"]),
        Route("/domains/{domain}/audit", domain_audit),
        Route("/users/{email}", user, methods=["GET", "PATCH", "DELETE"]),
        Route("/audit", system_audit),
    ]
