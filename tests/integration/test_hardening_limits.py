"""Resource limits against hostile clients (issue 15, items 2 and 3), over real sockets."""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Iterator

import pytest

from tests.harness import PASSWORD, PostelServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("limits"), extra_config=(
        "[imap]\nmax_connections_per_ip = 5\n"
        "[web]\nmax_connections_per_ip = 5\nheader_timeout = 2\n"
    ))
    server.add_user("alice@example.test")
    server.start()
    yield server
    server.close()


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


# -- item 2: the pre-login literal budget ----------------------------------------------


def test_imap_refuses_big_literals_before_login(server: PostelServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30) as sock:
        greeting = sock.recv(4096)
        assert b"LITERAL-" in greeting and b"LITERAL+" not in greeting  # RFC 7888 5
        sock.sendall(b"s LOGIN {300000}\r\n")
        assert sock.recv(4096).startswith(b"s NO [TOOBIG]")  # no "+" continuation
        # One endless LOGIN made of many literals: refused with BAD, then closed.
        sock.sendall(b"a LOGIN {262144+}\r\n" + b"x" * 65536)
        answer = _read_until_closed(sock)
    assert answer.startswith(b"a BAD [TOOBIG]") and b"* BYE" in answer


def test_imap_literals_after_login_are_the_configured_size(server: PostelServer) -> None:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.client_tls())
    try:
        client.login("alice@example.test", PASSWORD)
        message = b"Subject: big\r\n\r\n" + b"y" * 100_000 + b"\r\n"
        assert client.append("INBOX", None, None, message)[0] == "OK"
    finally:
        client.logout()
