"""POP3 policy without sockets: a session over a fake IO and a real SQLite store."""

from __future__ import annotations

import asyncio
import base64
import io
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from postel.app import open_store
from postel.auth.limits import FailureLimiter
from postel.auth.passwords import hash_password
from postel.auth.service import Authenticator
from postel.config import Pop3Config, parse_config
from postel.mail.mime import parse_message_bytes
from postel.pop3.maildrop import MaildropLocks, TransferSizes
from postel.pop3.session import Pop3Session, Services, State
from postel.store.sql.store import SqlStore

PASSWORD = "correct horse battery"
ALICE = "alice@example.test"
_HASH = hash_password(PASSWORD)


class FakeIO:
    def __init__(self, *, keep: bool = True) -> None:
        self.out = bytearray()
        self.sent_octets = 0
        self.keep = keep
        self.closed = False
        self.tls_started = False

    async def send(self, data: bytes) -> None:
        self.sent_octets += len(data)
        if self.keep:
            self.out += data

    async def start_tls(self) -> None:
        self.tls_started = True

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = open_store(parse_config({"data_dir": str(tmp_path / "data")}))
    store.directory.add_domain("example.test")
    store.directory.add_account(ALICE, _HASH)
    yield store
    store.close()


def make_services(store: SqlStore, **config: object) -> Services:
    limiter = FailureLimiter(10, 5, 900.0)
    return Services(
        hostname="mail.example.test",
        store=store,
        authenticator=Authenticator(store, limiter),
        config=replace(Pop3Config(), **config),  # type: ignore[arg-type]
        locks=MaildropLocks(),
        sizes=TransferSizes(),
        tls_available=True,
    )


def deliver(store: SqlStore, message: bytes, email: str = ALICE) -> int:
    account = store.directory.get_account(email)
    assert account is not None
    blob = store.blobs.put(message)
    return store.mail.deliver(blob, parse_message_bytes(message), [(account.id, "INBOX")])[0].uid


class Client:
    """Drives one session in-process: send a line, get the bytes the session answered."""

    def __init__(self, services: Services, *, tls: bool = True, ip: str = "192.0.2.7") -> None:
        self.io = FakeIO()
        self.session = Pop3Session(services, self.io, ip, tls=tls)
        asyncio.run(self.session.greet())
        self.greeting = self.io.take()

    def send(self, data: bytes) -> bytes:
        asyncio.run(self.session.feed(data))
        return self.io.take()

    def cmd(self, line: str) -> bytes:
        return self.send(line.encode() + b"\r\n")

    def login(self, user: str = ALICE, password: str = PASSWORD) -> bytes:
        assert self.cmd(f"USER {user}").startswith(b"+OK")
        return self.cmd(f"PASS {password}")


def test_greeting_and_capabilities_before_tls(store: SqlStore) -> None:
    client = Client(make_services(store), tls=False)
    assert client.greeting.startswith(b"+OK mail.example.test Postel")
    capa = client.cmd("CAPA").decode()
    lines = capa.split("\r\n")
    assert lines[0].startswith("+OK") and lines[-2:] == [".", ""]
    assert "STLS" in lines
    # RFC 2595: no password mechanisms offered before TLS.
    assert "USER" not in lines and not any(x.startswith("SASL") for x in lines)
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER",
                "LOGIN-DELAY 0", "IMPLEMENTATION Postel", "UTF8 USER"):
        assert cap in lines


def test_capabilities_after_tls_and_after_login(store: SqlStore) -> None:
    client = Client(make_services(store), tls=True)
    lines = client.cmd("CAPA").decode().split("\r\n")
    assert "USER" in lines and "SASL PLAIN LOGIN" in lines and "STLS" not in lines
    client.login()
    lines = client.cmd("CAPA").decode().split("\r\n")
    # RFC 2449 6.3, 6.8: USER and SASL are announced in both states.
    assert "USER" in lines and "SASL PLAIN LOGIN" in lines and "STLS" not in lines
    assert "TOP" in lines and "UIDL" in lines


def test_plaintext_login_refused_without_tls(store: SqlStore) -> None:
    client = Client(make_services(store), tls=False, ip="127.0.0.1")
    assert client.cmd(f"USER {ALICE}").startswith(b"-ERR [SYS/PERM]")
    assert client.cmd("AUTH PLAIN").startswith(b"-ERR [SYS/PERM]")
    assert client.session.state is State.AUTHORIZATION


