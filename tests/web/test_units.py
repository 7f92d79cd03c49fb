"""Pure pieces of the web layer, without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from postel.admin.context import AdminContext
from postel.admin.notices import build_message
from postel.auth.limits import WindowCounter
from postel.config import WebConfig, parse_config
from postel.web.account.logon import backoff_delay
from postel.web.app import HttpRedirect
from postel.web.openapi import document
from postel.web.pages import safe_next
from postel.web.service import _loopback
from postel.web.state import default_base_url, load_secret


@pytest.mark.parametrize(("target", "expected"), [
    ("/settings", "/settings"),
    ("/admin/users?q=a", "/admin/users?q=a"),
    ("//evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("https://evil.example/", "/"),
    ("", "/"),
    (None, "/"),
])
def test_safe_next_keeps_only_local_paths(target: str | None, expected: str) -> None:
    assert safe_next(target, "/") == expected


def test_backoff_doubles_up_to_the_maximum() -> None:
    web: Any = SimpleNamespace(config=WebConfig(login_backoff_base=0.5, login_backoff_max=3))
    assert [backoff_delay(web, n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 3.0]
    off: Any = SimpleNamespace(config=WebConfig(login_backoff_base=0))
    assert backoff_delay(off, 5) == 0.0


def test_window_counter_counts_per_key() -> None:
    counter = WindowCounter(60)
    assert counter.add("a") == 1
    assert counter.add("a") == 2
    assert counter.count("b") == 0
    counter.clear("a")
    assert counter.count("a") == 0
    expired = WindowCounter(0)
    expired.add("a")
    assert expired.count("a") == 0


def test_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    first = load_secret(tmp_path)
    assert len(first) == 32
    assert load_secret(tmp_path) == first
    assert (tmp_path / "web" / "secret.key").stat().st_mode & 0o077 == 0


def test_base_url_names_the_https_port_only_when_not_443() -> None:
    standard = parse_config({"hostname": "mail.example.com"})
    assert default_base_url(standard) == "https://mail.example.com"
    dev = parse_config({"hostname": "mail.example.com"}, dev=True)
    assert default_base_url(dev) == "https://mail.example.com:8443"
    configured = parse_config({"hostname": "x", "web": {"base_url": "https://w.example/"}})
    assert default_base_url(configured) == "https://w.example"


def test_loopback_addresses() -> None:
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost")
    assert not _loopback("0.0.0.0") and not _loopback("192.0.2.1")


def _get(app: Any, url: str) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            return await http.get(url)

    return asyncio.run(run())


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("served on http")(scope, receive, send)


def test_http_redirects_to_https_but_serves_acme_and_autoconfig() -> None:
    standard = HttpRedirect(_inner, 443)
    answer = _get(standard, "http://mail.example.com/logon?next=/x")
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://mail.example.com/logon?next=/x"
    dev = HttpRedirect(_inner, 8443)
    assert _get(dev, "http://mail.example.com:8080/").headers["location"] == \
        "https://mail.example.com:8443/"
    for path in ("/.well-known/acme-challenge/abc", "/mail/config-v1.1.xml"):
        assert _get(standard, "http://mail.example.com" + path).text == "served on http"


def test_reset_mail_is_well_formed() -> None:
    data = build_message("postmaster@mail.example.com", "a@b.example", "Reset", "Hello\n")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\nFrom: postmaster@mail.example.com\r" in b"\n" + head
    assert b"Auto-Submitted: auto-generated" in head
    assert b"Message-ID: <" in head
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_openapi_document_names_every_route() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert {"/session", "/me", "/password-reset", "/domains/{domain}/users",
            "/users/{email}", "/audit"} <= set(doc["paths"])


def test_a_crash_becomes_a_clean_500_page(tmp_path: Path) -> None:
    import jinja2
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.routing import Route

    from postel.web.app import http_error, server_error
    from postel.web.state import TEMPLATES, Web

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("secret internals")

    config = parse_config({"hostname": "mail.example.com", "data_dir": str(tmp_path)})
    web = Web(
        context=SimpleNamespace(config=config),  # type: ignore[arg-type]
        secret=b"k" * 32,
        templates=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     autoescape=True, undefined=jinja2.StrictUndefined),
        base_url="https://mail.example.com",
        login_failures=WindowCounter(1), reset_by_ip=WindowCounter(1),
        reset_by_account=WindowCounter(1), captcha_by_ip=WindowCounter(1),
        admin=AdminContext(SimpleNamespace(), "postmaster@mail.example.com"),  # type: ignore[arg-type]
    )
    app = Starlette(routes=[Route("/boom", boom), Route("/api/boom", boom)],
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.web = web

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://x") as http:
            return await http.get("/boom"), await http.get("/api/boom")

    page, api = asyncio.run(run())
    assert page.status_code == 500 and api.status_code == 500
    assert "Something went wrong on our side" in page.text
    assert "<html" in page.text
    for answer in (page, api):
        assert "secret internals" not in answer.text and "Traceback" not in answer.text
    assert api.json() == {"error": "Something went wrong on our side. Please try again in a "
                                   "moment."}
