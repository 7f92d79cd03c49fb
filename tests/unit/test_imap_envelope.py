"""Typed ENVELOPE and BODYSTRUCTURE: the same bytes as the list-based code they replaced
(frozen in ``imap_legacy``) for a corpus of messages, and the stored form round-trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.proto import responses as r
from postel.imap.proto.bodystructure import MultiPart, SinglePart, body_structure
from postel.imap.proto.envelope import Envelope
from postel.mail.mime import HeaderAddress, parse_addresses, parse_message_bytes
from tests.unit import imap_legacy as legacy
from tests.unit.mime_corpus import CORPUS, FORWARD, GROUPS, crlf
from tests.unit.test_mail_mime import walk


@pytest.mark.parametrize("data", CORPUS)
@pytest.mark.parametrize("utf8", [False, True])
def test_same_bytes_as_before(data: bytes, utf8: bool) -> None:
    m = parse_message_bytes(data)
    assert r.envelope(Envelope.of(m), utf8) == legacy.envelope(m.envelope, utf8)
    for part in walk(m.body):
        if part.message is not None:
            stored = part.message.envelope
            assert r.envelope(Envelope.from_stored(stored), utf8) == legacy.envelope(
                stored, utf8)
        for extended in (False, True):
            typed = r.body_structure(body_structure(part, extended=extended), utf8)
            assert typed == legacy.body_structure(legacy.bodystructure(part, extended), utf8)


@pytest.mark.parametrize("data", CORPUS)
def test_stored_envelope_round_trips(data: bytes) -> None:
    m = parse_message_bytes(data)
    stored = json.loads(json.dumps(m.envelope))  # as the store writes and reads it
    assert Envelope.from_stored(stored).to_stored() == stored == m.envelope
    for part in walk(m.body):
        if part.message is not None:
            inner = part.message.envelope
            assert Envelope.from_stored(inner).to_stored() == inner


@settings(max_examples=150)
@given(st.lists(st.sampled_from([
    "From: a@b.c\n", "From: =?utf-8?b?w6k=?= <x@y>\n", "To: g: a@b, c@d;\n", "Cc:\n",
    "Sender: s@t\n", "Subject: \"q\" \\\n", "Content-Type: multipart/mixed; boundary=b\n",
    "Content-Type: message/rfc822\n", "Content-Disposition: inline\n", "\n", "--b\n",
    "--b--\n", "text\n", "Content-Language: en\n", "Date: junk\n",
]), max_size=14))
def test_random_messages_give_the_same_bytes(lines: list[str]) -> None:
    m = parse_message_bytes(crlf("".join(lines)))
    assert r.envelope(Envelope.of(m)) == legacy.envelope(m.envelope)
    typed = r.body_structure(body_structure(m.body, extended=True), True)
    assert typed == legacy.body_structure(legacy.bodystructure(m.body, True), True)


def test_typed_fields_of_a_message() -> None:
    m = parse_message_bytes(GROUPS)
    env = Envelope.of(m)
    assert m.from_ == env.from_ == (
        HeaderAddress("=?utf-8?q?J=C3=B6rg?=", None, "j", "x.de"),
        HeaderAddress('Q "uoted"', None, "q", "x.de"),
    )
    assert m.sender == m.reply_to == m.from_  # RFC 9051 7.5.2 defaults
    # Two groups: start and end markers around their members (RFC 9051 7.5.2).
    assert [a.is_group_marker for a in m.to] == [True, False, False, True, True, True]
    assert m.to[0] == HeaderAddress(None, None, "Team", None)  # group start
    assert m.cc[0].adl == "@route.example"
    assert m.cc[1].host == ""  # a mailbox without domain is not a group marker
    assert m.bcc == ()
    assert m.date == env.date == "Tue, 2 Jan 2024 10:00:00 +0100"
    assert env.message_id == "<m1@x.de>"
    assert env.in_reply_to == "<p1@x.org> (comment)"
    assert parse_addresses("a@b.c, C <c@d.e>")[1] == HeaderAddress("C", None, "c", "d.e")


def test_body_structure_types() -> None:
    m = parse_message_bytes(FORWARD)
    root = body_structure(m.body, extended=True)
    assert isinstance(root, MultiPart) and root.subtype == "mixed"
    text, forwarded, _global, octets = root.parts
    assert isinstance(text, SinglePart) and text.extension is not None
    assert text.extension.language == ("en", "de") and text.lines is not None
    assert isinstance(forwarded, SinglePart) and forwarded.message is not None
    assert forwarded.extension is not None and forwarded.extension.disposition is not None
    assert forwarded.extension.disposition.params == ("filename", "in.eml")
    assert forwarded.message.envelope.sender[0].mailbox == "s"
    assert isinstance(forwarded.message.body, MultiPart)
    assert isinstance(octets, SinglePart) and octets.lines is None
    assert body_structure(m.body, extended=False).extension is None  # BODY