def test_plaintext_login_on_loopback_when_configured(store: SqlStore) -> None:
    services = make_services(store, allow_plaintext_auth_on_loopback=True)
    assert Client(services, tls=False, ip="127.0.0.1").login().startswith(b"+OK")
    remote = Client(services, tls=False, ip="192.0.2.1")
    assert remote.cmd(f"USER {ALICE}").startswith(b"-ERR")


def test_stls_upgrades_and_forgets_pipelined_plaintext(store: SqlStore) -> None:
    client = Client(make_services(store), tls=False)
    reply = client.send(b"STLS\r\nUSER injected@example.test\r\n")
    assert reply == b"+OK begin TLS negotiation\r\n"
    assert client.io.tls_started and client.session.tls
    assert client.session.user is None
    assert client.cmd("STLS").startswith(b"-ERR")
    assert client.login().startswith(b"+OK")


def test_stls_not_offered_on_implicit_tls(store: SqlStore) -> None:
    services = replace(make_services(store), tls_available=False)
    client = Client(services, tls=True)
    assert b"STLS" not in client.cmd("CAPA")
    assert client.cmd("STLS").startswith(b"-ERR")


def test_login_and_transaction_commands(store: SqlStore) -> None:
    first = b"Subject: one\r\n\r\nbody one\r\n"
    second = b"Subject: two\r\n\r\n.dot line\r\nmore\r\n"
    uid1, uid2 = deliver(store, first), deliver(store, second)
    box = store.mail.get_mailbox(store.directory.get_account(ALICE).id, "INBOX")  # type: ignore[union-attr]
    assert box is not None
    client = Client(make_services(store))
    assert client.cmd("STAT").startswith(b"-ERR")  # not before login
    assert client.cmd("PASS x").startswith(b"-ERR")  # PASS needs USER first
    total = len(first) + len(second)
    assert client.login() == f"+OK maildrop has 2 messages ({total} octets)\r\n".encode()
    assert client.cmd("STAT") == f"+OK 2 {total}\r\n".encode()
    assert client.cmd("LIST") == (
        f"+OK 2 messages ({total} octets)\r\n1 {len(first)}\r\n2 {len(second)}\r\n.\r\n"
    ).encode()
    assert client.cmd("LIST 2") == f"+OK 2 {len(second)}\r\n".encode()
    assert client.cmd("LIST 3").startswith(b"-ERR no such message")
    assert client.cmd("LIST 0").startswith(b"-ERR no such message")
    v = box.uidvalidity
    assert client.cmd("UIDL") == (
        f"+OK unique-id listing follows\r\n1 {v}.{uid1}\r\n2 {v}.{uid2}\r\n.\r\n"
    ).encode()
    assert client.cmd("UIDL 1") == f"+OK 1 {v}.{uid1}\r\n".encode()
    assert client.cmd("RETR 2") == (
        f"+OK {len(second)} octets\r\n".encode()
        + b"Subject: two\r\n\r\n..dot line\r\nmore\r\n.\r\n"
    )
    assert client.cmd("TOP 2 0") == b"+OK top of message follows\r\nSubject: two\r\n\r\n.\r\n"
    assert client.cmd("TOP 2 1") == (
        b"+OK top of message follows\r\nSubject: two\r\n\r\n..dot line\r\n.\r\n"
    )
    assert client.cmd("NOOP") == b"+OK\r\n"
    assert client.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
    assert client.cmd("DELE 1").startswith(b"-ERR message 1 already deleted")
    assert client.cmd("RETR 1").startswith(b"-ERR message 1 already deleted")
    assert client.cmd("TOP 1 0").startswith(b"-ERR")
    assert client.cmd("STAT") == f"+OK 1 {len(second)}\r\n".encode()
    assert b"\r\n1 " not in client.cmd("LIST")
    assert client.cmd("RSET").startswith(b"+OK maildrop has 2 messages")
    assert client.cmd("DELE 2") == b"+OK message 2 deleted\r\n"
    assert client.cmd("USER x").startswith(b"-ERR")  # not valid after login
    assert client.cmd("UTF8").startswith(b"-ERR")
    # Nothing is removed before QUIT ...
    assert [m.uid for m in store.mail.list_messages(box.id)] == [uid1, uid2]
    reply = client.cmd("QUIT")
    assert reply.startswith(b"+OK") and client.io.closed
    # ... and QUIT removes exactly the marked message.
    assert [m.uid for m in store.mail.list_messages(box.id)] == [uid1]
    assert client.session.state is State.UPDATE


