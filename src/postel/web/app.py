"""The Starlette applications: the site on HTTPS, and the redirector on HTTP.

Routes are listed here, one line each; the views live in account/, admin/ and api.py.
No traceback ever reaches a browser: every error becomes a short page (or JSON under
/api/), and the details go to the log.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from postel.web import api, autoconfig, health, metrics
from postel.web.account import logon, reset, settings
from postel.web.admin import domain, system
from postel.web.mail import api as mail_api
from postel.web.mail import views as mail_views
from postel.web.pages import render
from postel.web.security import SecurityHeaders
from postel.web.state import STATIC, Web

log = logging.getLogger("postel.web")

GET_POST = ["GET", "POST"]

# Paths served on plain HTTP too (everything else redirects to HTTPS): ACME challenges,
# mail client autoconfiguration, /metrics (loopback-only by default) for scrapers, and
# /healthz for a load balancer's checks.
HTTP_PATHS = ("/.well-known/acme-challenge/", "/mail/config-v1.1.xml",
              "/.well-known/autoconfig/", "/metrics", "/healthz")


def routes(web: Web) -> list[BaseRoute]:
    site: list[BaseRoute] = [
        Route("/", logon.home),
        Route("/metrics", metrics.metrics),
        Route("/healthz", health.healthz),
        Route("/logon", logon.logon, methods=GET_POST),
        Route("/logout", logon.logout, methods=GET_POST),
        Route("/forgot-password", reset.forgot_password, methods=GET_POST),
        Route("/captcha/{challenge}.png", reset.captcha_image),
        Route("/captcha/{challenge}.wav", reset.captcha_audio),
        Route("/reset-password", reset.reset_password, methods=GET_POST),
        Route("/settings", settings.account_settings, methods=GET_POST),
        Route("/settings/welcome", settings.welcome, methods=GET_POST),
        Route("/settings/mail", mail_views.mail_settings, methods=GET_POST),
        *domain.routes(),
        *system.routes(),
        *autoconfig.routes(),
        Route("/mail", mail_views.app_shell),
        Mount("/api/v1/mail", routes=mail_api.routes()),  # before /api/v1, which would 404
        Mount("/api/v1", routes=api.routes()),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    if web.config.test_hooks:
        site.append(Route("/__test__/captcha/{challenge}", reset.captcha_test_answer))
    return site


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else "Error"
    if status == 404 and detail == "Not Found":
        detail = "There is no page at this address."
    if status == 405:
        detail = "This page does not accept that kind of request."
    if _wants_json(request):
        return JSONResponse({"error": detail}, status, headers=exc.headers)
    response = render(request, "error.html", status, code=status, message=detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("web request failed", exc_info=exc,
              extra={"fields": {"path": request.url.path, "method": request.method}})
    message = "Something went wrong on our side. Please try again in a moment."
    if _wants_json(request):
        return JSONResponse({"error": message}, 500)
    try:
        return render(request, "error.html", 500, code=500, message=message)
    except Exception:
        return PlainTextResponse(message, 500)


def build_app(web: Web) -> ASGIApp:
    app = Starlette(
        routes=routes(web),
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.web = web
    return SecurityHeaders(app, hsts_max_age=web.config.hsts_max_age,
                           max_body=web.config.max_request_body)


class HttpRedirect:
    """Port 80: everything moves to HTTPS, except the few paths that must stay on HTTP."""

    def __init__(self, https_app: ASGIApp, https_port: int | None) -> None:
        self.https_app = https_app
        self.https_port = https_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "/")
        if path.startswith(HTTP_PATHS):
            await self.https_app(scope, receive, send)
            return
        request = Request(scope)
        host = (request.url.hostname or "localhost").lower()
        if not all(c.isalnum() or c in ".-:" for c in host):
            host = "localhost"
        if ":" in host:
            host = f"[{host}]"  # an IPv6 literal
        port = "" if self.https_port in (None, 443) else f":{self.https_port}"
        target = f"https://{host}{port}{request.url.path}"
        if request.url.query:
            target += "?" + request.url.query
        response = RedirectResponse(target, 301)
        await response(scope, receive, send)
