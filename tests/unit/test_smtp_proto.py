"""Tests for postel.smtp.proto, the sans-IO SMTP reader: bytes in, events out.

In the h11 style, every input is fed whole, one byte at a time and in random splits, and
the event lists must be identical. Body data may legitimately be cut into different
``BodyData`` pieces depending on how the bytes arrived, so consecutive pieces are merged
before comparing; everything else (commands, errors, ends, the smuggling flag) must match
exactly.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail.address import Address
from postel.smtp import proto
from postel.smtp.proto import (
    Auth,
    AuthResponse,
    Bdat,
    BodyData,
    BodyEnd,
    Data,
    Ehlo,
    Event,
    Mail,
    Mode,
    ProtocolError,
    Rcpt,
    SimpleCommand,
    SmtpReader,
    parse_command,
)

LINE_TOO_LONG = ProtocolError(500, "5.5.2", "line too long")
EVENT_TYPES = (
    Ehlo, Mail, Rcpt, Data, Bdat, Auth, AuthResponse, SimpleCommand, BodyData, BodyEnd,
    ProtocolError,
)


# -- the driver ------------------------------------------------------------------------


class FakeSession:
    """What the real session does to the reader, without any policy: accept DATA, send 334
    challenges for AUTH (PLAIN: one answer; LOGIN: two), drop plaintext after STARTTLS."""

    def __init__(self, reader: SmtpReader, *, starttls: bool = False) -> None:
        self.reader = reader
        self.starttls = starttls
        self.auth_answers_due = 0

    def react(self, event: Event) -> None:
        if isinstance(event, Data):
            self.reader.start_data()
        elif isinstance(event, Auth):
            due = {"PLAIN": 1, "LOGIN": 2}.get(event.mechanism, 0)
            if event.initial_response is not None and event.initial_response != "=":
                due -= 1
            self._challenge(due)
        elif isinstance(event, AuthResponse):
            self._challenge(0 if event.line == "*" else self.auth_answers_due - 1)
        elif isinstance(event, SimpleCommand) and event.verb == "STARTTLS" and self.starttls:
            self.reader.discard_buffer()

    def _challenge(self, due: int) -> None:
        self.auth_answers_due = max(due, 0)
        if self.auth_answers_due:
            self.reader.expect_auth_response()


def run(
    pieces: list[bytes], *, max_line_length: int = 4096, mode: str = "command",
) -> list[Event]:
    """Feed the pieces to a fresh reader, draining events after each, and return them all
    (unmerged). `mode` starts the reader in DATA or AUTH mode as a session would."""
    reader = SmtpReader(max_line_length=max_line_length)
    session = FakeSession(reader)
    if mode == "data":
        reader.start_data()
    elif mode == "auth":
        session.auth_answers_due = 1
        reader.expect_auth_response()
    events: list[Event] = []
    for piece in pieces:
        reader.receive(piece)
        while (event := reader.next_event()) is not None:
            assert isinstance(event, EVENT_TYPES)
            session.react(event)
            events.append(event)
    return events


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, BodyData):
            if not event.data:
                continue
            if out and isinstance(out[-1], BodyData):
                out[-1] = BodyData(out[-1].data + event.data)
                continue
        out.append(event)
    return out


def random_splits(data: bytes, rng: random.Random, max_piece: int = 16) -> list[bytes]:
    pieces, i = [], 0
    while i < len(data):
        n = rng.randint(1, max_piece)
        pieces.append(data[i : i + n])
        i += n
    return pieces


def feed(
    data: bytes, *, bytewise: bool = True, seeds: int = 5, max_piece: int = 16, **kwargs: Any,
) -> list[Event]:
    """Events for `data` fed whole, byte by byte and in random splits; all must agree."""
    whole = merged(run([data], **kwargs))
    variants: dict[str, list[bytes]] = {}
    if bytewise:
        variants["bytewise"] = [data[i : i + 1] for i in range(len(data))]
    for seed in range(seeds):
        variants[f"seed {seed}"] = random_splits(data, random.Random(seed), max_piece)
    for name, pieces in variants.items():
        assert merged(run(pieces, **kwargs)) == whole, name
    return whole


def body(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyData))


@contextmanager
def body_chunk(size: int) -> Iterator[None]:
    """Shrink MAX_BODY_CHUNK so the long-line path runs on short inputs."""
    with mock.patch.object(proto, "MAX_BODY_CHUNK", size):
        yield


# -- commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "event"),
    [
        (b"EHLO client.example", Ehlo("client.example", True)),
        (b"ehlo client.example", Ehlo("client.example", True)),
        (b"HELO client.example", Ehlo("client.example", False)),
        (b"EHLO [192.0.2.1]", Ehlo("[192.0.2.1]", True)),
        (b"EHLO   client.example  ", Ehlo("client.example", True)),
        (b"DATA", Data()),
        (b"data", Data()),
        (b"BDAT 100", Bdat(100, False)),
        (b"BDAT 100 LAST", Bdat(100, True)),
        (b"bdat 7 last", Bdat(7, True)),
        (b"AUTH PLAIN", Auth("PLAIN", None)),
        (b"auth plain AGFsaWNlAHNlY3JldA==", Auth("PLAIN", "AGFsaWNlAHNlY3JldA==")),
        (b"AUTH LOGIN YWxpY2U=", Auth("LOGIN", "YWxpY2U=")),
        (b"AUTH PLAIN =", Auth("PLAIN", "=")),
        (b"RSET", SimpleCommand("RSET", "")),
        (b"NOOP", SimpleCommand("NOOP", "")),
        (b"NOOP anything at all", SimpleCommand("NOOP", "anything at all")),
        (b"QUIT", SimpleCommand("QUIT", "")),
        (b"quit", SimpleCommand("QUIT", "")),
        (b"STARTTLS", SimpleCommand("STARTTLS", "")),
        (b"HELP", SimpleCommand("HELP", "")),
        (b"HELP MAIL", SimpleCommand("HELP", "MAIL")),
        (b"VRFY alice", SimpleCommand("VRFY", "alice")),
        (b"EXPN staff", SimpleCommand("EXPN", "staff")),
    ],
)
def test_command(line: bytes, event: Event) -> None:
    assert parse_command(line) == event
    assert feed(line + b"\r\n") == [event]


def test_mail_from_with_parameters() -> None:
    event = parse_command(b"MAIL FROM:<Alice@Example.COM> SIZE=1000 BODY=8BITMIME SMTPUTF8")
    assert event == Mail(
        Address("Alice", "example.com"),
        {"SIZE": "1000", "BODY": "8BITMIME", "SMTPUTF8": None},
    )
    assert parse_command(b"mail from:<a@b.example> body=7bit") == Mail(
        Address("a", "b.example"), {"BODY": "7bit"}
    )


def test_mail_from_null_sender() -> None:
    assert parse_command(b"MAIL FROM:<>") == Mail(None, {})
    assert parse_command(b"MAIL FROM:<> SIZE=10") == Mail(None, {"SIZE": "10"})
    assert parse_command(b"MAIL FROM: <>") == Mail(None, {})


def test_rcpt_to_utf8_address() -> None:
    line = "RCPT TO:<用户@例子.广告> NOTIFY=NEVER".encode()
    assert parse_command(line) == Rcpt(Address("用户", "例子.广告"), {"NOTIFY": "NEVER"})
    assert feed(line + b"\r\n") == [parse_command(line)]
    mail = parse_command("MAIL FROM:<jöran@bücher.example> SMTPUTF8".encode())
    assert mail == Mail(Address("jöran", "bücher.example"), {"SMTPUTF8": None})


@pytest.mark.parametrize(
    ("line", "code", "enhanced"),
    [
        (b"EHLO", 501, "5.5.4"),
        (b"HELO ", 501, "5.5.4"),
        (b"EHLO two words", 501, "5.5.4"),
        (b"MAIL <a@b.example>", 501, "5.5.4"),
        (b"MAIL TO:<a@b.example>", 501, "5.5.4"),
        (b"MAIL FROM:<no-at-sign>", 553, "5.1.7"),
        (b"MAIL FROM:<a@b.example> SIZE=", 553, "5.1.7"),
        (b"RCPT <a@b.example>", 501, "5.5.4"),
        (b"RCPT TO:<>", 553, "5.1.3"),
        (b"RCPT TO:<a@>", 553, "5.1.3"),
        (b"DATA now", 501, "5.5.4"),
        (b"BDAT", 501, "5.5.4"),
        (b"BDAT x", 501, "5.5.4"),
        (b"BDAT -1", 501, "5.5.4"),
        (b"BDAT 1 2", 501, "5.5.4"),
        (b"BDAT 1 LAST now", 501, "5.5.4"),
        (b"BDAT 1234567890123456", 501, "5.5.4"),
        (b"AUTH", 501, "5.5.4"),
        (b"AUTH PLAIN a b", 501, "5.5.4"),
        (b"FOO bar", 500, "5.5.2"),
        (b"MAILFROM:<a@b.example>", 500, "5.5.2"),
        (b"", 500, "5.5.2"),
        (b"\xff\xfe NOOP", 501, "5.5.4"),
        (b"MAIL FROM:<a\xc3@b.example>", 501, "5.5.4"),
    ],
)
def test_bad_command(line: bytes, code: int, enhanced: str) -> None:
    event = parse_command(line)
    assert isinstance(event, ProtocolError)
    assert (event.code, event.enhanced) == (code, enhanced)
    assert event.text
    assert feed(line + b"\r\n") == [event]


def test_unknown_empty_and_invalid_utf8_texts() -> None:
    assert parse_command(b"XYZZY") == ProtocolError(500, "5.5.2", "command not recognized")
    assert parse_command(b"") == ProtocolError(500, "5.5.2", "empty command")
    assert parse_command(b"NOOP \xc0\xaf") == ProtocolError(
        501, "5.5.4", "command line is not valid UTF-8"
    )


@pytest.mark.parametrize("size", ["²", "١٢", "\uff11\uff12", "2²"])
def test_bdat_size_must_be_ascii_digits(size: str) -> None:
    # str.isdigit() accepts superscripts and other scripts' digits; int() then either
    # raises (the reader must never raise) or silently accepts a size nobody sent.
    event = parse_command(f"BDAT {size}".encode())
    assert isinstance(event, ProtocolError)
    assert event.code == 501
    assert feed(f"BDAT {size} LAST\r\nNOOP\r\n".encode()) == [event, SimpleCommand("NOOP", "")]


@pytest.mark.parametrize(
    "line", ["QU\u0131T", "R\u017fET", "\u017fTARTTLS", "BDAT 1 LA\u017fT"]
)
def test_verbs_and_keywords_are_ascii(line: str) -> None:
    # RFC 5321 2.4: verbs are case-insensitive ASCII. str.upper() maps the dotless i and
    # the long s to I and S, which would let a filter in front of us see a different verb.
    event = parse_command(line.encode())
    assert isinstance(event, ProtocolError)


def test_bare_lf_command_lines_accepted() -> None:
    assert feed(b"NOOP\nQUIT\n") == [SimpleCommand("NOOP", ""), SimpleCommand("QUIT", "")]


def test_empty_lines() -> None:
    empty = ProtocolError(500, "5.5.2", "empty command")
    assert feed(b"\r\n\n\r\nNOOP\r\n") == [empty, empty, empty, SimpleCommand("NOOP", "")]


def test_incomplete_line_waits() -> None:
    reader = SmtpReader()
    reader.receive(b"NOOP")
    assert reader.next_event() is None
    assert reader.buffered == 4
    reader.receive(b"\r")
    assert reader.next_event() is None
    reader.receive(b"\n")
    assert reader.next_event() == SimpleCommand("NOOP", "")
    assert reader.next_event() is None
    assert reader.buffered == 0


# -- pipelining ------------------------------------------------------------------------


def test_pipelined_transaction() -> None:
    stream = (
        b"EHLO c.example\r\nMAIL FROM:<a@b.example> SIZE=5\r\nRCPT TO:<x@y.example>\r\n"
        b"RCPT TO:<z@y.example>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n"
    )
    assert feed(stream) == [
        Ehlo("c.example", True),
        Mail(Address("a", "b.example"), {"SIZE": "5"}),
        Rcpt(Address("x", "y.example"), {}),
        Rcpt(Address("z", "y.example"), {}),
        Data(),
        BodyData(b"hello\r\n"),
        BodyEnd(last=True, smuggling=False),
        SimpleCommand("QUIT", ""),
    ]


def test_many_commands_in_one_receive() -> None:
    reader = SmtpReader()
    reader.receive(b"NOOP\r\n" * 1000 + b"QUIT\r\n")
    events = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    assert events == [SimpleCommand("NOOP", "")] * 1000 + [SimpleCommand("QUIT", "")]


# -- line length -----------------------------------------------------------------------


def test_line_too_long_answered_once_then_recovers() -> None:
    stream = b"NOOP " + b"x" * 300 + b"\r\nQUIT\r\n"
    assert feed(stream, max_line_length=64) == [LINE_TOO_LONG, SimpleCommand("QUIT", "")]


def test_line_too_long_arriving_slowly_is_not_buffered() -> None:
    reader = SmtpReader(max_line_length=64)
    events = []
    for _ in range(1000):
        reader.receive(b"y" * 100)
        while (event := reader.next_event()) is not None:
            events.append(event)
        assert reader.buffered <= 100
    reader.receive(b"\r\nNOOP\r\n")
    while (event := reader.next_event()) is not None:
        events.append(event)
    assert events == [LINE_TOO_LONG, SimpleCommand("NOOP", "")]


def test_line_length_limit_includes_crlf() -> None:
    # max_line_length counts the CRLF (RFC 5321 4.5.3.1.4 counts it too).
    fits = b"NOOP " + b"x" * 9 + b"\r\n"
    assert len(fits) == 16
    assert feed(fits, max_line_length=16) == [SimpleCommand("NOOP", "x" * 9)]
    assert feed(b"NOOP " + b"x" * 10 + b"\r\n", max_line_length=16) == [LINE_TOO_LONG]


def test_several_long_lines_each_answered_once() -> None:
    stream = (b"z" * 100 + b"\r\n") * 3 + b"NOOP\r\n"
    assert feed(stream, max_line_length=32) == [LINE_TOO_LONG] * 3 + [SimpleCommand("NOOP", "")]


# -- DATA bodies -----------------------------------------------------------------------


def data_events(stream: bytes, **kwargs: Any) -> list[Event]:
    return feed(stream, mode="data", **kwargs)


def test_data_empty_body() -> None:
    assert data_events(b".\r\n") == [BodyEnd(last=True, smuggling=False)]


def test_data_dot_unstuffing() -> None:
    events = data_events(b"..leading\r\n...\r\n..\r\nmid.dle.\r\n.\r\n")
    assert events == [
        BodyData(b".leading\r\n..\r\n.\r\nmid.dle.\r\n"),
        BodyEnd(last=True, smuggling=False),
    ]


def test_data_ends_only_at_crlf_dot_crlf() -> None:
    # None of these is the end of the data; ". " and ".x" are ordinary (stuffed) lines.
    events = data_events(b"a\r\n. \r\n.x\r\nx.\r\n\r\n.\r\n")
    assert events == [BodyData(b"a\r\n \r\nx\r\nx.\r\n\r\n"), BodyEnd()]


def test_data_bare_lf_lines_normalised() -> None:
    assert data_events(b"one\ntwo\r\nthree\n\r\n.\r\n") == [
        BodyData(b"one\r\ntwo\r\nthree\r\n\r\n"),
        BodyEnd(),
    ]


def test_data_bare_cr_normalised() -> None:
    assert data_events(b"one\rtwo\r\r\n\r.x\r\n.\r\n") == [
        BodyData(b"one\r\ntwo\r\n\r\n\r\n.x\r\n"),
        BodyEnd(),
    ]


def test_data_dot_after_bare_lf_is_unstuffed() -> None:
    # A client that ends lines with bare LF still stuffs the dots that start them.
    assert data_events(b"a\n..b\r\n.\r\n") == [BodyData(b"a\r\n.b\r\n"), BodyEnd()]


def test_data_crlf_dot_crlf_after_bare_cr_ends_data() -> None:
    # "\r\r\n.\r\n": a bare CR, then a proper CRLF . CRLF: the real end, not smuggling.
    assert data_events(b"a\r\r\n.\r\n") == [BodyData(b"a\r\n\r\n"), BodyEnd()]


SMUGGLING_VARIANTS = [
    pytest.param(b"\n.\r\n", id="LF.CRLF"),
    pytest.param(b"\r.\r\n", id="CR.CRLF"),
    pytest.param(b"\r\n.\n", id="CRLF.LF"),
    pytest.param(b"\n.\n", id="LF.LF"),
    pytest.param(b"\r\n.\r", id="CRLF.CR"),
    pytest.param(b"\r.\r", id="CR.CR"),
    pytest.param(b"\r.\n", id="CR.LF"),
    pytest.param(b"\n.\r", id="LF.CR"),
]


@pytest.mark.parametrize("variant", SMUGGLING_VARIANTS)
def test_data_smuggling_flagged_and_never_the_end(variant: bytes) -> None:
    smuggled = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
    stream = b"Subject: hi\r\n\r\nbody" + variant + smuggled + b"forged\r\n.\r\nQUIT\r\n"
    events = data_events(stream)
    assert [type(e) for e in events] == [BodyData, BodyEnd, SimpleCommand]
    assert events[1] == BodyEnd(last=True, smuggling=True)
    assert events[2] == SimpleCommand("QUIT", "")
    data = body(events)
    # The smuggled commands stayed in the body, which is CRLF-normalised throughout.
    assert b"MAIL FROM:<evil@attacker.example>\r\n" in data
    assert b"forged\r\n" in data
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", data) is None


@pytest.mark.parametrize("variant", SMUGGLING_VARIANTS)
def test_data_smuggling_flag_is_per_message(variant: bytes) -> None:
    stream = b"x" + variant + b"y\r\n.\r\nMAIL FROM:<a@b.example>\r\nDATA\r\nclean\r\n.\r\n"
    events = [e for e in data_events(stream) if isinstance(e, BodyEnd)]
    assert events == [BodyEnd(smuggling=True), BodyEnd(smuggling=False)]


def test_data_smuggling_inside_a_line() -> None:
    events = data_events(b"a\r.\rb.\rc\r\n.\r\n")
    assert events == [BodyData(b"a\r\n.\r\nb.\r\nc\r\n"), BodyEnd(smuggling=True)]


def test_data_dot_next_to_bare_cr_but_not_alone_is_not_smuggling() -> None:
    events = data_events(b"a\r.b\r\nc.\rd\r\n\r..\r\n.\r\n")
    assert events == [BodyData(b"a\r\n.b\r\nc.\r\nd\r\n\r\n..\r\n"), BodyEnd(smuggling=False)]


def test_data_then_pipelined_commands() -> None:
    events = feed(b"DATA\r\nline\r\n.\r\nRSET\r\nQUIT\r\n")
    assert events == [
        Data(), BodyData(b"line\r\n"), BodyEnd(), SimpleCommand("RSET", ""),
        SimpleCommand("QUIT", ""),
    ]


def test_data_body_lines_may_exceed_command_line_limit() -> None:
    assert data_events(b"x" * 500 + b"\r\n.\r\n", max_line_length=64) == [
        BodyData(b"x" * 500 + b"\r\n"), BodyEnd()
    ]


def test_data_megabyte_line_streams_in_bounded_chunks() -> None:
    line = b"." + b"x" * (1024 * 1024)
    stream = line + b"\r\n.\r\nQUIT\r\n"
    bound = proto.MAX_BODY_CHUNK + 2
    splits = random_splits(stream, random.Random(1), 65536)
    for pieces in ([stream], splits, [line, stream[len(line) :]]):
        reader = SmtpReader()
        reader.start_data()
        events: list[Event] = []
        for piece in pieces:
            reader.receive(piece)
            while (event := reader.next_event()) is not None:
                events.append(event)
                assert not isinstance(event, BodyData) or len(event.data) <= bound
        assert merged(events) == [
            BodyData(b"x" * (1024 * 1024) + b"\r\n"), BodyEnd(), SimpleCommand("QUIT", "")
        ]


def test_data_long_line_without_newline_is_released_before_it_ends() -> None:
    reader = SmtpReader()
    reader.start_data()
    reader.receive(b"y" * (proto.MAX_BODY_CHUNK + 10))
    event = reader.next_event()
    assert isinstance(event, BodyData)
    assert 0 < len(event.data) <= proto.MAX_BODY_CHUNK
    assert reader.buffered < proto.MAX_BODY_CHUNK


@pytest.mark.parametrize("chunk", [4, 5, 7, 16])
@pytest.mark.parametrize(
    ("stream", "expected", "smuggling"),
    [
        # A long line ending in "." is not a "." line, however the line was cut.
        (b"abcdefghijklmnop.\r\n.\r\n", b"abcdefghijklmnop.\r\n", False),
        (b"abcdefghijklmnop\n.\r\n.\r\n", b"abcdefghijklmnop\r\n\r\n", True),
        (b"abcdefghijklmnop.\nz\r\n.\r\n", b"abcdefghijklmnop.\r\nz\r\n", False),
        # A stuffed dot at a line start (after CRLF or bare LF) is removed however the line
        # was cut, and a dot further along is kept.
        (b"..abcdefghijklmnop\r\n.\r\n", b".abcdefghijklmnop\r\n", False),
        (b"a\n..abcdefghijklmnop\r\n.\r\n", b"a\r\n.abcdefghijklmnop\r\n", False),
        (b"abcdefghijklmnop..\r\n.\r\n", b"abcdefghijklmnop..\r\n", False),
        # Smuggling patterns inside a long line, or across the cut.
        (b"abcdefghijklmnop\r.\rqrstuvwxyz\r\n.\r\n",
         b"abcdefghijklmnop\r\n.\r\nqrstuvwxyz\r\n", True),
        (b"abcdefghijklmnopqrstuvwxyz\r.\nx\r\n.\r\n",
         b"abcdefghijklmnopqrstuvwxyz\r\n.\r\nx\r\n", True),
        (b"abcdefghijklmnop\r.\r\n.\r\n", b"abcdefghijklmnop\r\n.\r\n", True),
        (b"abc\rdefghijklmnopqrstuvwxyz\r\n.\r\n", b"abc\r\ndefghijklmnopqrstuvwxyz\r\n", False),
        (b".\rabcdefghijklmnopqrstuvwxyz\r\n.\r\n", b"\r\nabcdefghijklmnopqrstuvwxyz\r\n", True),
        # Bare CRs at every position relative to the cut.
        (b"abc\r\rdef\r\r\rghijklmno\r\r\n.\r\n",
         b"abc\r\n\r\ndef\r\n\r\n\r\nghijklmno\r\n\r\n", False),
    ],
)
def test_data_long_line_path_agrees_with_line_path(
    chunk: int, stream: bytes, expected: bytes, smuggling: bool
) -> None:
    with body_chunk(chunk):
        events = data_events(stream, seeds=20, max_piece=8)
    assert events == [BodyData(expected), BodyEnd(smuggling=smuggling)]


# -- BDAT ------------------------------------------------------------------------------


def test_bdat_exact_octet_count_then_commands() -> None:
    assert feed(b"BDAT 5 LAST\r\nhelloQUIT\r\n") == [
        Bdat(5, True), BodyData(b"hello"), BodyEnd(last=True), SimpleCommand("QUIT", ""),
    ]


def test_bdat_chunk_always_consumed_even_if_it_looks_like_commands() -> None:
    chunk = b"QUIT\r\nRSET\r\n.\r\n"
    events = feed(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
    assert events == [
        Bdat(len(chunk), True), BodyData(chunk), BodyEnd(last=True), SimpleCommand("NOOP", ""),
    ]


def test_bdat_several_chunks() -> None:
    stream = b"BDAT 6\r\nHello BDAT 7 LAST\r\nworld\r\n"
    assert feed(stream) == [
        Bdat(6, False), BodyData(b"Hello "), BodyEnd(last=False),
        Bdat(7, True), BodyData(b"world\r\n"), BodyEnd(last=True),
    ]


def test_bdat_zero_last() -> None:
    assert feed(b"BDAT 0 LAST\r\nQUIT\r\n") == [
        Bdat(0, True), BodyEnd(last=True), SimpleCommand("QUIT", ""),
    ]
    stream = b"BDAT 3\r\nabcBDAT 0 LAST\r\n"
    assert feed(stream) == [
        Bdat(3, False), BodyData(b"abc"), BodyEnd(last=False), Bdat(0, True), BodyEnd(last=True),
    ]


def test_bdat_zero_not_last() -> None:
    assert feed(b"BDAT 0\r\nNOOP\r\n") == [
        Bdat(0, False), BodyEnd(last=False), SimpleCommand("NOOP", ""),
    ]


def test_bdat_normalises_line_endings() -> None:
    chunk = b"a\nb\rc\r\nd\r\r\ne\n\rf"
    events = feed(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert body(events) == b"a\r\nb\r\nc\r\nd\r\n\r\ne\r\n\r\nf"
    assert events[-1] == BodyEnd(last=True)


def test_bdat_no_dot_unstuffing() -> None:
    chunk = b"..\r\n.\r\n"
    assert body(feed(b"BDAT %d LAST\r\n" % len(chunk) + chunk)) == chunk


def test_bdat_crlf_split_across_chunks() -> None:
    # RFC 3030 leaves chunk boundaries to the client; a CRLF may straddle two chunks.
    stream = b"BDAT 2\r\na\rBDAT 2 LAST\r\n\nb"
    events = feed(stream)
    assert body(events) == b"a\r\nb"
    assert [type(e) for e in events] == [Bdat, BodyData, BodyEnd, Bdat, BodyData, BodyEnd]


def test_bdat_bare_cr_at_end_of_chunk_then_other_byte() -> None:
    assert body(feed(b"BDAT 2\r\na\rBDAT 1 LAST\r\nb")) == b"a\r\nb"
    assert body(feed(b"BDAT 1\r\n\rBDAT 1\r\n\rBDAT 1 LAST\r\n\n")) == b"\r\n\r\n"


def test_bdat_bare_cr_at_end_of_last_chunk() -> None:
    events = feed(b"BDAT 2 LAST\r\na\rQUIT\r\n")
    assert body(events) == b"a\r\n"
    assert events[-2:] == [BodyEnd(last=True), SimpleCommand("QUIT", "")]
    events = feed(b"BDAT 2\r\na\rBDAT 0 LAST\r\nQUIT\r\n")
    assert body(events) == b"a\r\n"
    assert events[-2:] == [BodyEnd(last=True), SimpleCommand("QUIT", "")]


def test_bdat_pending_cr_does_not_leak_into_next_transaction() -> None:
    stream = (
        b"MAIL FROM:<a@b.example>\r\nBDAT 2\r\na\rRSET\r\n"
        b"MAIL FROM:<a@b.example>\r\nBDAT 3 LAST\r\nxyz"
    )
    events = feed(stream)
    second = events[events.index(SimpleCommand("RSET", "")) :]
    assert body(second) == b"xyz"
    assert second[-1] == BodyEnd(last=True)


def test_bdat_large_chunk_streams_in_bounded_pieces() -> None:
    size = 3 * proto.MAX_BODY_CHUNK + 17
    reader = SmtpReader()
    reader.receive(b"BDAT %d LAST\r\n" % size + b"z" * size + b"NOOP\r\n")
    events = []
    while (event := reader.next_event()) is not None:
        events.append(event)
        assert not isinstance(event, BodyData) or len(event.data) <= proto.MAX_BODY_CHUNK
    assert merged(events) == [
        Bdat(size, True), BodyData(b"z" * size), BodyEnd(last=True), SimpleCommand("NOOP", "")
    ]


def test_bdat_waits_for_the_rest_of_the_chunk() -> None:
    reader = SmtpReader()
    reader.receive(b"BDAT 4 LAST\r\nab")
    assert reader.next_event() == Bdat(4, True)
    assert reader.mode is Mode.BDAT
    assert reader.next_event() == BodyData(b"ab")
    assert reader.next_event() is None
    reader.receive(b"cdNOOP\r\n")
    assert reader.next_event() == BodyData(b"cd")
    assert reader.next_event() == BodyEnd(last=True)
    assert reader.mode is Mode.COMMAND
    assert reader.next_event() == SimpleCommand("NOOP", "")


# -- AUTH ------------------------------------------------------------------------------


def test_auth_plain_challenge_response() -> None:
    assert feed(b"AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nNOOP\r\n") == [
        Auth("PLAIN", None), AuthResponse("AGFsaWNlAHNlY3JldA=="), SimpleCommand("NOOP", ""),
    ]


def test_auth_with_initial_response_stays_in_command_mode() -> None:
    assert feed(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nNOOP\r\n") == [
        Auth("PLAIN", "AGFsaWNlAHNlY3JldA=="), SimpleCommand("NOOP", ""),
    ]


def test_auth_login_two_steps() -> None:
    assert feed(b"AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\nQUIT\r\n") == [
        Auth("LOGIN", None), AuthResponse("YWxpY2U="), AuthResponse("c2VjcmV0"),
        SimpleCommand("QUIT", ""),
    ]
    assert feed(b"AUTH LOGIN YWxpY2U=\r\nc2VjcmV0\r\nQUIT\r\n") == [
        Auth("LOGIN", "YWxpY2U="), AuthResponse("c2VjcmV0"), SimpleCommand("QUIT", ""),
    ]


def test_auth_response_lines_are_not_commands() -> None:
    assert feed(b"QUIT\r\n", mode="auth") == [AuthResponse("QUIT")]
    assert feed(b"*\r\nNOOP\r\n", mode="auth") == [AuthResponse("*"), SimpleCommand("NOOP", "")]
    assert feed(b"\r\n", mode="auth") == [AuthResponse("")]
    assert feed(b"dGVzdA==\n", mode="auth") == [AuthResponse("dGVzdA==")]


def test_auth_response_invalid_utf8() -> None:
    events = feed(b"\xff\xfe\r\nNOOP\r\n", mode="auth")
    assert len(events) == 2
    assert isinstance(events[0], AuthResponse)
    assert events[0].line.startswith("\0")  # can never be valid base64
    assert events[1] == SimpleCommand("NOOP", "")


def test_auth_response_too_long_ends_the_exchange() -> None:
    # The client took the 500 as the end of AUTH; its next line is a command again.
    events = feed(b"A" * 200 + b"\r\nQUIT\r\n", mode="auth", max_line_length=64)
    assert events == [LINE_TOO_LONG, SimpleCommand("QUIT", "")]


def test_expect_auth_response_sets_mode() -> None:
    reader = SmtpReader()
    reader.expect_auth_response()
    assert reader.mode is Mode.AUTH
    reader.receive(b"abc\r\n")
    assert reader.next_event() == AuthResponse("abc")
    assert reader.mode is Mode.COMMAND


# -- STARTTLS --------------------------------------------------------------------------


def test_discard_buffer_after_starttls() -> None:
    # CVE-2011-0411: commands pipelined behind STARTTLS must not run inside TLS.
    reader = SmtpReader()
    reader.receive(b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<x@y.example>\r\n")
    assert reader.next_event() == SimpleCommand("STARTTLS", "")
    assert reader.buffered > 0
    reader.discard_buffer()
    assert reader.buffered == 0
    assert reader.next_event() is None
    reader.receive(b"EHLO c.example\r\n")
    assert reader.next_event() == Ehlo("c.example", True)
    assert reader.next_event() is None


def test_discard_buffer_via_session() -> None:
    reader = SmtpReader()
    session = FakeSession(reader, starttls=True)
    reader.receive(b"NOOP\r\nSTARTTLS\r\nNOOP\r\nNOOP\r\n")
    events = []
    while (event := reader.next_event()) is not None:
        session.react(event)
        events.append(event)
    assert events == [SimpleCommand("NOOP", ""), SimpleCommand("STARTTLS", "")]


# -- properties ------------------------------------------------------------------------


MODES = ["command", "auth", "data", "bdat"]
# Bytes that matter to the reader, so hypothesis finds the interesting splits quickly.
ATOMS = [b"\r", b"\n", b".", b"\r\n", b"..", b"a", b" ", b"\xff", b"\xc3\xa9", b"\r\n.\r\n"]
interesting_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(ATOMS), max_size=80).map(b"".join),
    st.lists(
        st.sampled_from([*ATOMS, b"DATA\r\n", b"BDAT 3\r\n", b"BDAT 2 LAST\r\n", b"NOOP\r\n",
                         b"AUTH LOGIN\r\n", b"AUTH PLAIN\r\n", b"BDAT 0 LAST\r\n"]),
        max_size=40,
    ).map(b"".join),
)


@settings(max_examples=250, deadline=None)
@given(
    data=interesting_bytes,
    mode=st.sampled_from(MODES),
    max_line_length=st.sampled_from([8, 64, 4096]),
    chunk=st.sampled_from([4, 9, proto.MAX_BODY_CHUNK]),
    cuts=st.lists(st.integers(min_value=0, max_value=250), max_size=12),
)
def test_property_never_raises_and_splitting_never_matters(
    data: bytes, mode: str, max_line_length: int, chunk: int, cuts: list[int]
) -> None:
    if mode == "bdat":
        data = b"BDAT 17\r\n" + data
        mode = "command"
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    with body_chunk(chunk):
        whole = merged(run([data], mode=mode, max_line_length=max_line_length))
        split = merged(run(pieces, mode=mode, max_line_length=max_line_length))
    # The input may stop inside a long body line, where how much has been passed on so far
    # depends on the splits (the rest is still buffered); everything before must agree.
    whole_tail = whole.pop().data if whole and isinstance(whole[-1], BodyData) else b""
    split_tail = split.pop().data if split and isinstance(split[-1], BodyData) else b""
    assert split == whole
    assert whole_tail.startswith(split_tail) or split_tail.startswith(whole_tail)


def dot_stuff(text: bytes) -> bytes:
    """RFC 5321 4.5.2, as a client that splits lines at LF does it."""
    return re.sub(rb"(^|\n)\.", rb"\1..", text)


def crlf_normalise(text: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", text)


body_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(ATOMS), max_size=120).map(b"".join),
)


@settings(max_examples=300, deadline=None)
@given(
    raw=body_bytes,
    chunk=st.sampled_from([4, 9, proto.MAX_BODY_CHUNK]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_property_dot_stuffed_body_round_trips(raw: bytes, chunk: int, seed: int) -> None:
    # No smuggling patterns: after stuffing, the only "." that could stand alone between
    # line-ending characters is one right after a bare CR.
    content = raw.replace(b"\r.", b"\r.x")
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"  # RFC 5321 4.1.1.4: the client ends the last line first
    stream = dot_stuff(content) + b".\r\nQUIT\r\n"
    pieces = random_splits(stream, random.Random(seed), max_piece=12)
    with body_chunk(chunk):
        whole = merged(run([stream], mode="data"))
        split = merged(run(pieces, mode="data"))
    assert split == whole
    expected = crlf_normalise(content)
    assert whole == [
        *([BodyData(expected)] if expected else []),
        BodyEnd(last=True, smuggling=False),
        SimpleCommand("QUIT", ""),
    ]


def reference_data(stream: bytes) -> tuple[bytes, bool] | None:
    """A whole-buffer model of the DATA rules, written independently of the reader: the
    body, CRLF-normalised and unstuffed, and whether any "." other than the final one stands
    between two line-ending characters. None when the stream has no end of data."""
    framed = b"\r\n" + stream  # the CRLF that ended the DATA command
    end = framed.find(b"\r\n.\r\n")
    if end < 0:
        return None
    raw = framed[2 : end + 2]
    lines = re.split(rb"(?<=\n)", raw)
    unstuffed = b"".join(line[1:] if line.startswith(b".") else line for line in lines)
    lone_dots = re.findall(rb"(?<=[\r\n])\.(?=[\r\n])", framed[: end + 5])
    return crlf_normalise(unstuffed), len(lone_dots) > 1


@settings(max_examples=300, deadline=None)
@given(
    stream=st.lists(st.sampled_from([*ATOMS, b"\r\n.\r\n", b"x\r.\ry"]), max_size=60).map(
        b"".join
    ),
    chunk=st.sampled_from([4, 9, proto.MAX_BODY_CHUNK]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_property_data_agrees_with_reference_model(stream: bytes, chunk: int, seed: int) -> None:
    expected = reference_data(stream)
    pieces = random_splits(stream, random.Random(seed), max_piece=12)
    with body_chunk(chunk):
        events = merged(run(pieces, mode="data"))
    if expected is None:
        assert not any(isinstance(e, BodyEnd) for e in events)
        return
    content, smuggling = expected
    end = next(i for i, e in enumerate(events) if isinstance(e, BodyEnd))
    assert events[: end + 1] == [
        *([BodyData(content)] if content else []),
        BodyEnd(last=True, smuggling=smuggling),
    ]
