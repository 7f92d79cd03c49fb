"""The shared sans-IO line reader (postel.mail.lines): bytes in, lines out; no sockets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail.lines import TOO_LONG, LineReader, LineTooLong


def lines(data: bytes, *, limit: int = 64, split: bool = False) -> list[bytes | LineTooLong]:
    reader = LineReader(limit)
    out: list[bytes | LineTooLong] = []
    pieces = [data[i : i + 1] for i in range(len(data))] if split else [data]
    for piece in pieces:
        reader.receive(piece)
        while (line := reader.next_line()) is not None:
            out.append(line)
    return out


def both(data: bytes, *, limit: int = 64) -> list[bytes | LineTooLong]:
    """The lines, checked to be the same fed whole and one byte at a time."""
    whole = lines(data, limit=limit)
    assert lines(data, limit=limit, split=True) == whole
    return whole


def test_crlf_lines() -> None:
    assert both(b"NOOP\r\nQUIT\r\n") == [b"NOOP", b"QUIT"]


def test_bare_lf_ends_a_line() -> None:
    # Accepted on command lines by SMTP and POP3 alike (nothing can be smuggled there).
    assert both(b"NOOP\nQUIT\r\n\n") == [b"NOOP", b"QUIT", b""]


def test_bare_cr_stays_in_the_line() -> None:
    # A bare CR does not end a line; the protocol's parser sees it.
    assert both(b"NO\rOP\r\nQUIT\r\r\n") == [b"NO\rOP", b"QUIT\r"]


def test_incomplete_line_waits() -> None:
    reader = LineReader(64)
    reader.receive(b"NOOP\r")
    assert reader.next_line() is None
    assert reader.buffered == 5
    reader.receive(b"\n")
    assert reader.next_line() == b"NOOP"
    assert reader.buffered == 0


def test_limit_counts_the_line_ending() -> None:
    assert both(b"x" * 14 + b"\r\n", limit=16) == [b"x" * 14]
    assert both(b"x" * 15 + b"\r\n", limit=16) == [TOO_LONG]
    assert both(b"x" * 15 + b"\n", limit=16) == [b"x" * 15]


def test_long_line_answered_once_then_recovers() -> None:
    assert both(b"y" * 300 + b"\r\nNOOP\r\n", limit=32) == [TOO_LONG, b"NOOP"]
    assert both(b"y" * 40 + b"\r\n" + b"z" * 40 + b"\nOK\n", limit=32) == [
        TOO_LONG, TOO_LONG, b"OK"
    ]


def test_long_line_arriving_slowly_is_not_buffered() -> None:
    reader = LineReader(64)
    seen = []
    for _ in range(1000):
        reader.receive(b"y" * 100)
        while (line := reader.next_line()) is not None:
            seen.append(line)
        assert reader.buffered <= 100
    reader.receive(b"\r\nNOOP\r\n")
    while (line := reader.next_line()) is not None:
        seen.append(line)
    assert seen == [TOO_LONG, b"NOOP"]


def test_discard_forgets_the_buffer_and_a_line_being_skipped() -> None:
    reader = LineReader(8)
    reader.receive(b"x" * 20)
    assert reader.next_line() is TOO_LONG
    reader.discard()
    reader.receive(b"NOOP\r\n")
    assert reader.next_line() == b"NOOP"
    reader.receive(b"QUIT\r\nRSET\r\n")
    reader.discard()
    assert reader.next_line() is None
    assert reader.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=2, max_value=80), st.data())
def test_splitting_never_matters(data: bytes, limit: int, draw: st.DataObject) -> None:
    whole = lines(data, limit=limit)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=8)))
    reader = LineReader(limit)
    pieces: list[bytes | LineTooLong] = []
    start = 0
    for cut in [*cuts, len(data)]:
        reader.receive(data[start:cut])
        start = cut
        while (line := reader.next_line()) is not None:
            pieces.append(line)
    assert pieces == whole
    for line in whole:
        assert line is TOO_LONG or (b"\n" not in line and len(line) < limit)