def test_quit_in_update_publishes_an_expunge(store: SqlStore) -> None:
    deliver(store, b"Subject: x\r\n\r\nx\r\n")
    seen: list[object] = []
    store.on_commit(seen.extend)
    client = Client(make_services(store))
    client.login()
    client.cmd("DELE 1")
    client.cmd("QUIT")
    assert any(type(c).__name__ == "MessagesExpunged" for c in seen)


def test_dropped_connection_deletes_nothing_and_frees_the_lock(store: SqlStore) -> None:
    deliver(store, b"Subject: x\r\n\r\nx\r\n")
    services = make_services(store)
    client = Client(services)
    client.login()
    assert client.cmd("DELE 1").startswith(b"+OK")
    client.session.end()  # what the server does when the socket goes away
    account = store.directory.get_account(ALICE)
    assert account is not None and not services.locks.held(account.id)
    box = store.mail.get_mailbox(account.id, "INBOX")
    assert box is not None and len(store.mail.list_messages(box.id)) == 1


def test_second_login_gets_in_use(store: SqlStore) -> None:
    services = make_services(store)
    first = Client(services)
    assert first.login().startswith(b"+OK")
    second = Client(services)
    assert second.login().startswith(b"-ERR [IN-USE]")
    assert second.session.state is State.AUTHORIZATION
    assert second.session.auth_failures == 0  # the password was right
    first.cmd("QUIT")
    assert second.login().startswith(b"+OK")


def test_auth_failures_answered_with_auth_code_then_closed(store: SqlStore) -> None:
    client = Client(make_services(store, max_auth_failures=3))
    assert client.login(password="wrong").startswith(b"-ERR [AUTH]")
    # RFC 1939: after a failed PASS, USER must come again.
    assert client.cmd("PASS " + PASSWORD).startswith(b"-ERR USER first")
    assert client.login(user="alice").startswith(b"-ERR [AUTH]")  # not the full address
    assert not client.io.closed
    assert client.login(user="nobody@example.test").startswith(b"-ERR [AUTH]")
    assert client.io.closed and client.session.closing


def test_brute_force_limit_is_shared_across_connections(store: SqlStore) -> None:
    services = make_services(store, max_auth_failures=100)
    services.authenticator.limiter.per_account = 2
    client = Client(services)
    for _ in range(2):
        assert client.login(password="wrong").startswith(b"-ERR [AUTH]")
    other = Client(services)
    assert other.login().startswith(b"-ERR [SYS/TEMP]")  # even the right password, for now
    assert other.io.closed


def test_auth_plain_with_initial_response(store: SqlStore) -> None:
    client = Client(make_services(store))
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert client.cmd(f"AUTH PLAIN {token}").startswith(b"+OK maildrop has 0 messages")


