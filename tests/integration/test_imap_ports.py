"""One complete client session with imaplib on both ports: 143 after STARTTLS and 993,
covering the everyday commands end to end, plus malformed mail that must never crash."""

from __future__ import annotations

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import (
    deliver,
    message,
    new_user,
    starttls_client,
    tls_client,
)

MALFORMED = [
    b"no header separator and \x00 NUL bytes \xff\xfe",
    b"Content-Type: multipart/mixed; boundary=\"never\"\r\n\r\nbody without parts\r\n",
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822"
    b"\r\n\r\n--a--\r\n",
    b"Subject: =?bogus?X?broken?=\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not b64\r\n",
    b"Content-Type: text/plain; charset*=''%ZZ; name*0=a; name*1=b\r\n\r\nx",
]


@pytest.mark.parametrize("port", ["143+starttls", "993"])
def test_everyday_session(postel: PostelServer, port: str) -> None:
    user = new_user(postel)
    deliver(postel, user, message("from smtp", "hello over smtp"))
    client = starttls_client(postel, user) if port != "993" else tls_client(postel, user)
    try:
        typ, data = client.append("Drafts", "(\\Draft)", None, message("draft", "draft body"))
        assert typ == "OK" and b"APPENDUID" in data[0]
        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [b"1"])
        typ, data = client.fetch("1", "(BODY.PEEK[TEXT] FLAGS)")
        assert data[0][1] == b"hello over smtp\r\n"  # type: ignore[index]
        typ, _ = client.store("1", "+FLAGS", "(\\Seen \\Flagged)")
        assert typ == "OK"
        typ, data = client.search(None, "FLAGGED", "SEEN")
        assert data == [b"1"]
        typ, data = client.uid("COPY", "1", "Archive")
        assert typ == "OK"
        typ, data = client.uid("MOVE", "1", "Trash")
        assert typ == "OK"
        typ, data = client.select("Trash")
        assert data == [b"1"]
        typ, data = client.fetch("1", "(FLAGS)")
        assert b"\\Flagged" in data[0] and b"\\Seen" in data[0]  # type: ignore[operator]
        client.store("1", "+FLAGS", "(\\Deleted)")
        typ, data = client.expunge()
        assert data == [b"1"]
        typ, data = client.status("Archive", "(MESSAGES UNSEEN)")
        assert data == [b"Archive (MESSAGES 1 UNSEEN 0)"]
        client.close()
    finally:
        client.logout()


def test_malformed_messages_never_crash(postel: PostelServer) -> None:
    user = new_user(postel)
    client = tls_client(postel, user)
    try:
        for raw in MALFORMED:
            assert client.append("INBOX", None, None, raw)[0] == "OK"
        client.select("INBOX")
        typ, data = client.fetch(
            "1:*", "(ENVELOPE BODYSTRUCTURE BODY[] BODY[1] BODY[1.MIME] BODY[2.1.HEADER] "
            "BINARY.SIZE[1] BODY[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert len([d for d in data if isinstance(d, tuple) and d[0].startswith(b"1 ")]) == 1
        typ, data = client.search("UTF-8", "TEXT", "body")
        assert typ == "OK"
        assert client.noop()[0] == "OK"
    finally:
        client.logout()


def test_imaplib_idle_with_starttls(postel: PostelServer) -> None:
    user = new_user(postel)
    client = starttls_client(postel, user)
    try:
        client.select("INBOX")
        tag = client._new_tag()  # type: ignore[attr-defined]
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        deliver(postel, user, message("during idle"))
        assert client.readline() == b"* 1 EXISTS\r\n"
        client.send(b"DONE\r\n")
        line = client.readline()
        while not line.startswith(tag):
            line = client.readline()
        assert line.startswith(tag + b" OK")
    finally:
        client.logout()
