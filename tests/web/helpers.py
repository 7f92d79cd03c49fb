"""Shared helpers for the web tests (HTTP clients, forms, mail from the store)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from email.policy import default
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.harness import PASSWORD, PostelServer

WEB_CONFIG = "[web]\ntest_hooks = true\n"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHALLENGE = re.compile(r'name="challenge" value="([^"]+)"')
LINK = re.compile(r"https://\S+/reset-password\?token=[A-Za-z0-9_\-]+")


def make_web_server(make_postel: Callable[..., PostelServer], **kwargs: Any) -> PostelServer:
    return make_postel(extra_config=WEB_CONFIG + kwargs.pop("extra", ""), **kwargs)


def start(server: PostelServer) -> PostelServer:
    """Start and wait until HTTPS accepts (it may bind after the first mail port)."""
    server.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port("https")), timeout=1).close()
            return server
        except OSError:
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.02)


def client(server: PostelServer) -> httpx.Client:
    return httpx.Client(
        base_url=f"https://127.0.0.1:{server.port('https')}", verify=False, timeout=30,
        follow_redirects=False,
    )


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


def logon(http: httpx.Client, email: str, password: str) -> httpx.Response:
    page = http.get("/logon")
    return http.post("/logon", data={"csrf_token": csrf(page.text), "email": email,
                                     "password": password, "next": "/"})


def solve_captcha(http: httpx.Client, html: str) -> tuple[str, str]:
    found = CHALLENGE.search(html)
    assert found, html
    challenge = found.group(1)
    answer = http.get(f"/__test__/captcha/{challenge}")
    assert answer.status_code == 200
    return challenge, answer.text


def wait_for_mail(server: PostelServer, email: str, count: int, timeout: float = 20) -> list[
        Message]:
    """Poll the store until `email`'s INBOX has `count` messages (mail goes out after
    the response); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        messages = server.inbox(email)
        if len(messages) >= count:
            return [message_from_bytes(m, policy=default) for m in messages]
        assert time.monotonic() < deadline, f"{email} got {len(messages)} of {count} mails"
        time.sleep(0.05)


def reset_link(message: Message) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    found = LINK.search(text)
    assert found, text
    return found.group(0)


def ask_reset(http: httpx.Client, email: str) -> httpx.Response:
    """Fill in "Forgot your password?" for `email`, CAPTCHA solved."""
    page = http.get("/forgot-password")
    assert page.status_code == 200
    challenge, answer = solve_captcha(http, page.text)
    return http.post("/forgot-password", data={
        "csrf_token": csrf(page.text), "email": email, "challenge": challenge,
        "captcha": answer,
    })


def local_path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def api_logon(http: httpx.Client, email: str) -> str:
    """Sign in through the JSON API; returns the session's CSRF token."""
    token = http.get("/api/v1/session").json()["csrf_token"]
    answer = http.post("/api/v1/session", json={"email": email, "password": PASSWORD},
                       headers={"X-CSRF-Token": token})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["authenticated"] and body["email"] == email
    return str(body["csrf_token"])
