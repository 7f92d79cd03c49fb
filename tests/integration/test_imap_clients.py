"""The command sequences real clients send (mutt, mbsync, Thunderbird, K-9, Outlook,
Apple Mail), replayed byte for byte over STARTTLS and implicit TLS: lower-case command
names, quoted INBOX, long HEADER.FIELDS lists, SASL without initial response, and so on."""

from __future__ import annotations

import base64
import re

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_imap_support import Raw, both_ports, deliver, message, new_user

pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def ok(raw: Raw, tag: bytes, command: bytes) -> list[bytes]:
    lines = raw.cmd(tag, command)
    assert lines[-1].startswith(tag + b" OK"), lines
    return lines


def test_mutt(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("for mutt", "mutt body"))
    raw = Raw(postel)
    ok(raw, b"a0000", b"CAPABILITY")
    ok(raw, b"a0001", f'LOGIN "{user}" "{PASSWORD}"'.encode())
    ok(raw, b"a0002", b'LIST "" ""')
    ok(raw, b"a0003", b"ENABLE QRESYNC")
    lines = ok(raw, b"a0004", b'LSUB "" "*"')
    assert b'* LSUB () "/" INBOX' in lines
    assert ok(raw, b"a0005", b'STATUS "INBOX" (MESSAGES)')[0] == b"* STATUS INBOX (MESSAGES 1)"
    ok(raw, b"a0006", b'SELECT "INBOX" (CONDSTORE)')
    lines = ok(raw, b"a0007", b"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "
                              b"BODY.PEEK[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC "
                              b"MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
                              b"IN-REPLY-TO REPLY-TO LINES LIST-POST X-LABEL)])")
    assert b"Subject: for mutt" in lines[0]
    lines = ok(raw, b"a0008", b"UID FETCH 1 BODY.PEEK[]")
    assert lines[0].endswith(b"mutt body\r\n)")
    ok(raw, b"a0009", b"UID STORE 1 +FLAGS.SILENT (\\Seen)")
    ok(raw, b"a0010", b"UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert ok(raw, b"a0011", b"UID EXPUNGE 1")[0] == b"* VANISHED 1"
    ok(raw, b"a0012", b"CHECK")
    ok(raw, b"a0013", b"LOGOUT")
    raw.close()


def test_mbsync(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("for mbsync"))
    raw = Raw(postel)
    ok(raw, b"1", b"CAPABILITY")
    ok(raw, b"2", b"AUTHENTICATE PLAIN " + base64.b64encode(f"\0{user}\0{PASSWORD}".encode()))
    ok(raw, b"3", b"NAMESPACE")
    ok(raw, b"4", b'LIST "" "*"')
    ok(raw, b"5", b"SELECT INBOX")
    lines = ok(raw, b"6", b"UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-TUID)])")
    assert lines[0].startswith(b"* 1 FETCH (UID 1 FLAGS (\\Recent) BODY[HEADER.FIELDS (X-TUID)]")
    body = b"X-TUID: abcdefgh\r\nSubject: synced up\r\n\r\nfrom the other side\r\n"
    lines = ok(raw, b"7", b'APPEND "INBOX" (\\Seen) " 3-Feb-2024 10:11:12 +0100" {%d+}\r\n'
               % len(body) + body)
    assert re.search(rb"\[APPENDUID \d+ 2\]", lines[-1])
    lines = ok(raw, b"8", b"UID FETCH 2:* (UID BODY.PEEK[HEADER.FIELDS (X-TUID)])")
    assert b"X-TUID: abcdefgh" in b"".join(lines)
    ok(raw, b"9", b"UID STORE 1 +FLAGS.SILENT (\\Deleted \\Seen)")
    ok(raw, b"10", b"CLOSE")
    ok(raw, b"11", b"LOGOUT")
    raw.close()


def test_thunderbird(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("for tb"))
    raw = Raw(postel)
    ok(raw, b"1", b'ID ("name" "Thunderbird" "version" "128.0")')
    raw.send(b"2 authenticate PLAIN\r\n")
    assert raw.line() == b"+ "
    raw.send(base64.b64encode(f"\0{user}\0{PASSWORD}".encode()) + b"\r\n")
    assert raw.until(b"2")[-1].startswith(b"2 OK")
    ok(raw, b"3", b"namespace")
    ok(raw, b"4", b"enable CONDSTORE")
    ok(raw, b"5", b'list (subscribed) "" "*" return (special-use)')
    lines = ok(raw, b"6", b'select "INBOX" (CONDSTORE)')
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))  # type: ignore[union-attr]
    ok(raw, b"7", b"getquotaroot \"INBOX\"")
    lines = ok(raw, b"8", b"UID fetch 1:* (FLAGS)")
    assert lines[0] == b"* 1 FETCH (UID 1 FLAGS (\\Recent))"
    lines = ok(raw, b"9", b"UID fetch 1 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
                          b"(From To Cc Bcc Subject Date Message-ID Priority X-Priority "
                          b"References Newsgroups In-Reply-To Content-Type Reply-To)])")
    assert b"Subject: for tb" in lines[0]
    ok(raw, b"10", b"UID store 1 +Flags (\\Seen)")
    lines = ok(raw, b"11", b"UID fetch 1:* (FLAGS) (CHANGEDSINCE %d)" % modseq)
    assert b"\\Seen" in lines[0] and b"MODSEQ" in lines[0]
    raw.send(b"12 IDLE\r\n")
    assert raw.line() == b"+ idling"
    raw.send(b"DONE\r\n")
    assert raw.until(b"12")[-1].startswith(b"12 OK")
    raw.close()


def test_k9(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("for k9", "k9 text body"))
    raw = Raw(postel)
    raw.login(user)
    ok(raw, b"2", b'LIST "" "*"')
    ok(raw, b"3", b'SELECT "INBOX"')
    assert ok(raw, b"4", b"UID SEARCH 1:* NOT DELETED")[0] == b"* SEARCH 1"
    lines = ok(raw, b"5", b"UID FETCH 1 (UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS "
                          b"(date subject from content-type to cc reply-to message-id "
                          b"references in-reply-to X-K9mail-Identity Chat-Version)])")
    assert b"Subject: for k9" in lines[0]
    ok(raw, b"6", b"UID FETCH 1 (UID BODYSTRUCTURE)")
    lines = ok(raw, b"7", b"UID FETCH 1 (UID BODY.PEEK[1]<0.4096>)")
    assert b"k9 text body" in lines[0]
    ok(raw, b"8", b'UID COPY 1 "Trash"')
    raw.close()


def test_outlook_and_apple_mail(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("for apple"))
    raw = Raw(postel)
    raw.login(user)
    ok(raw, b"1", b"ENABLE QRESYNC")
    ok(raw, b"2", b'LIST "" "" RETURN (CHILDREN)')
    ok(raw, b"3", b'LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN UIDVALIDITY))')
    lines = ok(raw, b"4", b"SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))  # type: ignore[union-attr]
    ok(raw, b"5", b"UNSELECT")
    lines = ok(raw, b"6", b"SELECT INBOX (QRESYNC (%d 1))" % uidvalidity)
    assert any(line.startswith(b"* 1 FETCH (UID 1 FLAGS") for line in lines)
    assert raw.cmd(b"7", b"XAPPLEPUSHSERVICE aps-version 2")[-1].startswith(b"7 BAD")
    ok(raw, b"8", b"NOOP")
    raw.close()