def test_auth_plain_with_challenge(store: SqlStore) -> None:
    client = Client(make_services(store))
    assert client.cmd("AUTH PLAIN") == b"+ \r\n"
    token = base64.b64encode(f"{ALICE}\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert client.cmd(token).startswith(b"+OK")


def test_auth_plain_with_another_authzid_fails(store: SqlStore) -> None:
    client = Client(make_services(store))
    token = base64.b64encode(f"bob@example.test\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert client.cmd(f"AUTH PLAIN {token}").startswith(b"-ERR [AUTH]")


def test_auth_login(store: SqlStore) -> None:
    client = Client(make_services(store))
    assert client.cmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"
    assert client.cmd(base64.b64encode(ALICE.encode()).decode()) == b"+ UGFzc3dvcmQ6\r\n"
    assert client.cmd(base64.b64encode(PASSWORD.encode()).decode()).startswith(b"+OK")


def test_auth_cancel_and_garbage(store: SqlStore) -> None:
    client = Client(make_services(store))
    assert client.cmd("AUTH LOGIN") .startswith(b"+ ")
    assert client.cmd("*").startswith(b"-ERR [AUTH]")
    assert client.cmd("AUTH PLAIN").startswith(b"+ ")
    assert client.cmd("!!not base64!!").startswith(b"-ERR [AUTH]")
    assert client.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    listing = client.cmd("AUTH")
    assert listing.startswith(b"+OK") and b"\r\nPLAIN\r\nLOGIN\r\n.\r\n" in listing


def test_utf8_user_names_and_mode(store: SqlStore) -> None:
    client = Client(make_services(store))
    assert client.cmd("UTF8").startswith(b"+OK")
    assert client.session.utf8
    assert client.login(user="jösé@example.test").startswith(b"-ERR [AUTH]")


def test_malformed_input_gets_err_and_the_session_goes_on(store: SqlStore) -> None:
    client = Client(make_services(store, max_line_length=64))
    assert client.send(b"\xff\xfe\r\n").startswith(b"-ERR")
    assert client.cmd("BOGUS").startswith(b"-ERR unknown command")
    assert client.cmd("X" * 500).startswith(b"-ERR line too long")
    assert client.cmd("RETR x").startswith(b"-ERR syntax")
    assert client.cmd("NOOP").startswith(b"-ERR")  # NOOP is a TRANSACTION command
    assert client.login().startswith(b"+OK")


def test_pipelined_commands_answered_in_order(store: SqlStore) -> None:
    deliver(store, b"Subject: x\r\n\r\nx\r\n")
    client = Client(make_services(store))
    reply = client.send(f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nQUIT\r\n".encode())
    parts = reply.split(b"\r\n")
    assert parts[0].startswith(b"+OK") and parts[1].startswith(b"+OK maildrop")
    assert parts[2].startswith(b"+OK 1 ")
    assert reply.endswith(b"x\r\n.\r\n+OK mail.example.test POP3 server signing off "
                          b"(0 deleted, 1 left)\r\n")


def test_missing_blob_gets_err_not_a_broken_stream(store: SqlStore) -> None:
    deliver(store, b"Subject: gone\r\n\r\nbody\r\n")
    client = Client(make_services(store))
    client.login()
    box_id = client.session.maildrop.mailbox_id  # type: ignore[union-attr]
    sha = store.mail.list_messages(box_id)[0].blob_sha256
    store.blobs.path(sha).unlink()
    assert client.cmd("RETR 1").startswith(b"-ERR [SYS/TEMP]")
    assert client.cmd("NOOP") == b"+OK\r\n"


def test_shutdown_closes_an_idle_session_without_update(store: SqlStore) -> None:
    deliver(store, b"Subject: x\r\n\r\nx\r\n")
    services = make_services(store)
    client = Client(services)
    client.login()
    client.cmd("DELE 1")
    asyncio.run(client.session.request_shutdown())
    assert client.io.closed
    box_id = store.mail.get_mailbox(store.directory.get_account(ALICE).id, "INBOX").id  # type: ignore[union-attr]
    assert len(store.mail.list_messages(box_id)) == 1


def test_thirty_megabytes_stream_in_bounded_memory(store: SqlStore) -> None:
    line = b"0123456789" * 7 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (30 * 1024 * 1024 // len(line))
    deliver(store, body)
    del body
    client = Client(make_services(store))
    client.login()
    client.io.keep = False
    tracemalloc.start()
    try:
        client.cmd("RETR 1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.io.sent_octets > 30 * 1024 * 1024
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while streaming a 30 MB message"


def test_maildrop_that_cannot_be_opened_frees_the_lock(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = make_services(store)

    def broken(mailbox_id: int) -> list[object]:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(store.mail, "list_messages", broken)
    client = Client(services)
    assert client.login().startswith(b"-ERR [SYS/TEMP]")
    assert client.session.state is State.AUTHORIZATION
    monkeypatch.undo()
    assert client.login().startswith(b"+OK")  # the lock was not left behind


class FailingBlob(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        if self.tell() > 0:
            raise OSError("I/O error")
        return super().read(size)


def test_read_error_mid_transfer_closes_the_connection(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver(store, b"Subject: x\r\n\r\n" + b"y" * 1_000_000 + b"\r\n")
    client = Client(make_services(store))
    client.login()
    monkeypatch.setattr(store.blobs, "open", lambda sha: FailingBlob(b"z" * 2_000_000))
    out = client.cmd("RETR 1")
    assert out.startswith(b"+OK")
    assert not out.endswith(b"\r\n.\r\n")  # no fake end: the client must see a failure
    assert client.io.closed and client.session.closing
