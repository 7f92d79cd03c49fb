"""CATENATE (RFC 4469) over 993 and 143 (STARTTLS) with raw lines (neither imaplib nor
imapclient speaks CATENATE); imapclient reads the result back."""

from __future__ import annotations

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import (
    Raw,
    both_ports,
    deliver,
    imapclient,
    message,
    new_user,
)

pytestmark = pytest.mark.usefixtures(both_ports.__name__)

ATTACHED = (
    b"From: a@example.test\r\nSubject: parts\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
    b"--XX\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--XX--\r\n"
)


def _uidvalidity(raw: Raw, mailbox: bytes) -> int:
    line = raw.cmd(b"v", b"STATUS " + mailbox + b" (UIDVALIDITY)")[0]
    return int(line.rsplit(b"UIDVALIDITY ", 1)[1].rstrip(b")"))


def test_catenate_text_and_url_parts(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, ATTACHED)
    raw = Raw(postel)
    raw.login(user)
    assert b" CATENATE" in raw.cmd(b"c", b"CAPABILITY")[0]
    validity = _uidvalidity(raw, b"INBOX")
    head = b"From: me@example.test\r\nSubject: forwarded\r\n\r\n"
    tail = b"\r\n-- \r\nme\r\n"
    url = b"/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=2" % validity
    raw.send(b"a APPEND Drafts CATENATE (TEXT {%d+}\r\n" % len(head) + head
             + b' URL "' + url + b'" URL "/INBOX/;UID=1/;SECTION=1"'
             + b" TEXT {%d+}\r\n" % len(tail) + tail + b")\r\n")
    lines = raw.until(b"a")
    assert lines[-1].startswith(b"a OK [APPENDUID "), lines
    raw.close()
    with imapclient(postel, user) as c:
        c.select_folder("Drafts")
        body = c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
    assert body == head + b"second part" + b"first part" + tail


def test_catenate_multiappend_and_whole_message(postel: PostelServer) -> None:
    user = new_user(postel)
    original = message("whole", "all of it")
    deliver(postel, user, original)
    raw = Raw(postel)
    raw.login(user)
    text = b"Subject: plain\r\n\r\nhi\r\n"
    raw.send(b'a APPEND Archive CATENATE (URL "/INBOX/;UID=1")'
             b" (\\Seen) {%d+}\r\n" % len(text) + text + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    raw.close()
    with imapclient(postel, user) as c:
        c.select_folder("Archive")
        got = c.fetch([1, 2], ["BODY.PEEK[]", "FLAGS"])
    assert got[1][b"BODY[]"].endswith(original)  # the stored copy gained trace headers
    assert got[2][b"BODY[]"] == text and b"\\Seen" in got[2][b"FLAGS"]


@pytest.mark.parametrize("url", [
    b"/INBOX/;UID=99",  # no such message
    b"/Nowhere/;UID=1",  # no such mailbox
    b"/INBOX;UIDVALIDITY=1/;UID=1",  # UIDVALIDITY changed
    b"/INBOX/;UID=1/;SECTION=7",  # no such part
    b"imap://someone-else%40example.test@localhost/INBOX/;UID=1",  # not our mailbox
    b"http://example.test/",  # not an IMAP URL
])
def test_bad_url_is_refused(postel: PostelServer, url: bytes) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    raw = Raw(postel)
    raw.login(user)
    line = raw.cmd(b"a", b'APPEND Drafts CATENATE (URL "' + url + b'")')[-1]
    assert line.startswith(b"a NO [BADURL " + url + b"]"), line
    assert b"0" in raw.cmd(b"s", b"STATUS Drafts (MESSAGES)")[0].rsplit(b" ", 1)[1]
    raw.close()


def test_too_big_and_bad_syntax(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    limit = int(next(c for c in raw.cmd(b"c", b"CAPABILITY")[0].split()
                     if c.startswith(b"APPENDLIMIT=")).split(b"=")[1])
    # Two TEXT parts each under the limit whose sum is over it (RFC 4469 5: TOOBIG).
    half = limit // 2 + 1
    chunk = b"x" * half
    raw.send(b"a APPEND Drafts CATENATE (TEXT {%d+}\r\n" % half + chunk
             + b" TEXT {%d+}\r\n" % half + chunk + b")\r\n")
    assert raw.until(b"a")[-1].startswith(b"a NO [TOOBIG]")
    assert raw.cmd(b"b", b"APPEND Drafts CATENATE ()")[-1].startswith(b"b BAD")
    assert raw.cmd(b"c", b'APPEND Drafts CATENATE (FOO "x")')[-1].startswith(b"c BAD")
    assert raw.cmd(b"d", b"APPEND Drafts CATENATE (URL)")[-1].startswith(b"d BAD")
    assert raw.cmd(b"e", b"NOOP")[-1].startswith(b"e OK")
    raw.close()
