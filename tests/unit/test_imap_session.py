"""The session without sockets: a real SQLite store, a fake IO, commands as bytes.

A grammar-shaped fuzzer throws random commands at every handler: each must end with a
tagged response (or a continuation request), never an exception.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel.auth.limits import FailureLimiter
from postel.auth.service import Authenticator
from postel.config import ImapConfig
from postel.imap.proto.receiver import Receiver
from postel.imap.session import ImapSession, Services, State
from postel.mail.mime import parse_message_bytes
from postel.store.blobs import BlobStore
from postel.store.bus import InProcessBus
from postel.store.sql.migrate import upgrade
from postel.store.sql.store import SqlStore, open_store

MESSAGES = [
    b"Subject: one\r\nFrom: a@b.test\r\n\r\nfirst\r\n",
    b"Subject: two\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n--x--\r\n",
    b"garbage without header or end\x00\xff",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
]


class FakeIO:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    async def flush(self) -> None:
        pass

    async def maybe_flush(self) -> None:
        pass

    async def start_tls(self) -> None:
        pass

    async def start_compression(self, pending: bytes) -> bytes:
        return pending


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    root = tmp_path_factory.mktemp("imapstore")
    store = open_store(f"sqlite:///{root / 'db.sqlite'}", BlobStore(root / "b", root / "t"))
    upgrade(store.engine)
    store.directory.add_domain("example.test")
    account = store.directory.add_account("fuzz@example.test", "x")
    for raw in MESSAGES:
        store.mail.deliver(store.blobs.put(raw), parse_message_bytes(raw), [(account.id, "INBOX")])
    yield store
    store.close()


def make_services(store: SqlStore, tmp: Path, config: ImapConfig | None = None) -> Services:
    return Services(
        hostname="test", store=store, bus=InProcessBus(),
        authenticator=Authenticator(store, FailureLimiter(10, 10, 60)),
        limiter=FailureLimiter(10, 10, 60), config=config or ImapConfig(), tmp_dir=tmp,
    )


async def _run(store: SqlStore, tmp: Path, data: bytes, *, select: bool) -> bytes:
    services = make_services(store, tmp, ImapConfig(max_line_length=2000))
    io = FakeIO()
    receiver = Receiver(max_line_length=2000, max_literal_size=1000)
    session = ImapSession(services, io, receiver, "127.0.0.1", tls=True, tls_available=True)
    session.account = store.directory.get_account("fuzz@example.test")
    session.state = State.AUTHENTICATED
    session.subscribe()
    if select:
        receiver.feed(b"s0 EXAMINE INBOX\r\n")
    receiver.feed(data)
    while (event := receiver.next_event()) is not None:
        await session.handle(event)
        if session.closed:
            break
    session.close()
    return bytes(io.out)


def run(store: SqlStore, tmp: Path, data: bytes, *, select: bool = True) -> bytes:
    return asyncio.run(_run(store, tmp, data, select=select))


def test_examine_and_fetch_everything(store: SqlStore, tmp_path: Path) -> None:
    out = run(store, tmp_path, b"f FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE BODY[] "
                               b"BINARY.SIZE[1] BODY[1.MIME] RFC822.SIZE)\r\n")
    assert b"f OK FETCH completed" in out
    assert out.count(b" FETCH (") == 4


TOKENS = [
    "1", "2", "1:*", "*", "$", "4:2", "0", "INBOX", '"Trash"', "(", ")", "FLAGS", "UID",
    "BODY[]", "BODY.PEEK[1.2.MIME]", "BODY[HEADER.FIELDS (FROM)]", "BINARY[1]<0.5>",
    "(\\Seen)", "\\Deleted", "ALL", "NIL", "{0+}\r\n", "{3+}\r\nabc", "~{1+}\r\n\x00",
    "HEADER", "SUBJECT", "OR", "NOT", "RETURN", "(MIN COUNT SAVE)", "(CHANGEDSINCE 1)",
    "+FLAGS", "-FLAGS.SILENT", "(UNCHANGEDSINCE 2)", "CHARSET", "UTF-8", "1-Jan-2020",
    "&Jjo-", "Work/%", "\"\"", "(REVERSE DATE)", "REFERENCES", "(MESSAGES SIZE)",
]
NAMES = [
    "FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH", "SORT", "THREAD",
    "COPY", "MOVE", "UID MOVE", "EXPUNGE", "UID EXPUNGE", "LIST", "LSUB", "STATUS",
    "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "APPEND", "SELECT", "EXAMINE", "CLOSE",
    "UNSELECT", "NOOP", "CHECK", "ENABLE", "ID", "NAMESPACE", "GETQUOTAROOT", "GETQUOTA",
    "CAPABILITY", "UID COPY",
]


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(NAMES), st.lists(st.sampled_from(TOKENS), max_size=6))
def test_random_commands_never_crash(
    store: SqlStore, tmp_path: Path, name: str, args: list[str]
) -> None:
    line = ("t1 " + name + (" " if args else "") + " ".join(args) + "\r\n").encode()
    out = run(store, tmp_path, line + b"t2 NOOP\r\n")
    assert re.search(rb"^t1 (OK|NO|BAD)", out, re.M) or b"+ Ready" in out, out
    assert b"t2 OK" in out or b"t1 BAD" in out or b"+ Ready" in out, out


def test_overlong_sasl_response_ends_authenticate(store: SqlStore, tmp_path: Path) -> None:
    async def go() -> bytes:
        services = make_services(store, tmp_path)
        io = FakeIO()
        receiver = Receiver(max_line_length=100)
        session = ImapSession(services, io, receiver, "127.0.0.1", tls=True,
                              tls_available=True)
        receiver.feed(b"a AUTHENTICATE PLAIN\r\n" + b"A" * 300 + b"\r\nb NOOP\r\n")
        while (event := receiver.next_event()) is not None:
            await session.handle(event)
        return bytes(io.out)

    out = asyncio.run(go())
    assert out == b"+ \r\na BAD [TOOBIG] Line too long\r\nb OK NOOP completed\r\n"


def test_missing_body_file_does_not_corrupt_the_stream(
    store: SqlStore, tmp_path: Path
) -> None:
    account = store.directory.get_account("fuzz@example.test")
    assert account is not None
    store.mail.create_mailbox(account.id, "Broken")
    raw = b"Subject: lost\r\n\r\nthe body file will vanish\r\n"
    ref = store.blobs.put(raw)
    store.mail.deliver(ref, parse_message_bytes(raw), [(account.id, "Broken")])
    store.blobs.path(ref.sha256).unlink()
    out = run(store, tmp_path, b"s SELECT Broken\r\nf FETCH 1 (UID BODY.PEEK[])\r\n"
                               b"g FETCH 1 (UID FLAGS)\r\n", select=False)
    assert b"* 1 FETCH (UID" not in out.split(b"f NO")[0].split(b"s OK")[1]
    assert b"f NO [UNAVAILABLE]" in out
    assert b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\ng OK" in out
