"""Per-connection resource limits (issue 15 item 3) over real sockets: command floods,
total session time, replies a client never reads, mailboxes per account and keywords
per message and per mailbox. Each limit is answered in the protocol's own words."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.hardening_helpers import read_until_closed, running_server, send_until

CONFIG = """
[connections]
max_commands_per_second = 1
command_burst = 25
max_pending_output = 65536
send_timeout = 2
[imap]
max_mailboxes = 10
max_keywords_per_message = 3
max_keywords_per_mailbox = 5
max_notify_mailboxes = 2
[smtp]
max_junk_commands = 1000
"""

TIGHT = """
[smtp]
max_session_time = 2
[pop3]
max_session_time = 2
[imap]
max_session_time = 2
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    users = tuple(f"{user}@example.test" for user in ("alice", "bob", "carol"))
    yield from running_server(tmp_path_factory, "session-limits", CONFIG, users)


def imap(server: PostelServer, user: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                               ssl_context=server.client_tls(), timeout=30)
    client.login(f"{user}@example.test", PASSWORD)
    return client


# -- commands per second ----------------------------------------------------------------


def test_imap_command_flood_gets_bye(server: PostelServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port("imap")), 30) as sock:
        sock.recv(4096)
        sock.sendall(b"".join(b"n%d NOOP\r\n" % i for i in range(100)))
        answer = read_until_closed(sock)
    assert b"n0 OK" in answer
    assert b"* BYE Too many commands" in answer and b"n99 OK" not in answer


def test_smtp_command_flood_gets_421(server: PostelServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port("smtp")), 30) as sock:
        sock.recv(4096)
        sock.sendall(b"EHLO flood.test\r\n" + b"RSET\r\n" * 100)
        answer = read_until_closed(sock)
    assert b"421 4.7.0 too many commands" in answer


def test_pop3_command_flood_gets_err(server: PostelServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port("pop3")), 30) as sock:
        sock.recv(4096)
        sock.sendall(b"CAPA\r\n" * 100)
        answer = read_until_closed(sock)
    assert b"-ERR too many commands" in answer


# -- mailboxes and keywords -------------------------------------------------------------


def test_create_past_max_mailboxes_is_no_limit(server: PostelServer) -> None:
    client = imap(server, "alice")
    try:
        existing = len(client.list()[1])  # INBOX and the special-use mailboxes
        assert existing < 9
        for n in range(10 - existing):
            assert client.create(f"m{n}")[0] == "OK"
        typ, data = client.create("one-too-many")
        assert typ == "NO" and data[0].startswith(b"[LIMIT]")
        assert client.delete("m0")[0] == "OK"
        typ, data = client.create("x/y")  # two new mailboxes, one place left
        assert typ == "NO" and data[0].startswith(b"[LIMIT]")
        assert client.create("x")[0] == "OK"
    finally:
        client.logout()


def test_store_past_keyword_limits_is_no_limit(server: PostelServer) -> None:
    client = imap(server, "bob")
    try:
        for _ in range(2):
            assert client.append("INBOX", None, None, b"Subject: k\r\n\r\nk\r\n")[0] == "OK"
        client.select("INBOX")
        assert client.store("1", "+FLAGS", "(k1 k2 k3)")[0] == "OK"
        typ, data = client.store("1", "+FLAGS", "(k4)")  # a fourth on one message
        assert typ == "NO" and data[0].startswith(b"[LIMIT]")
        assert client.store("1", "FLAGS", r"(k4 k5 \Seen)")[0] == "OK"  # replaced: 2
        assert client.store("1", "-FLAGS", "(k4)")[0] == "OK"  # removing always may
        typ, data = client.store("2", "+FLAGS", "(k6)")  # k1..k5 in use: a sixth
        assert typ == "NO" and data[0].startswith(b"[LIMIT]")
        assert client.store("2", "+FLAGS", "(k1 k2)")[0] == "OK"
        typ, data = client.append("INBOX", "(a b c d)", None, b"Subject: k\r\n\r\nk\r\n")
        assert typ == "NO" and data[0].startswith(b"[LIMIT]")
    finally:
        client.logout()


