"""Tests for postel.smtp.replies: RFC 5321 4.2 reply framing with RFC 2034 enhanced codes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.smtp import replies
from postel.smtp.replies import Reply

# RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
#                             Reply-code [ SP textstring ] CRLF
REPLY_LINE = re.compile(rb"([2-5][0-5][0-9])([ -])([^\r\n]*)\r\n")


def lines_of(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """Split serialised reply bytes into (code, separator, text), checking the framing."""
    out, pos = [], 0
    while pos < len(data):
        match = REPLY_LINE.match(data, pos)
        assert match, data[pos:]
        out.append((match[1], match[2], match[3]))
        pos = match.end()
    return out


def test_single_line_with_enhanced_code() -> None:
    assert Reply(250, "2.1.0", "sender OK").to_bytes() == b"250 2.1.0 sender OK\r\n"


def test_single_line_without_enhanced_code() -> None:
    assert Reply(220, "", "mx.example ESMTP").to_bytes() == b"220 mx.example ESMTP\r\n"
    assert replies.START_DATA.to_bytes() == b"354 end data with <CR><LF>.<CR><LF>\r\n"


def test_multi_line() -> None:
    reply = Reply(250, "", ("mx.example greets c.example", "PIPELINING", "CHUNKING"))
    assert reply.to_bytes() == (
        b"250-mx.example greets c.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
    )


def test_multi_line_repeats_enhanced_code_on_every_line() -> None:
    # RFC 2034 3: each line of a multi-line reply carries the enhanced status code.
    reply = Reply(550, "5.7.1", ("refused", "see https://mx.example/policy"))
    assert reply.to_bytes() == (
        b"550-5.7.1 refused\r\n550 5.7.1 see https://mx.example/policy\r\n"
    )


def test_one_element_tuple_is_a_single_line() -> None:
    assert Reply(221, "2.0.0", ("bye",)).to_bytes() == b"221 2.0.0 bye\r\n"


def test_empty_text() -> None:
    assert Reply(250, "", "").to_bytes() == b"250 \r\n"
    assert Reply(250, "2.0.0", "").to_bytes() == b"250 2.0.0 \r\n"


def test_empty_tuple_still_ends_the_reply() -> None:
    # A "250-" line with no final "250 " line would leave the client waiting forever.
    data = Reply(250, "2.0.0", ()).to_bytes()
    assert lines_of(data)[-1][1] == b" "
    assert data == b"250 2.0.0 \r\n"


@pytest.mark.parametrize(
    "text",
    [
        "evil\r\n250 OK",
        "evil\n250 OK",
        "evil\r250 OK",
        "\r\n",
        "a\r\n\r\nb",
    ],
)
def test_cr_lf_in_text_cannot_break_framing(text: str) -> None:
    for reply in (Reply(550, "5.1.1", text), Reply(550, "5.1.1", ("first", text, text))):
        data = reply.to_bytes()
        parsed = lines_of(data)
        expected_lines = 1 if isinstance(reply.text, str) else 3
        assert len(parsed) == expected_lines
        assert [sep for _, sep, _ in parsed] == [b"-"] * (expected_lines - 1) + [b" "]
        assert all(code == b"550" for code, _, _ in parsed)


def test_utf8_text() -> None:
    assert Reply(250, "2.1.5", "recipient jöran@bücher.example OK").to_bytes() == (
        "250 2.1.5 recipient jöran@bücher.example OK\r\n".encode()
    )


def test_is_positive() -> None:
    assert Reply(250, "2.0.0", "OK").is_positive
    assert Reply(354, "", "go on").is_positive
    assert not Reply(421, "4.3.2", "bye").is_positive
    assert not Reply(550, "5.1.1", "no").is_positive


def test_predefined_replies_are_well_formed() -> None:
    found = [value for value in vars(replies).values() if isinstance(value, Reply)]
    assert len(found) > 10
    for reply in found:
        parsed = lines_of(reply.to_bytes())
        assert parsed[0][0] == str(reply.code).encode()
        if reply.enhanced:
            # RFC 3463: class.subject.detail, and the class matches the reply's first digit.
            assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", reply.enhanced)
            assert reply.enhanced[0] == str(reply.code)[0]
            assert parsed[0][2].startswith(reply.enhanced.encode() + b" ")


@settings(max_examples=200, deadline=None)
@given(
    code=st.builds(
        lambda a, b, c: 100 * a + 10 * b + c,
        st.integers(2, 5), st.integers(0, 5), st.integers(0, 9),
    ),
    enhanced=st.sampled_from(["", "2.0.0", "5.7.1"]),
    text=st.one_of(st.text(max_size=40), st.lists(st.text(max_size=20), max_size=5).map(tuple)),
)
def test_property_framing_always_holds(
    code: int, enhanced: str, text: str | tuple[str, ...]
) -> None:
    data = Reply(code, enhanced, text).to_bytes()
    parsed = lines_of(data)
    expected = 1 if isinstance(text, str) else max(len(text), 1)
    assert len(parsed) == expected
    assert [sep for _, sep, _ in parsed] == [b"-"] * (expected - 1) + [b" "]
    assert {c for c, _, _ in parsed} == {str(code).encode()}
