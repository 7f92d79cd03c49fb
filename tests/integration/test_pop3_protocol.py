"""POP3 over real sockets with poplib: 110 + STLS and 995, against a real Postel process."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import itertools
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from postel.mail.mime import parse_message_bytes
from tests.harness import PASSWORD, PostelServer

_names = itertools.count(1)


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """The harness waits for the first listener only; POP3 binds a moment after SMTP."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise


@pytest.fixture(scope="module")
def server(postel: PostelServer) -> PostelServer:
    wait_for_port(postel.port("pop3"))
    wait_for_port(postel.port("pop3s"))
    return postel


@pytest.fixture
def user(server: PostelServer) -> str:
    """A fresh account per test, so tests never see each other's maildrops."""
    email = f"pop{next(_names)}@example.test"
    server.add_user(email)
    return email


def inbox_id(server: PostelServer, email: str) -> int:
    account = server.store.directory.get_account(email)
    assert account is not None
    box = server.store.mail.get_mailbox(account.id, "INBOX")
    assert box is not None
    return box.id


def deliver(server: PostelServer, email: str, message: bytes) -> int:
    """Store a message as is, bypassing SMTP's normalisation (bare LFs survive)."""
    store = server.store
    account = store.directory.get_account(email)
    assert account is not None
    blob = store.blobs.put(message)
    return store.mail.deliver(blob, parse_message_bytes(message), [(account.id, "INBOX")])[0].uid


def uids(server: PostelServer, email: str) -> list[int]:
    return [m.uid for m in server.store.mail.list_messages(inbox_id(server, email))]


def over_995(server: PostelServer, email: str | None = None) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL(
        "127.0.0.1", server.port("pop3s"), context=server.client_tls(), timeout=30
    )
    if email is not None:
        client.user(email)
        client.pass_(PASSWORD)
    return client


def over_110(server: PostelServer, email: str | None = None) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=30)
    client.stls(context=server.client_tls())
    if email is not None:
        client.user(email)
        client.pass_(PASSWORD)
    return client


def login_when_free(server: PostelServer, email: str) -> poplib.POP3_SSL:
    """Log in, retrying while an old session of this user still holds the lock (the
    server has not yet seen that its connection dropped). Bounded, no fixed sleep."""
    deadline = time.monotonic() + 20
    while True:
        client = over_995(server)
        client.user(email)
        try:
            client.pass_(PASSWORD)
            return client
        except poplib.error_proto as exc:
            client.close()
            if b"[IN-USE]" not in exc.args[0] or time.monotonic() > deadline:
                raise


def joined(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


class RawTls:
    """Exact bytes on the wire over implicit TLS (poplib hides the byte-stuffing)."""

    def __init__(self, server: PostelServer) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port("pop3s")), timeout=30)
        self.sock = server.client_tls().wrap_socket(sock)
        self.buffer = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed; pending {self.buffer!r}")
        self.buffer += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def multiline(self) -> bytes:
        """A multi-line body up to and including the terminating ".\\r\\n", verbatim."""
        while not (self.buffer.startswith(b".\r\n") or b"\r\n.\r\n" in self.buffer):
            self._fill()
        empty = self.buffer.startswith(b".\r\n")
        end = 3 if empty else self.buffer.index(b"\r\n.\r\n") + 5
        body, self.buffer = self.buffer[:end], self.buffer[end:]
        return body

    def close(self) -> None:
        self.sock.close()


# -- every command -------------------------------------------------------------------


