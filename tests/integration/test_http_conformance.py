"""HTTP conformance fixes from issue 11, over raw sockets to 80 and 443."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest

from tests.harness import PostelServer
from tests.web.helpers import start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("http"))
    server.add_user("alice@example.test")
    start(server)
    yield server
    server.close()


def request(server: PostelServer, port: str, target: str, host: str) -> tuple[str, bytes]:
    """Send one request as written (a library would rewrite the target); return the
    status line and the whole response."""
    sock: socket.socket | ssl.SSLSocket = socket.create_connection(
        ("127.0.0.1", server.port(port)), timeout=30)
    if port == "https":
        sock = server.client_tls().wrap_socket(sock, server_hostname="localhost")
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                 .encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data.split(b"\r\n", 1)[0].decode(), data


@pytest.mark.parametrize("port", ["http", "https"])
def test_absolute_form_request_target(server: PostelServer, port: str) -> None:
    """RFC 9112 3.2.2: a server MUST accept the absolute-form, and its authority replaces
    the Host header. Thunderbird asks for autoconfig this way through a proxy."""
    target = ("http://autoconfig.example.test/mail/config-v1.1.xml"
              "?emailaddress=alice%40example.test")
    status, data = request(server, port, target, "proxy.invalid")
    assert status == "HTTP/1.1 200 OK", data
    assert b"<clientConfig" in data and b"example.test" in data
    target = "http://example.test/.well-known/autoconfig/mail/config-v1.1.xml"
    status, data = request(server, port, target, "proxy.invalid")
    assert status == "HTTP/1.1 200 OK", data


def test_absolute_form_redirect_on_80_keeps_the_path(server: PostelServer) -> None:
    status, data = request(server, "http", "http://mail.example.test/logon?x=1", "other")
    assert status.startswith("HTTP/1.1 301"), data
    port = server.port("https")
    assert f"\r\nlocation: https://mail.example.test:{port}/logon?x=1\r\n".encode() in (
        data.lower()), data
