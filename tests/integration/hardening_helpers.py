"""Raw-socket helpers shared by the issue 15 hardening tests."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest

from tests.harness import PostelServer


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


def send_until(sock: socket.socket, command: bytes, marker: bytes) -> bytes:
    """Send `command`, then read until `marker` (a tagged reply) has arrived."""
    sock.sendall(command)
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}: {data!r}")
        data += chunk
    return data


def running_server(
    factory: pytest.TempPathFactory, name: str, config: str, users: tuple[str, ...]
) -> Iterator[PostelServer]:
    """Body of a module-scoped fixture: a started server with `users`, closed after."""
    server = PostelServer(factory.mktemp(name), extra_config=config)
    for user in users:
        server.add_user(user)
    server.start()
    yield server
    server.close()