def test_every_command_over_110_with_stls(server: PostelServer, user: str) -> None:
    first = b"Subject: one\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"
    second = b"Subject: two\r\n\r\nsecond\r\n"
    uid1, uid2 = deliver(server, user, first), deliver(server, user, second)
    client = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=30)
    assert client.getwelcome().startswith(b"+OK")
    before = client.capa()
    assert "STLS" in before and "USER" not in before and "SASL" not in before
    with pytest.raises(poplib.error_proto, match="STLS"):
        client.user(user)  # RFC 2595: no password before TLS
    client.stls(context=server.client_tls())
    after = client.capa()
    assert "STLS" not in after and "USER" in after and after["SASL"] == ["PLAIN", "LOGIN"]
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert cap in after
    assert after["EXPIRE"] == ["NEVER"] and after["LOGIN-DELAY"] == ["0"]
    assert after["IMPLEMENTATION"] == ["Postel"] and after["UTF8"] == ["USER"]
    assert client.utf8().startswith(b"+OK")  # RFC 6856, before login
    client.user(user)
    total = len(first) + len(second)
    assert client.pass_(PASSWORD) == f"+OK maildrop has 2 messages ({total} octets)".encode()
    assert client.stat() == (2, total)
    response, listing, _ = client.list()
    assert listing == [f"1 {len(first)}".encode(), f"2 {len(second)}".encode()]
    assert client.list(2) == f"+OK 2 {len(second)}".encode()
    box = server.store.mail.get_mailbox_by_id(inbox_id(server, user))
    assert box is not None
    _, ids, _ = client.uidl()
    assert ids == [f"1 {box.uidvalidity}.{uid1}".encode(), f"2 {box.uidvalidity}.{uid2}".encode()]
    assert client.uidl(1) == f"+OK 1 {box.uidvalidity}.{uid1}".encode()
    response, lines, octets = client.retr(1)
    assert response == f"+OK {len(first)} octets".encode()
    assert joined(lines) == first and octets == len(first)
    assert client.noop() == b"+OK"
    assert client.dele(1).startswith(b"+OK")
    assert client.stat() == (1, len(second))
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.retr(1)
    assert client.rset().startswith(b"+OK maildrop has 2 messages")
    assert client.stat() == (2, total)
    with pytest.raises(poplib.error_proto, match="no such message"):
        client.retr(3)
    with pytest.raises(poplib.error_proto):
        client.apop(user, PASSWORD)  # not offered (it needs plaintext passwords stored)
    assert client.quit().startswith(b"+OK")
    assert uids(server, user) == [uid1, uid2]


def test_every_command_over_995_with_auth_plain(server: PostelServer, user: str) -> None:
    message = b"Subject: x\r\n\r\nbody\r\n"
    deliver(server, user, message)
    client = over_995(server)
    capa = client.capa()
    assert "STLS" not in capa and "USER" in capa
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
    assert client._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK maildrop has 1 messages")
    assert client.stat() == (1, len(message))
    assert joined(client.retr(1)[1]) == message
    assert joined(client.top(1, 0)[1]) == b"Subject: x\r\n\r\n"
    assert client.dele(1).startswith(b"+OK")
    assert client.quit().startswith(b"+OK")
    assert uids(server, user) == []


def test_auth_login_over_110(server: PostelServer, user: str) -> None:
    client = over_110(server)
    assert client._shortcmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6"
    assert client._shortcmd(base64.b64encode(user.encode()).decode()) == b"+ UGFzc3dvcmQ6"
    assert client._shortcmd(base64.b64encode(PASSWORD.encode()).decode()).startswith(b"+OK")
    client.quit()


def test_wrong_password_is_auth_error(server: PostelServer, user: str) -> None:
    client = over_995(server)
    client.user(user)
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[AUTH\]"):
        client.pass_("not the password")
    client.user(user)
    assert client.pass_(PASSWORD).startswith(b"+OK")  # the connection keeps serving
    client.quit()


def test_top_with_zero_and_n_lines(server: PostelServer, user: str) -> None:
    message = b"From: a@b.test\r\nSubject: top\r\n\r\n.first\r\nsecond\r\nthird\r\n"
    deliver(server, user, message)
    client = over_995(server, user)
    response, lines, _ = client.top(1, 0)
    assert response.startswith(b"+OK")
    assert joined(lines) == b"From: a@b.test\r\nSubject: top\r\n\r\n"
    two = b"From: a@b.test\r\nSubject: top\r\n\r\n.first\r\nsecond\r\n"
    assert joined(client.top(1, 2)[1]) == two
    assert joined(client.top(1, 1000)[1]) == message
    client.quit()


# -- the maildrop: deletes, locks, UIDL ----------------------------------------------------


def test_deletes_happen_only_at_quit_and_reach_imap_as_expunges(
    server: PostelServer, user: str
) -> None:
    kept = deliver(server, user, b"Subject: keep\r\n\r\nk\r\n")
    gone = deliver(server, user, b"Subject: delete\r\n\r\nd\r\n")
    box_id = inbox_id(server, user)
    modseq = server.store.mail.get_mailbox_by_id(box_id).highestmodseq  # type: ignore[union-attr]
    client = over_995(server, user)
    client.dele(2)
    client.noop()
    assert uids(server, user) == [kept, gone]  # marked, not removed
    client.quit()  # +OK comes after the UPDATE committed
    assert uids(server, user) == [kept]
    # What an IMAP session (IDLE, QRESYNC) asks the store: the UID is an expunge.
    assert server.store.mail.changes_since(box_id, modseq).expunged_uids == [gone]


