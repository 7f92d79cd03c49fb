"""RETR/TOP framing without sockets: CRLF normalisation, byte-stuffing, sizes, chunking."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.pop3.transfer import LineEndings, MessageEncoder, transfer_size


def normalise(message: bytes) -> bytes:
    """The reference: every line ending becomes CRLF, and the message ends with one."""
    out = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def unstuff(body: bytes) -> bytes:
    """What a client does with a multi-line response body (RFC 1939 3)."""
    assert body.endswith(b".\r\n")
    assert body == b".\r\n" or body.endswith(b"\r\n.\r\n")
    lines = body[:-3].split(b"\r\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert line != b".", "a lone dot inside the body would end it early"
    return b"".join((ln[1:] if ln.startswith(b".") else ln) + b"\r\n" for ln in lines[:-1])


def encode(message: bytes, body_lines: int | None = None, chunk: int = 0) -> bytes:
    encoder = MessageEncoder(body_lines)
    size = chunk or max(len(message), 1)
    out = b"".join(encoder.feed(message[i : i + size]) for i in range(0, len(message), size))
    return out + encoder.finish()


def test_plain_message() -> None:
    message = b"Subject: hi\r\n\r\nhello\r\n"
    assert encode(message) == message + b".\r\n"
    assert transfer_size([message]) == len(message)


def test_dot_lines_are_stuffed() -> None:
    message = b".starts\r\n\r\n.\r\n..two\r\nmid.dle\r\n.\r\n"
    body = encode(message)
    assert body == b"..starts\r\n\r\n..\r\n...two\r\nmid.dle\r\n..\r\n.\r\n"
    assert unstuff(body) == message


def test_bare_lf_and_bare_cr_become_crlf() -> None:
    message = b"A: 1\nB: 2\r\n\nline\rnext\n.dot\n"
    expected = b"A: 1\r\nB: 2\r\n\r\nline\r\nnext\r\n.dot\r\n"
    assert unstuff(encode(message)) == expected
    assert transfer_size([message]) == len(expected)


def test_missing_final_newline_gets_crlf_before_the_dot() -> None:
    message = b"Subject: x\r\n\r\nno newline at the end"
    assert encode(message) == message + b"\r\n.\r\n"
    assert transfer_size([message]) == len(message) + 2


def test_final_bare_cr() -> None:
    assert encode(b"a\r") == b"a\r\n.\r\n"
    assert transfer_size([b"a\r"]) == 3


def test_empty_message() -> None:
    assert encode(b"") == b".\r\n"
    assert transfer_size([]) == 0


def test_eight_bit_content_passes_untouched() -> None:
    message = "Subject: Grüße\r\n\r\n日本語 ünïcödé\r\n".encode() + bytes(range(14, 256)) + b"\r\n"
    assert unstuff(encode(message)) == message


def test_crlf_split_between_chunks_stays_one_line_ending() -> None:
    message = b"a\r\n.b\r\nc\r\n"
    for size in range(1, len(message) + 1):
        assert encode(message, chunk=size) == b"a\r\n..b\r\nc\r\n.\r\n", size


def test_line_endings_fast_path_returns_the_same_object() -> None:
    data = b"x\r\ny\r\n"
    assert LineEndings().feed(data) is data


def test_top_zero_sends_header_and_blank_line() -> None:
    message = b"From: a\r\nSubject: b\r\n\r\nline 1\r\nline 2\r\n"
    assert unstuff(encode(message, 0)) == b"From: a\r\nSubject: b\r\n\r\n"


def test_top_n_lines() -> None:
    message = b"From: a\r\n\r\n.one\r\ntwo\r\nthree\r\n"
    assert unstuff(encode(message, 2)) == b"From: a\r\n\r\n.one\r\ntwo\r\n"
    assert unstuff(encode(message, 3)) == message
    assert unstuff(encode(message, 99)) == message


def test_top_without_blank_line_sends_the_whole_header() -> None:
    message = b"From: a\r\nSubject: only a header"
    assert unstuff(encode(message, 0)) == normalise(message)


def test_top_with_bare_lf_separator() -> None:
    message = b"From: a\n\nbody 1\nbody 2\n"
    assert unstuff(encode(message, 1)) == b"From: a\r\n\r\nbody 1\r\n"


def test_top_stops_reading_once_done() -> None:
    encoder = MessageEncoder(0)
    encoder.feed(b"A: b\r\n\r\nbody\r\n")
    assert encoder.done
    assert encoder.feed(b"more body\r\n") == b""


def test_long_lines_without_newline_stream_in_pieces() -> None:
    encoder = MessageEncoder(1)
    out = encoder.feed(b"X: " + b"y" * 1000)
    assert len(out) == 1003  # emitted as it came, not buffered until the line ends
    out += encoder.feed(b"\r\n\r\nbody\r\nrest\r\n")
    assert out + encoder.finish() == b"X: " + b"y" * 1000 + b"\r\n\r\nbody\r\n.\r\n"


messages = st.lists(
    st.sampled_from([b"a", b"Subject: x", b".", b"..", b"\r", b"\n", b"\r\n", b"\xc3\xa9", b" "]),
    max_size=60,
).map(b"".join) | st.binary(max_size=300)


@settings(max_examples=400, deadline=None)
@given(messages, st.integers(min_value=1, max_value=17))
def test_retr_round_trips_and_sizes_match(message: bytes, chunk: int) -> None:
    body = encode(message, chunk=chunk)
    assert body == encode(message)  # chunking never matters
    received = unstuff(body)
    assert received == normalise(message)
    pieces = [message[i : i + chunk] for i in range(0, len(message), chunk)]
    assert transfer_size(pieces) == len(received)  # LIST/STAT == what RETR delivers


@settings(max_examples=300, deadline=None)
@given(messages, st.integers(min_value=0, max_value=5), st.integers(min_value=1, max_value=9))
def test_top_is_a_prefix_of_lines(message: bytes, lines: int, chunk: int) -> None:
    body = encode(message, lines, chunk=chunk)
    assert body == encode(message, lines)
    top = unstuff(body)
    full = normalise(message)
    assert full.startswith(top)
    all_lines = full.split(b"\r\n")[:-1]
    if b"" in all_lines:  # the first empty line ends the header (RFC 5322 2.1)
        end = all_lines.index(b"") + 1
        expected = all_lines[:end] + all_lines[end : end + lines]
    else:
        expected = all_lines  # no body: everything is header
    assert top == b"".join(line + b"\r\n" for line in expected)
