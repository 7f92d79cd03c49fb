"""ESEARCH, SEARCHRES, SORT, THREAD, IMAP4rev2 behaviour, UTF8=ACCEPT APPEND, APPENDLIMIT,
OVERQUOTA on APPEND and COPY."""

from __future__ import annotations

import re

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

# Every test here runs over 993 (implicit TLS) and 143 (STARTTLS).
pytestmark = pytest.mark.usefixtures(both_ports.__name__)




def test_esearch_and_searchres(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(5):
        deliver(postel, user, message(f"m{i}" if i % 2 else f"even {i}"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", b"SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT even")
    assert lines[0] == b'* ESEARCH (TAG "a") MIN 1 MAX 5 ALL 1,3,5 COUNT 3'
    lines = raw.cmd(b"b", b"UID SEARCH RETURN () ALL")
    assert lines[0] == b'* ESEARCH (TAG "b") UID ALL 1:5'
    lines = raw.cmd(b"c", b"SEARCH RETURN (COUNT) SUBJECT nothing")
    assert lines[0] == b'* ESEARCH (TAG "c") COUNT 0'
    lines = raw.cmd(b"d", b"SEARCH RETURN (SAVE) SUBJECT even")
    assert lines == [b"d OK SEARCH completed"]
    lines = raw.cmd(b"e", b"FETCH $ (UID)")
    assert lines[:-1] == [b"* 1 FETCH (UID 1)", b"* 3 FETCH (UID 3)", b"* 5 FETCH (UID 5)"]
    lines = raw.cmd(b"f", b"UID SEARCH UID $ NOT 1")
    assert lines[0] == b"* SEARCH 3 5"
    raw.cmd(b"g", b"STORE $ +FLAGS.SILENT (\\Flagged)")
    assert raw.cmd(b"h", b"SEARCH FLAGGED")[0] == b"* SEARCH 1 3 5"
    assert raw.cmd(b"i", b"SEARCH RETURN (SAVE MAX) FLAGGED")[0] == b'* ESEARCH (TAG "i") MAX 5'
    assert raw.cmd(b"j", b"UID SEARCH $")[0] == b"* SEARCH 5"
    raw.cmd(b"k", b"STORE 1:5 +FLAGS.SILENT (\\Deleted)")
    lines = raw.cmd(b"l", b"STATUS INBOX (DELETED SIZE DELETED-STORAGE)")
    m = re.match(rb"\* STATUS INBOX \(DELETED 5 SIZE (\d+) DELETED-STORAGE (\d+)\)", lines[0])
    assert m and int(m.group(2)) == int(m.group(1)) // 1024 > 0
    raw.close()


def test_sort(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("b subject", Date="Wed, 03 Jan 2024 10:00:00 +0000",
                                  Cc="zed@x.test"))
    deliver(postel, user, message("Re: A subject", Date="Mon, 01 Jan 2024 10:00:00 +0000",
                                  Cc="amy@x.test"))
    deliver(postel, user, message("c subject", "a much longer body " * 20,
                                  Date="Tue, 02 Jan 2024 10:00:00 +0000"))
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        assert c.sort(["SUBJECT"]) == [2, 1, 3]
        assert c.sort(["DATE"]) == [2, 3, 1]
        assert c.sort(["REVERSE", "DATE"]) == [1, 3, 2]
        assert c.sort(["SIZE"])[-1] == 3
        assert c.sort(["ARRIVAL"]) == [1, 2, 3]
        assert c.sort(["CC"]) == [3, 2, 1]  # empty sorts first
        assert c.sort(["SUBJECT"], ["SINCE", "1-Jan-2000", "NOT", "SUBJECT", "c subject"]) == [2, 1]


def test_thread(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("topic", **{"Message_ID": "<a@x>"},
                                  Date="Mon, 01 Jan 2024 10:00:00 +0000"))
    deliver(postel, user, message("Re: topic", **{"Message_ID": "<b@x>"}, In_Reply_To="<a@x>",
                                  References="<a@x>", Date="Mon, 01 Jan 2024 11:00:00 +0000"))
    deliver(postel, user, message("other", **{"Message_ID": "<c@x>"},
                                  Date="Mon, 01 Jan 2024 12:00:00 +0000"))
    deliver(postel, user, message("Re: topic", **{"Message_ID": "<d@x>"},
                                  References="<a@x> <b@x>",
                                  Date="Mon, 01 Jan 2024 13:00:00 +0000"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    assert raw.cmd(b"a", b"THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (1 2 4)(3)"
    assert raw.cmd(b"b", b"THREAD ORDEREDSUBJECT UTF-8 ALL")[0] == b"* THREAD (1 (2)(4))(3)"
    assert raw.cmd(b"c", b"UID THREAD REFERENCES UTF-8 NOT UID 3")[0] == b"* THREAD (1 2 4)"
    raw.close()


def test_imap4rev2_mode(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("x"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"e", b"ENABLE IMAP4rev2")
    lines = raw.cmd(b"s", b"SELECT INBOX")
    assert b'* LIST () "/" INBOX' in lines
    assert not any(b"RECENT" in line for line in lines)
    assert raw.cmd(b"a", b"SEARCH ALL")[0] == b'* ESEARCH (TAG "a") ALL 1'
    assert raw.cmd(b"b", b"FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS ())"
    raw.close()


def test_utf8_accept_append(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"e", b"ENABLE UTF8=ACCEPT")
    body = "Subject: Grüße\r\nFrom: Jörg <jörg@example.test>\r\n\r\nHallo\r\n".encode()
    lines = raw.cmd(b"a", b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(body) + body + b")")
    assert lines[-1].startswith(b"a OK [APPENDUID")
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"f", b"FETCH 1 ENVELOPE")
    assert 'ENVELOPE (NIL "Grüße" (("Jörg" NIL "jörg" "example.test"))'.encode() in lines[0]
    raw.close()


def test_appendlimit_and_overquota(make_postel: object) -> None:
    server = make_postel()  # type: ignore[operator]
    server.add_user("small@example.test", quota_bytes=2500)
    server.start()
    raw = Raw(server)
    raw.login("small@example.test")
    caps = raw.cmd(b"c", b"CAPABILITY")[0]
    assert b"APPENDLIMIT=" in caps
    one = message("fits", "x" * 700)
    assert raw.cmd(b"a", b"APPEND INBOX {%d+}\r\n" % len(one) + one)[-1].startswith(b"a OK")
    lines = raw.cmd(b"b", b"APPEND INBOX {%d+}\r\n" % len(one) + one + b" {%d+}\r\n" % len(one)
                    + one)
    assert lines[-1].startswith(b"b NO [OVERQUOTA]")
    raw.cmd(b"s", b"SELECT INBOX")
    assert raw.cmd(b"d", b"STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 1)", (
        "MULTIAPPEND is all or nothing")
    assert raw.cmd(b"e", b"COPY 1 Archive")[-1].startswith(b"e OK")
    assert raw.cmd(b"f", b"COPY 1 Archive")[-1].startswith(b"f NO [OVERQUOTA]")
    raw.close()