# -- replies never read -----------------------------------------------------------------


def test_a_client_that_never_reads_is_cut_off(server: PostelServer) -> None:
    client = imap(server, "carol")
    try:
        body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1000  # ~1 MB
        for _ in range(8):
            assert client.append("INBOX", None, None, body)[0] == "OK"
    finally:
        client.logout()
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port("imaps")))
    with server.client_tls().wrap_socket(raw) as sock:
        sock.settimeout(30)
        sock.recv(4096)
        send_until(sock, f"a LOGIN carol@example.test \"{PASSWORD}\"\r\n".encode(), b"a OK")
        send_until(sock, b"b SELECT INBOX\r\n", b"b OK")
        sock.sendall(b"c FETCH 1:* BODY[]\r\n")
        # Not reading: the server's output waits, then the connection is cut.
        deadline = time.monotonic() + 120
        while b"client stopped reading" not in server.log_path.read_bytes():
            assert time.monotonic() < deadline, "the server never cut the connection"
            time.sleep(0.2)
        try:
            received = read_until_closed(sock)
        except ssl.SSLError:
            received = b""
    assert b"c OK" not in received and len(received) < 8_000_000
    # The server goes on serving; nothing went to the log as an error.
    imap(server, "carol").logout()
    assert b"Traceback" not in server.log_path.read_bytes()


# -- total session time -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    yield from running_server(tmp_path_factory, "session-time", TIGHT, ("alice@example.test",))


def test_session_time_ends_every_protocol(tight: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", tight.port("smtp"), timeout=30) as client:
        client.ehlo("slow.test")
        assert client.getreply() == (421, b"4.7.0 connection open too long, reconnect")
    with socket.create_connection(("127.0.0.1", tight.port("pop3")), 30) as sock:
        assert sock.recv(4096).startswith(b"+OK")
        assert read_until_closed(sock) == b"-ERR [SYS/TEMP] connection open too long, reconnect\r\n"
    client = imaplib.IMAP4_SSL("127.0.0.1", tight.port("imaps"),
                               ssl_context=tight.client_tls(), timeout=30)
    client.login("alice@example.test", PASSWORD)
    assert client.readline().startswith(b"* BYE Connection open too long")
    client.shutdown()


@pytest.fixture(scope="module")
def drowsy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    yield from running_server(tmp_path_factory, "imap-idle", "[imap]\nidle_timeout = 1\n",
                              ("alice@example.test",))


def test_an_idle_imap_client_is_logged_out(drowsy: PostelServer) -> None:
    """RFC 9051 5.4: an inactivity autologout, announced with an untagged BYE."""
    client = imaplib.IMAP4_SSL("127.0.0.1", drowsy.port("imaps"),
                               ssl_context=drowsy.client_tls(), timeout=30)
    client.login("alice@example.test", PASSWORD)
    assert client.readline().startswith(b"* BYE Autologout")
    assert client.readline() == b""  # and the connection closes
    client.shutdown()


def test_notify_past_max_notify_mailboxes_is_overflow(server: PostelServer) -> None:
    """RFC 5465 3.1: a NOTIFY SET too expensive to honour is refused, the old one stays."""
    client = imap(server, "carol")
    for name in ("Watch1", "Watch2", "Watch3"):
        client.create(name)
    events = "(MessageNew MessageExpunge)"
    typ, data = client.xatom("NOTIFY", f"SET (mailboxes (Watch1 Watch2 Watch3) {events})")
    assert typ == "NO" and b"NOTIFICATIONOVERFLOW" in data[0], data
    typ, _ = client.xatom("NOTIFY", f"SET (mailboxes (Watch1 Watch2) {events})")
    assert typ == "OK"
    client.logout()
