"""CATENATE (RFC 4469) parsing and IMAP URLs (RFC 5092, RFC 4467) without sockets; the
command also fed one byte at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postel import imapurl
from postel.imap.proto.commands import Append, CatUrl, CommandError, parse_command
from postel.imap.proto.receiver import CommandBytes, Literal, Receiver

LINE = b'a APPEND Drafts (\\Seen) CATENATE (TEXT {3+}\r\nabc URL "/INBOX/;UID=4")\r\n'


def parsed(data: bytes, *, split: bool = False) -> Append:
    receiver = Receiver()
    event = None
    for chunk in ([data[i:i + 1] for i in range(len(data))] if split else [data]):
        receiver.feed(chunk)
        event = event or receiver.next_event()
    assert isinstance(event, CommandBytes)
    args = parse_command(event).args
    assert isinstance(args, Append)
    return args


@pytest.mark.parametrize("split", [False, True])
def test_catenate_parts_in_order(split: bool) -> None:
    msg = parsed(LINE, split=split).messages[0]
    assert msg.flags == ["\\Seen"]
    text, url = msg.catenate
    assert isinstance(text, Literal) and text.read_all() == b"abc"
    assert url == CatUrl("/INBOX/;UID=4")


@pytest.mark.parametrize("line", [
    b"a APPEND x CATENATE ()", b"a APPEND x CATENATE (URL)", b'a APPEND x CATENATE (X "y")',
    b"a APPEND x CATENATE", b'a APPEND x CATENATE URL "/a/;UID=1"',
])
def test_bad_catenate_syntax(line: bytes) -> None:
    receiver = Receiver()
    receiver.feed(line + b"\r\n")
    event = receiver.next_event()
    assert isinstance(event, CommandBytes)
    with pytest.raises(CommandError):
        parse_command(event)


def test_absolute_url_with_urlauth() -> None:
    text = ("imap://joe%40example.com@mail.example.com/INBOX;UIDVALIDITY=7/;UID=20/"
            ";section=1.2;expire=2030-01-01T00:00:00Z;urlauth=submit+joe%40example.com"
            ":internal:" + "ab" * 32)
    url = imapurl.parse_url(text)
    assert (url.user, url.host, url.mailbox) == ("joe@example.com", "mail.example.com", "INBOX")
    assert (url.uidvalidity, url.uid, url.section) == (7, 20, "1.2")
    assert url.expire == datetime(2030, 1, 1, tzinfo=UTC)
    assert url.access == "submit+joe%40example.com" and url.mechanism == "internal"
    assert url.rump == text.split(":internal:")[0]
    assert url.token == "ab" * 32


@pytest.mark.parametrize("text", [
    "http://x/", "imap://host", "/INBOX", "/INBOX/;UID=0", "/INBOX/;UID=x",
    "/INBOX;FOO=1/;UID=1", "/INBOX/;UID=1/;SECTION=1..2", "/INBOX/;UID=1;expire=never",
    "/INBOX/;UID=1;urlauth=everyone", "/INBOX/;UID=1;urlauth=anonymous:internal",
    "/INBOX/;UID=1/;PARTIAL=1",
])
def test_bad_urls(text: str) -> None:
    with pytest.raises(imapurl.UrlError):
        imapurl.parse_url(text)


@pytest.mark.parametrize(("access", "login", "submit", "allowed"), [
    ("anonymous", None, False, True), ("authuser", None, False, False),
    ("authuser", "a@x", False, True), ("user+a@x", "A@x", False, True),
    ("user+a@x", "b@x", False, False), ("submit+a@x", "a@x", False, False),
    ("submit+a@x", "a@x", True, True), ("submit+a@x", "b@x", True, False),
    ("submit+a%40x", "a@x", True, True),
])
def test_access_identifiers(access: str, login: str | None, submit: bool,
                            allowed: bool) -> None:
    assert imapurl.may_access(access, login=login, submit=submit) is allowed
