"""The sans-IO POP3 reader and replies: bytes in, events out; no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.pop3.proto import (
    Auth,
    AuthResponse,
    Continuation,
    Dele,
    Event,
    Listing,
    Pass,
    Pop3Reader,
    ProtocolError,
    Reply,
    Retr,
    Simple,
    Top,
    User,
    parse_command,
)


def events(data: bytes, *, max_line_length: int = 1024, split: bool = False) -> list[Event]:
    reader = Pop3Reader(max_line_length=max_line_length)
    out: list[Event] = []
    pieces = [data[i : i + 1] for i in range(len(data))] if split else [data]
    for piece in pieces:
        reader.receive(piece)
        while (event := reader.next_event()) is not None:
            out.append(event)
    return out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"USER alice@example.test", User("alice@example.test")),
        (b"user  alice@example.test ", User("alice@example.test")),
        (b"PASS correct horse battery", Pass("correct horse battery")),
        (b"PASS  leading space", Pass(" leading space")),
        (b"STAT", Simple("STAT")),
        (b"noop", Simple("NOOP")),
        (b"RSET", Simple("RSET")),
        (b"QUIT", Simple("QUIT")),
        (b"CAPA", Simple("CAPA")),
        (b"STLS", Simple("STLS")),
        (b"UTF8", Simple("UTF8")),
        (b"LIST", Listing("LIST", None)),
        (b"LIST 3", Listing("LIST", 3)),
        (b"UIDL", Listing("UIDL", None)),
        (b"uidl 12", Listing("UIDL", 12)),
        (b"RETR 1", Retr(1)),
        (b"DELE 2", Dele(2)),
        (b"TOP 1 0", Top(1, 0)),
        (b"TOP 4 10", Top(4, 10)),
        (b"AUTH", Auth(None)),
        (b"AUTH plain", Auth("PLAIN")),
        (b"AUTH PLAIN AGFsaWNlAHB3", Auth("PLAIN", "AGFsaWNlAHB3")),
        (b"AUTH PLAIN =", Auth("PLAIN", "=")),
        ("USER jösé@exämple.test".encode(), User("jösé@exämple.test")),
    ],
)
def test_commands(line: bytes, expected: Event) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"FOO",
        b"APOP alice 0123456789abcdef",  # not offered: needs plaintext passwords stored
        b"LAST",
        b"STAT 1",
        b"QUIT now",
        b"LIST x",
        b"LIST 1 2",
        b"LIST -1",
        b"RETR",
        b"RETR 1 2",
        b"RETR 12345678901",
        "RETR \u0661".encode(),  # ARABIC-INDIC DIGIT ONE is no digit here
        b"DELE",
        b"TOP 1",
        b"TOP 1 x",
        b"TOP 1 2 3",
        b"USER",
        b"USER   ",
        b"PASS",
        b"AUTH PLAIN a b",
        b"\xff\xfe",
        b"USER a\x00b",
    ],
)
def test_malformed_lines_are_protocol_errors(line: bytes) -> None:
    assert isinstance(parse_command(line), ProtocolError)


def test_pipelined_commands_come_out_in_order() -> None:
    data = b"STAT\r\nLIST\r\nRETR 1\r\nQUIT\r\n"
    expected = [Simple("STAT"), Listing("LIST", None), Retr(1), Simple("QUIT")]
    assert events(data) == expected
    assert events(data, split=True) == expected


def test_bare_lf_ends_a_command_line() -> None:
    assert events(b"STAT\nNOOP\r\n") == [Simple("STAT"), Simple("NOOP")]


def test_incomplete_line_waits() -> None:
    reader = Pop3Reader()
    reader.receive(b"STA")
    assert reader.next_event() is None
    reader.receive(b"T\r")
    assert reader.next_event() is None
    reader.receive(b"\n")
    assert reader.next_event() == Simple("STAT")


def test_long_line_answered_once_and_the_reader_recovers() -> None:
    data = b"USER " + b"a" * 5000 + b"\r\nNOOP\r\n"
    for split in (False, True):
        out = events(data, max_line_length=64, split=split)
        assert len(out) == 2
        assert isinstance(out[0], ProtocolError) and "too long" in out[0].text
        assert out[1] == Simple("NOOP")


def test_line_at_exactly_the_limit_is_accepted() -> None:
    line = b"USER " + b"a" * 57 + b"\r\n"  # 64 octets including CRLF
    assert events(line, max_line_length=64) == [User("a" * 57)]
    assert isinstance(events(b"x" + line, max_line_length=64)[0], ProtocolError)


def test_auth_mode_reads_one_raw_line() -> None:
    reader = Pop3Reader()
    reader.receive(b"AUTH PLAIN\r\nUSER looks-like-a-command\r\nNOOP\r\n")
    assert reader.next_event() == Auth("PLAIN")
    reader.expect_auth_response()
    assert reader.next_event() == AuthResponse("USER looks-like-a-command")
    assert reader.next_event() == Simple("NOOP")


def test_auth_response_that_is_not_ascii_cannot_decode() -> None:
    reader = Pop3Reader()
    reader.expect_auth_response()
    reader.receive(b"\xff\r\n")
    event = reader.next_event()
    assert isinstance(event, AuthResponse) and "\0" in event.line


def test_discard_buffer_drops_pipelined_plaintext() -> None:
    reader = Pop3Reader()
    reader.receive(b"STLS\r\nUSER injected\r\n")
    assert reader.next_event() == Simple("STLS")
    reader.discard_buffer()
    assert reader.next_event() is None


def test_reply_serialisation() -> None:
    assert Reply(True, "2 320").to_bytes() == b"+OK 2 320\r\n"
    assert Reply(False, "bad", "AUTH").to_bytes() == b"-ERR [AUTH] bad\r\n"
    assert Reply(True).to_bytes() == b"+OK\r\n"
    multi = Reply(True, "follows", lines=("1 120", ".hidden", "")).to_bytes()
    assert multi == b"+OK follows\r\n1 120\r\n..hidden\r\n\r\n.\r\n"
    # Client-supplied text never breaks the framing.
    assert Reply(False, "a\r\nb").to_bytes() == b"-ERR a  b\r\n"
    assert Continuation("").to_bytes() == b"+ \r\n"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=8, max_value=200), st.data())
def test_reader_never_raises_and_splitting_never_matters(
    data: bytes, limit: int, draw: st.DataObject
) -> None:
    whole = events(data, max_line_length=limit)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=8)))
    reader = Pop3Reader(max_line_length=limit)
    pieces: list[Event] = []
    start = 0
    for cut in [*cuts, len(data)]:
        reader.receive(data[start:cut])
        start = cut
        while (event := reader.next_event()) is not None:
            pieces.append(event)
    assert pieces == whole


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(
    [b"USER ", b"PASS ", b"LIST", b"TOP", b"RETR", b"AUTH", b" ", b"1", b"0", b"x", b"\r\n",
     b"\n", b"\r", b"\xff", b"\x00", b"=", b"99999999999", b"STLS", b"UIDL"]
), max_size=40))
def test_command_shaped_noise_never_raises(parts: list[bytes]) -> None:
    reader = Pop3Reader(max_line_length=32)
    reader.receive(b"".join(parts))
    for _ in range(100):
        if reader.next_event() is None:
            break
        if len(parts) % 3 == 0:
            reader.expect_auth_response()
