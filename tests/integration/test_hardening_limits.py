"""Resource limits against hostile clients (issue 15, items 2 and 3), over real sockets."""

from __future__ import annotations

import imaplib
import socket
from collections.abc import Iterator

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.hardening_helpers import read_until_closed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("limits"), extra_config=(
        "[imap]\nmax_connections_per_ip = 5\n"
        "[web]\nmax_connections_per_ip = 5\nheader_timeout = 60\n"
        "[connections]\nhandshake_timeout = 60\n"
    ))
    server.add_user("alice@example.test")
    server.start()
    yield server
    server.close()


# -- item 2: the pre-login literal budget ----------------------------------------------


def test_imap_refuses_big_literals_before_login(server: PostelServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30) as sock:
        greeting = sock.recv(4096)
        assert b"LITERAL-" in greeting and b"LITERAL+" not in greeting  # RFC 7888 5
        sock.sendall(b"s LOGIN {300000}\r\n")
        assert sock.recv(4096).startswith(b"s NO [TOOBIG]")  # no "+" continuation
        # One endless LOGIN made of many literals: refused with BAD, then closed.
        sock.sendall(b"a LOGIN {262144+}\r\n" + b"x" * 65536)
        answer = read_until_closed(sock)
    assert answer.startswith(b"a BAD [TOOBIG]") and b"* BYE" in answer


def test_imap_literals_after_login_are_the_configured_size(server: PostelServer) -> None:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.client_tls())
    try:
        client.login("alice@example.test", PASSWORD)
        message = b"Subject: big\r\n\r\n" + b"y" * 100_000 + b"\r\n"
        assert client.append("INBOX", None, None, message)[0] == "OK"
    finally:
        client.logout()


# -- item 3: connections counted at accept, handshakes and headers timed out -----------


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("impatient"), extra_config=(
        "[web]\nheader_timeout = 1\n[connections]\nhandshake_timeout = 1\n"
    ))
    server.start()
    yield server
    server.close()


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes (EOF or reset); False if it answers instead."""
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True


def _tls_greeting(server: PostelServer, port: int, source: str) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    with server.client_tls().wrap_socket(raw) as tls:
        return tls.recv(4096)


@pytest.mark.parametrize("service", ["imaps", "https"])
def test_unfinished_handshakes_count_per_address(server: PostelServer, service: str) -> None:
    port = server.port(service)
    held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(5)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sixth:
            assert _closed_by_server(sixth)  # refused at accept, no handshake spent
        # Another address is served meanwhile.
        if service == "imaps":
            assert _tls_greeting(server, port, "127.0.0.2").startswith(b"* OK")
        else:
            raw = socket.create_connection(
                ("127.0.0.1", port), timeout=30, source_address=("127.0.0.2", 0))
            with server.client_tls().wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: mail.example.test\r\n"
                            b"Connection: close\r\n\r\n")
                assert tls.recv(4096).startswith(b"HTTP/1.1 ")
    finally:
        for sock in held:
            sock.close()
    # The slots come back when the connections end.
    if service == "imaps":
        assert _tls_greeting(server, port, "127.0.0.1").startswith(b"* OK")


@pytest.mark.parametrize("service", ["imaps", "pop3s", "submissions", "https"])
def test_an_unfinished_handshake_is_cut(impatient: PostelServer, service: str) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port(service)), timeout=30) as sock:
        sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        assert _closed_by_server(sock)


@pytest.mark.parametrize("service", ["http", "https"])
def test_trickled_http_headers_are_cut(impatient: PostelServer, service: str) -> None:
    raw = socket.create_connection(("127.0.0.1", impatient.port(service)), timeout=30)
    sock = impatient.client_tls().wrap_socket(raw) if service == "https" else raw
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: mail.example.test\r\nX-Slow: ")
        assert _closed_by_server(sock)