def test_imap_stays_open_alongside_and_sees_the_deletes(server: PostelServer, user: str) -> None:
    deliver(server, user, b"Subject: 1\r\n\r\n1\r\n")
    deliver(server, user, b"Subject: 2\r\n\r\n2\r\n")
    wait_for_port(server.port("imaps"))
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.client_tls())
    imap.login(user, PASSWORD)
    assert imap.select("INBOX") == ("OK", [b"2"])
    client = over_995(server, user)  # no IN-USE: only a second POP3 login is refused
    client.dele(1)
    client.quit()
    imap.noop()
    assert imap.untagged_responses.get("EXPUNGE") == [b"1"]
    imap.logout()


def test_rset_undoes_marks(server: PostelServer, user: str) -> None:
    first = deliver(server, user, b"Subject: 1\r\n\r\n1\r\n")
    client = over_995(server, user)
    client.dele(1)
    client.rset()
    client.quit()
    assert uids(server, user) == [first]


def test_dropped_connection_deletes_nothing(server: PostelServer, user: str) -> None:
    first = deliver(server, user, b"Subject: 1\r\n\r\n1\r\n")
    second = deliver(server, user, b"Subject: 2\r\n\r\n2\r\n")
    client = over_995(server, user)
    client.dele(1)
    client.dele(2)
    client.sock.shutdown(socket.SHUT_RDWR)  # no QUIT: the phone lost its signal
    client.close()
    # Logging in again proves the server has finished with the old session.
    again = login_when_free(server, user)
    assert again.stat()[0] == 2
    again.quit()
    assert uids(server, user) == [first, second]


def test_second_concurrent_login_gets_in_use(server: PostelServer, user: str) -> None:
    deliver(server, user, b"Subject: 1\r\n\r\n1\r\n")
    first = over_995(server, user)
    second = over_110(server)
    second.user(user)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    assert first.stat()[0] == 1  # the first session is untouched
    first.quit()
    second.user(user)  # still in AUTHORIZATION: may try again on the same connection
    assert second.pass_(PASSWORD).startswith(b"+OK")
    second.quit()


def test_list_is_fixed_at_login_and_new_mail_appears_next_time(
    server: PostelServer, user: str
) -> None:
    deliver(server, user, b"Subject: old\r\n\r\nold\r\n")
    client = over_995(server, user)
    assert client.stat()[0] == 1
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as smtp:
        smtp.sendmail("x@remote.test", [user], b"Subject: new\r\n\r\nnew\r\n")
    assert client.stat()[0] == 1
    assert len(client.uidl()[1]) == 1
    client.quit()
    client = over_995(server, user)
    assert client.stat()[0] == 2
    assert joined(client.retr(2)[1]).endswith(b"Subject: new\r\n\r\nnew\r\n")
    client.quit()


def test_uidl_is_stable_across_sessions_expunges_and_restarts(
    server: PostelServer, user: str
) -> None:
    a = deliver(server, user, b"Subject: a\r\n\r\na\r\n")
    b = deliver(server, user, b"Subject: b\r\n\r\nb\r\n")
    c = deliver(server, user, b"Subject: c\r\n\r\nc\r\n")

    def unique_ids() -> dict[str, bytes]:
        client = over_995(server, user)
        _, lines, _ = client.uidl()
        by_id = {}
        for line in lines:
            number, unique = line.split()
            by_id[unique.decode()] = joined(client.retr(int(number))[1])
        client.quit()
        return by_id

    first = unique_ids()
    assert len(first) == 3
    assert unique_ids() == first  # a client that leaves mail on the server sees the same
    # Another client (IMAP, via the same store call) expunges b; new mail arrives.
    server.store.mail.expunge(inbox_id(server, user), [b])
    d = deliver(server, user, b"Subject: d\r\n\r\nd\r\n")
    second = unique_ids()
    assert len(second) == 3
    kept = {k: v for k, v in first.items() if b"Subject: b" not in v}
    assert {k: second[k] for k in kept} == kept  # a and c keep their unique ids ...
    (new_id,) = set(second) - set(first)
    assert second[new_id].startswith(b"Subject: d")  # ... and d's is new, never b's
    assert [a, c, d] == uids(server, user)
    server.stop()
    server.start()
    wait_for_port(server.port("pop3s"))
    assert unique_ids() == second  # and they survive a restart


# -- bytes on the wire ---------------------------------------------------------------------


