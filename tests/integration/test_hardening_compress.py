"""A COMPRESS=DEFLATE bomb after login (issue 15, item 5): a small compressed stream that
inflates to a gigabyte must be inflated only as fast as the command parser consumes it,
meet the per-command limits, and end its connection, while other clients are served."""

from __future__ import annotations

import imaplib
import socket
import ssl
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.hardening_helpers import send_until

GIB = 1024 * 1024 * 1024
BLOCK = b"\0" * (1024 * 1024)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("compress"))
    server.add_user("alice@example.test")
    server.start()
    yield server
    server.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _compressed_login(server: PostelServer) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port("imaps")), timeout=30)
    sock = server.client_tls().wrap_socket(raw)
    sock.recv(4096)
    send_until(sock, f'a LOGIN alice@example.test "{PASSWORD}"\r\n'.encode(), b"a OK")
    send_until(sock, b"b COMPRESS DEFLATE\r\n", b"b OK")
    return sock


def _bomb(sock: ssl.SSLSocket, prefix: bytes) -> bool:
    """Send `prefix` and then zeros, compressed, up to 1 GiB inflated; True when the
    server closed the connection before all of it was sent."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    try:
        sock.sendall(deflate.compress(prefix))
        for _ in range(GIB // len(BLOCK)):
            sock.sendall(deflate.compress(BLOCK) + deflate.flush(zlib.Z_SYNC_FLUSH))
    except (ConnectionError, ssl.SSLError):
        return True
    # All sent: the server must still close it (it may have read everything).
    try:
        while sock.recv(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    return True


def _other_client_is_served(server: PostelServer) -> None:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.client_tls())
    try:
        client.login("alice@example.test", PASSWORD)
        assert client.noop()[0] == "OK"
    finally:
        client.logout()


@pytest.mark.parametrize("prefix", [
    b"c NOOP ",  # a line that never ends
    b"c APPEND INBOX {1073741824+}\r\n",  # a literal+ bigger than any command may be
])
def test_a_deflate_bomb_is_cut_and_memory_stays_bounded(
    server: PostelServer, prefix: bytes
) -> None:
    assert server.process is not None
    before = _rss_kib(server.process.pid)
    sock = _compressed_login(server)
    with sock:
        assert _bomb(sock, prefix)
    _other_client_is_served(server)
    assert _rss_kib(server.process.pid) - before < 256 * 1024
