"""Helpers shared by the IMAP integration tests (real server, real sockets)."""

from __future__ import annotations

import imaplib
import itertools
import re
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from tests.harness import PASSWORD, PostelServer

_counter = itertools.count()
_listening: set[int] = set()


def wait_listening(postel: PostelServer, timeout: float = 30.0) -> None:
    """Wait until both IMAP ports accept connections. PostelServer.start() only waits
    for the first service (SMTP); the IMAP listeners bind a moment later."""
    for name in ("imap", "imaps"):
        port = postel.port(name)
        if port in _listening:
            continue
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # readiness polling with a deadline, as the harness does
        _listening.add(port)


def new_user(postel: PostelServer, **values: object) -> str:
    """A fresh account, so tests sharing one server never see each other's mail."""
    email = f"u{next(_counter)}-{uuid.uuid4().hex[:8]}@example.test"
    postel.add_user(email, **values)  # type: ignore[arg-type]
    wait_listening(postel)
    return email


def imapclient(postel: PostelServer, user: str) -> IMAPClient:
    wait_listening(postel)
    client = IMAPClient("127.0.0.1", port=postel.port("imaps"), ssl=True,
                        ssl_context=postel.client_tls(), timeout=60)
    client.login(user, PASSWORD)
    return client


def starttls_client(postel: PostelServer, user: str | None = None) -> imaplib.IMAP4:
    wait_listening(postel)
    client = imaplib.IMAP4("127.0.0.1", postel.port("imap"), timeout=30)
    client.starttls(ssl_context=postel.client_tls())
    if user is not None:
        client.login(user, PASSWORD)
    return client


def tls_client(postel: PostelServer, user: str | None = None) -> imaplib.IMAP4_SSL:
    wait_listening(postel)
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", postel.port("imaps"), ssl_context=postel.client_tls(), timeout=30
    )
    if user is not None:
        client.login(user, PASSWORD)
    return client


def deliver(postel: PostelServer, rcpt: str, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("smtp"), timeout=30) as smtp:
        smtp.sendmail("sender@remote.test", [rcpt], message)


def message(subject: str = "hello", body: str = "body text", **headers: str) -> bytes:
    lines = ["From: Sender <sender@remote.test>", "To: someone@example.test",
             f"Subject: {subject}"]
    if "Message_ID" not in headers:
        lines.append(f"Message-ID: <{uuid.uuid4().hex}@remote.test>")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


# How Raw connects when a test does not say: "993" (implicit TLS) or "143" (STARTTLS).
# Modules that run every test over both ports switch it with the `both_ports` fixture.
DEFAULT_PORT = ["993"]


class Raw:
    """A byte-exact client over TLS (993, or 143 after STARTTLS), for the awkward cases
    libraries hide."""

    def __init__(self, postel: PostelServer, *, port: str | None = None) -> None:
        port = port or DEFAULT_PORT[0]
        wait_listening(postel)
        name = "imaps" if port == "993" else "imap"
        sock = socket.create_connection(("127.0.0.1", postel.port(name)), timeout=30)
        self.buf = b""
        self.sock: socket.socket | ssl.SSLSocket = sock
        if port == "993":
            self.sock = postel.client_tls().wrap_socket(sock, server_hostname="localhost")
            self.greeting = self.line()
            return
        self.greeting = self.line()
        assert b"STARTTLS" in self.greeting and b"LOGINDISABLED" in self.greeting
        sock.sendall(b"T STARTTLS\r\n")
        assert self.line().startswith(b"T OK")
        self.sock = postel.client_tls().wrap_socket(sock, server_hostname="localhost")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def line(self) -> bytes:
        """One response line; literals are inlined (the {n} marker stays)."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            piece, self.buf = self.buf.split(b"\r\n", 1)
            out += piece
            m = re.search(rb"\{(\d+)\}\Z", piece)
            if not m:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                self._fill()
            out += b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def cmd(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def login(self, user: str) -> None:
        assert self.cmd(b"L", f'LOGIN "{user}" "{PASSWORD}"'.encode())[-1].startswith(b"L OK")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["993", "143"])
def both_ports(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test over implicit TLS and over STARTTLS (Raw connects accordingly)."""
    DEFAULT_PORT[0] = request.param
    yield request.param
    DEFAULT_PORT[0] = "993"


def test_helpers_build_messages() -> None:
    assert message("x").startswith(b"From: ")