def test_dot_lines_bare_lf_and_8bit_are_byte_exact(server: PostelServer, user: str) -> None:
    stored = (
        b"From: a@b.test\nSubject: =?utf-8?q?x?=\n\n"
        b".\n"
        b"..double\n"
        b".leading\r\n"
        + "8-bit: Grüße, 日本\n".encode()
        + b"bare\rcr\n"
        b"\n.\n"
        b"last line without newline"
    )
    expected = (
        b"From: a@b.test\r\nSubject: =?utf-8?q?x?=\r\n\r\n"
        b".\r\n"
        b"..double\r\n"
        b".leading\r\n"
        + "8-bit: Grüße, 日本\r\n".encode()
        + b"bare\r\ncr\r\n"
        b"\r\n.\r\n"
        b"last line without newline\r\n"
    )
    deliver(server, user, stored)
    raw = RawTls(server)
    raw.send(f"USER {user}\r\nPASS {PASSWORD}\r\nLIST 1\r\nRETR 1\r\n".encode())
    assert raw.line().startswith(b"+OK")
    assert raw.line().startswith(b"+OK")
    assert raw.line() == f"+OK 1 {len(expected)}".encode()
    assert raw.line() == f"+OK {len(expected)} octets".encode()
    wire = raw.multiline()
    assert wire == (
        b"From: a@b.test\r\nSubject: =?utf-8?q?x?=\r\n\r\n"
        b"..\r\n"
        b"...double\r\n"
        b"..leading\r\n"
        + "8-bit: Grüße, 日本\r\n".encode()
        + b"bare\r\ncr\r\n"
        b"\r\n..\r\n"
        b"last line without newline\r\n"
        b".\r\n"
    )
    raw.send(b"QUIT\r\n")
    assert raw.line().startswith(b"+OK")
    raw.close()
    # And what a real client reconstructs after un-stuffing, with the octet count.
    client = over_110(server, user)
    _, lines, octets = client.retr(1)
    assert joined(lines) == expected
    assert octets == len(expected) == client.stat()[1]
    client.quit()


def test_thirty_megabyte_message(server: PostelServer, user: str) -> None:
    line = b"abcdefghijklmnopqrstuvwxyz0123456789" * 2 + b"\r\n"
    message = b"Subject: big\r\n\r\n" + line * (30 * 1024 * 1024 // len(line))
    digest = hashlib.sha256(message).hexdigest()
    deliver(server, user, message)
    size = len(message)
    del message
    client = over_995(server, user)
    assert client.stat() == (1, size)
    response, lines, octets = client.retr(1)
    assert response == f"+OK {size} octets".encode()
    assert octets == size
    assert hashlib.sha256(joined(lines)).hexdigest() == digest
    del lines
    assert len(client.top(1, 3)[1]) == 5  # TOP stops early on a big message
    client.quit()


# -- robustness ----------------------------------------------------------------------------


def test_malformed_input_gets_err_and_the_server_keeps_serving(
    server: PostelServer, user: str
) -> None:
    raw = RawTls(server)
    for bad in (b"BOGUS\r\n", b"\xff\xfe\xfd\r\n", b"RETR\r\n", b"TOP 1\r\n", b"LIST x y\r\n",
                b"\r\n", b"USER\r\n", b"AUTH X Y Z\r\n", b"RETR 1\r\n", b"STAT\r\n"):
        raw.send(bad)
        reply = raw.line()
        assert reply.startswith(b"-ERR "), (bad, reply)
        assert b"Traceback" not in reply
    raw.send(b"X" * 5000 + b"\r\n")  # longer than max_line_length (1024)
    assert raw.line().startswith(b"-ERR line too long")
    raw.send(f"USER {user}\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode())
    assert [raw.line()[:3] for _ in range(4)] == [b"+OK"] * 4
    raw.close()


def test_pipelined_commands(server: PostelServer, user: str) -> None:
    deliver(server, user, b"Subject: p\r\n\r\n.p\r\n")
    raw = RawTls(server)
    commands = ["CAPA", f"USER {user}", f"PASS {PASSWORD}", "STAT", "RETR 1", "UIDL", "QUIT"]
    raw.send("".join(c + "\r\n" for c in commands).encode())  # one write, seven commands
    assert raw.line().startswith(b"+OK")
    assert b"PIPELINING" in raw.multiline()
    assert raw.line().startswith(b"+OK")
    assert raw.line().startswith(b"+OK maildrop has 1")
    assert raw.line().startswith(b"+OK 1 ")
    assert raw.line().startswith(b"+OK")
    assert raw.multiline() == b"Subject: p\r\n\r\n..p\r\n.\r\n"
    assert raw.line().startswith(b"+OK")
    assert raw.multiline().startswith(b"1 ")
    assert raw.line().startswith(b"+OK")
    raw.close()


@pytest.fixture
def tls_failure_client(server: PostelServer) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.port("pop3s")), timeout=30)
    yield sock
    sock.close()


def test_plaintext_on_995_costs_one_connection_only(
    server: PostelServer, user: str, tls_failure_client: socket.socket
) -> None:
    tls_failure_client.sendall(b"USER x\r\n")  # not a TLS ClientHello
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        data = tls_failure_client.recv(100)
        if not data:
            raise ConnectionError("closed")
    client = over_995(server, user)  # the server is fine
    client.quit()
