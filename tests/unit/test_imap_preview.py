"""PREVIEW (RFC 8970) without sockets: the FETCH attribute grammar, fed whole and one
byte at a time, and the preview text computed from parsed MIME."""

from __future__ import annotations

import pytest

from postel.imap.preview import PREVIEW_CHARS, PreviewCache, compute_preview, html_to_text
from postel.imap.proto.commands import CommandError, Fetch, parse_command
from postel.imap.proto.fetchatt import FetchAtt
from postel.imap.proto.receiver import CommandBytes, Receiver
from postel.mail.mime import parse_message_bytes


def fetch(line: bytes, *, split: bool = False) -> Fetch:
    receiver = Receiver()
    chunks = [line[i : i + 1] for i in range(len(line))] if split else [line]
    got = []
    for chunk in chunks:
        receiver.feed(chunk)
        while (event := receiver.next_event()) is not None:
            got.append(event)
    assert len(got) == 1 and isinstance(got[0], CommandBytes)
    args = parse_command(got[0]).args
    assert isinstance(args, Fetch)
    return args


@pytest.mark.parametrize("split", [False, True])
def test_preview_attribute_and_lazy_modifier(split: bool) -> None:
    assert fetch(b"a FETCH 1 PREVIEW\r\n", split=split).atts == (FetchAtt("PREVIEW"),)
    lazy = fetch(b"a FETCH 1 (UID PREVIEW (lazy) FLAGS)\r\n", split=split)
    assert lazy.atts == (FetchAtt("UID"), FetchAtt("PREVIEW", lazy=True), FetchAtt("FLAGS"))
    modified = fetch(b"a FETCH 1 PREVIEW (CHANGEDSINCE 5)\r\n", split=split)
    assert modified.atts == (FetchAtt("PREVIEW"),) and modified.changed_since == 5


@pytest.mark.parametrize("line", [
    b"a FETCH 1 (PREVIEW (FUZZY))\r\n", b"a FETCH 1 (PREVIEW (LAZY)\r\n",
    b"a FETCH 1 (PREVIEW (LAZY LAZ))\r\n", b"a FETCH 1 PREVIEW (LAZYX)\r\n",
])
def test_bad_preview_syntax_is_a_parse_error(line: bytes) -> None:
    receiver = Receiver()
    receiver.feed(line)
    event = receiver.next_event()
    assert isinstance(event, CommandBytes)
    with pytest.raises(CommandError):
        parse_command(event)


def preview_of(raw: bytes) -> str:
    parsed = parse_message_bytes(raw)

    def read(start: int, end: int) -> bytes:
        return raw[start:end]

    return compute_preview(parsed.body, read)


def test_plain_text_is_preferred_and_quotes_left_out() -> None:
    raw = (b"Subject: x\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n"
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"Hello  J=C3=B6rg,\r\n> quoted line\r\n\r\nsee   you\r\n--b--\r\n")
    assert preview_of(raw) == "Hello Jörg, see you"


def test_html_is_stripped_of_markup_styles_and_entities() -> None:
    raw = (b"Subject: x\r\nContent-Type: text/html\r\n\r\n"
           b"<html><head><style>p {color: red}</style><title>T</title></head>"
           b"<body><p>Caf&eacute;&nbsp;tonight?</p><script>alert(1)</script>"
           b"<div>Bring&amp;share</div></body></html>\r\n")
    assert preview_of(raw) == "Café tonight? Bring&share"  # &nbsp; is white space too
    assert html_to_text("<b>a</b><br>b") == "a b"


def test_attachments_only_and_long_text() -> None:
    raw = (b"Subject: x\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\n"
           b"not the text\r\n--b--\r\n")
    assert preview_of(raw) == ""
    long = b"Subject: x\r\n\r\n" + b"word " * 500 + b"\r\n"
    text = preview_of(long)
    assert len(text) <= PREVIEW_CHARS and text.startswith("word word")


def test_cache_keeps_the_most_recent_entries() -> None:
    cache = PreviewCache(max_entries=2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"
    cache.put("c", "C")
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C"
