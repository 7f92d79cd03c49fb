"""POP3 limits over real sockets: idle timeout, connections per IP, login failures,
line length, and shutdown; each limit set through the [pop3] and [auth] config sections."""

from __future__ import annotations

import poplib
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from postel.mail.mime import parse_message_bytes
from tests.harness import PASSWORD, PostelServer

LIMITS = """
[pop3]
max_connections_per_ip = 3
max_auth_failures = 2
max_line_length = 100
[auth]
max_failures_per_account = 3
failure_delay = 0.01
failure_delay_max = 0.02
"""


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise


def start(server: PostelServer, *users: str) -> PostelServer:
    for email in users:
        server.add_user(email)
    server.start()
    wait_for_port(server.port("pop3s"))
    return server


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("pop3-limits"), extra_config=LIMITS)
    start(server, "carol@example.test", "dave@example.test", "erin@example.test")
    yield server
    server.close()


def deliver(server: PostelServer, email: str, message: bytes) -> None:
    account = server.store.directory.get_account(email)
    assert account is not None
    blob = server.store.blobs.put(message)
    server.store.mail.deliver(blob, parse_message_bytes(message), [(account.id, "INBOX")])


def count(server: PostelServer, email: str) -> int:
    account = server.store.directory.get_account(email)
    assert account is not None
    box = server.store.mail.get_mailbox(account.id, "INBOX")
    assert box is not None
    return len(server.store.mail.list_messages(box.id))


class Raw:
    def __init__(self, server: PostelServer) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port("pop3s")), timeout=30)
        self.sock = server.client_tls().wrap_socket(sock)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        data = self.buffer
        self.buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                return data
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        self.sock.close()


def test_idle_timeout_closes_silently_and_deletes_nothing(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = start(make_postel(extra_config="[pop3]\nidle_timeout = 1\n"), "idle@example.test")
    deliver(server, "idle@example.test", b"Subject: x\r\n\r\nx\r\n")
    raw = Raw(server)
    assert raw.line().startswith(b"+OK")
    raw.send(f"USER idle@example.test\r\nPASS {PASSWORD}\r\nDELE 1\r\n".encode())
    assert [raw.line()[:3] for _ in range(3)] == [b"+OK"] * 3
    # RFC 1939 3: the autologout timer closes without a response and without UPDATE.
    assert raw.until_closed() == b""
    raw.close()
    assert count(server, "idle@example.test") == 1


def test_connections_per_ip(limited: PostelServer) -> None:
    open_ = [Raw(limited) for _ in range(3)]
    for raw in open_:
        assert raw.line().startswith(b"+OK")
    # Counted at accept, before the TLS handshake (issue 15 item 3): on 995 the extra
    # connection is closed at once, no handshake is spent on it.
    with pytest.raises((ConnectionError, ssl.SSLError)):
        Raw(limited)
    with socket.create_connection(("127.0.0.1", limited.port("pop3")), timeout=30) as plain:
        assert plain.recv(200) == b"-ERR [SYS/TEMP] too many connections from your address\r\n"
    for raw in open_:
        raw.send(b"QUIT\r\n")
        assert raw.line().startswith(b"+OK")
        raw.until_closed()
        raw.close()


def test_auth_failures_close_the_connection(limited: PostelServer) -> None:
    raw = Raw(limited)
    raw.line()
    raw.send(b"USER carol@example.test\r\nPASS wrong\r\n")
    assert raw.line().startswith(b"+OK")
    assert raw.line().startswith(b"-ERR [AUTH] ")
    raw.send(b"USER carol@example.test\r\nPASS wrong again\r\n")
    assert raw.line().startswith(b"+OK")
    tail = raw.until_closed()  # max_auth_failures = 2
    assert tail.startswith(b"-ERR [AUTH] ") and b"closing" in tail
    raw.close()


def test_failures_are_counted_across_connections(limited: PostelServer) -> None:
    # [auth] max_failures_per_account = 3, then (issue 15 item 12) only 3 more guesses
    # a window are checked for the locked account: one budget across connections.
    for _ in range(6):
        client = poplib.POP3_SSL(
            "127.0.0.1", limited.port("pop3s"), context=limited.client_tls(), timeout=30
        )
        client.user("dave@example.test")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.pass_("guess")
        client.close()
    client = poplib.POP3_SSL(
        "127.0.0.1", limited.port("pop3s"), context=limited.client_tls(), timeout=30
    )
    client.user("dave@example.test")
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        client.pass_(PASSWORD)  # the budget is spent: refused, even the right password
    client.close()


def test_line_length_limit(limited: PostelServer) -> None:
    raw = Raw(limited)
    raw.line()
    raw.send(b"USER " + b"x" * 300 + b"\r\n")
    assert raw.line() == b"-ERR line too long (at most 100 octets)"
    raw.send(f"USER erin@example.test\r\nPASS {PASSWORD}\r\nQUIT\r\n".encode())
    assert [raw.line()[:3] for _ in range(3)] == [b"+OK"] * 3
    raw.close()


def test_shutdown_with_an_open_session_deletes_nothing(
    make_postel: Callable[..., PostelServer], tmp_path: Path
) -> None:
    server = start(make_postel(), "frank@example.test")
    deliver(server, "frank@example.test", b"Subject: x\r\n\r\nx\r\n")
    client = poplib.POP3_SSL(
        "127.0.0.1", server.port("pop3s"), context=server.client_tls(), timeout=30
    )
    client.user("frank@example.test")
    client.pass_(PASSWORD)
    client.dele(1)
    assert server.stop(signal.SIGTERM) == 0
    client.close()
    assert count(server, "frank@example.test") == 1
