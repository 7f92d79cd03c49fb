"""The command table: every command has a handler and states, the parser and the table
agree, and commands in the wrong state (or on a read-only mailbox) get the answers they
always got."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from postel.auth.passwords import hash_password
from postel.config import ImapConfig
from postel.imap.capabilities import capabilities
from postel.imap.commands.table import COMMANDS
from postel.imap.proto.commands import PARSERS, UID_PARSERS
from postel.imap.proto.receiver import Receiver
from postel.imap.session import ImapSession
from postel.imap.state import ANY, State
from postel.mail.mime import parse_message_bytes
from postel.store.blobs import BlobStore
from postel.store.sql.migrate import upgrade
from postel.store.sql.store import SqlStore, open_store
from tests.unit.test_imap_session import FakeIO, make_services

PASSWORD = "correct horse battery"


def test_every_command_has_a_handler_and_states() -> None:
    for name, spec in COMMANDS.items():
        assert inspect.iscoroutinefunction(spec.handler), name
        assert spec.states and spec.states <= ANY, name
        if spec.by_sequence_number or spec.needs_read_write:
            assert spec.states == {State.SELECTED}, name
        assert not (spec.by_sequence_number and name.startswith("UID ")), name


def test_the_parser_and_the_table_know_the_same_commands() -> None:
    parsed = set(PARSERS) | {"UID " + name for name in UID_PARSERS}
    assert parsed == set(COMMANDS)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    root = tmp_path_factory.mktemp("tablestore")
    store = open_store(f"sqlite:///{root / 'db.sqlite'}", BlobStore(root / "b", root / "t"))
    upgrade(store.engine)
    store.directory.add_domain("example.test")
    account = store.directory.add_account("table@example.test", hash_password(PASSWORD))
    raw = b"Subject: one\r\nFrom: a@b.test\r\n\r\nfirst\r\n"
    store.mail.deliver(store.blobs.put(raw), parse_message_bytes(raw), [(account.id, "INBOX")])
    yield store
    store.close()


def converse(store: SqlStore, tmp: Path, data: bytes) -> list[bytes]:
    """Feed commands to a fresh, not yet authenticated session; the lines it answered."""

    async def go() -> bytes:
        services = make_services(store, tmp)
        io = FakeIO()
        receiver = Receiver(max_line_length=2000, max_literal_size=1000)
        session = ImapSession(services, io, receiver, "127.0.0.1", tls=True,
                              tls_available=True)
        receiver.feed(data)
        while (event := receiver.next_event()) is not None:
            await session.handle(event)
        session.close()
        return bytes(io.out)

    return asyncio.run(go()).split(b"\r\n")


LOGIN = f"l LOGIN table@example.test \"{PASSWORD}\"\r\n".encode()


def test_commands_in_the_wrong_state(store: SqlStore, tmp_path: Path) -> None:
    lines = converse(store, tmp_path, b"a SELECT INBOX\r\nb FETCH 1 FLAGS\r\n"
                     + LOGIN + b"c LOGIN x y\r\nd CLOSE\r\ne STARTTLS\r\n")
    assert b"a BAD SELECT is not allowed in this state" in lines
    assert b"b BAD FETCH is not allowed in this state" in lines
    assert b"c BAD LOGIN is not allowed in this state" in lines
    assert b"d BAD CLOSE is not allowed in this state" in lines
    assert b"e BAD STARTTLS is not allowed in this state" in lines


def test_unknown_commands_are_syntax_errors(store: SqlStore, tmp_path: Path) -> None:
    lines = converse(store, tmp_path, b"a FROB\r\nb UID NOOP\r\n")
    assert b"a BAD Syntax error: unknown command FROB" in lines
    assert b"b BAD Syntax error: UID NOOP is not a command" in lines


def test_read_only_and_sequence_checks(store: SqlStore, tmp_path: Path) -> None:
    lines = converse(store, tmp_path, LOGIN + b"x EXAMINE INBOX\r\n"
                     b"a STORE 9 +FLAGS (\\Seen)\r\nb STORE 1 +FLAGS (\\Seen)\r\n"
                     b"c UID STORE 9 +FLAGS (\\Seen)\r\nd MOVE 1 Trash\r\n"
                     b"e EXPUNGE\r\nf COPY 1 INBOX\r\ng FETCH 9 FLAGS\r\nh COPY 7 INBOX\r\n"
                     b"i UID FETCH 9 FLAGS\r\n")
    # A sequence number past the end is BAD before a read-only mailbox is NO.
    assert b"a BAD Invalid message sequence number" in lines
    assert b"b NO [READ-ONLY] Mailbox is read-only" in lines
    assert b"c NO [READ-ONLY] Mailbox is read-only" in lines
    assert b"d NO [READ-ONLY] Mailbox is read-only" in lines
    assert b"e NO [READ-ONLY] Mailbox is read-only" in lines
    assert any(line.startswith(b"f OK") for line in lines)  # COPY only reads
    assert b"g BAD Invalid message sequence number" in lines
    assert b"h BAD Invalid message sequence number" in lines
    assert b"i OK UID FETCH completed" in lines


def test_capabilities_before_and_after_login() -> None:
    config = ImapConfig()

    def caps(state: State, **kw: bool) -> list[str]:
        args = {"tls": False, "tls_available": True, "plaintext_auth": False,
                "compressed": False, **kw}
        return capabilities(config, state=state, **args)

    # Before login only small non-synchronizing literals (RFC 7888 LITERAL-, issue 15).
    plain = caps(State.NOT_AUTHENTICATED)
    assert plain == ["IMAP4rev1", "IMAP4rev2", "STARTTLS", "LOGINDISABLED", "LITERAL-",
                     "SASL-IR", "ID", "ENABLE"]
    secure = caps(State.NOT_AUTHENTICATED, tls=True, plaintext_auth=True)
    assert "STARTTLS" not in secure and "AUTH=PLAIN" in secure
    after = caps(State.AUTHENTICATED, tls=True)
    assert after[-1] == f"APPENDLIMIT={config.max_literal_size}"
    assert "COMPRESS=DEFLATE" in after and "STARTTLS" not in after
    assert "COMPRESS=DEFLATE" not in caps(State.SELECTED, compressed=True)
