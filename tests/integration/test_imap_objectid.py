"""OBJECTID (RFC 8474): MAILBOXID on CREATE, SELECT, STATUS and LIST-STATUS; EMAILID and
THREADID as FETCH items and SEARCH keys; ids stable across RENAME, COPY and MOVE.

Raw lines check the response codes byte for byte (over 993 and 143 with STARTTLS);
imapclient exercises STATUS (MAILBOXID), FETCH EMAILID/THREADID, COPY, MOVE and SEARCH.
"""

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

pytestmark = pytest.mark.usefixtures(both_ports.__name__)

OBJECTID = rb"[A-Za-z0-9_-]{1,255}"


def _created_id(raw: Raw, tag: bytes, name: bytes) -> bytes:
    line = raw.cmd(tag, b"CREATE " + name)[-1]
    m = re.match(tag + rb" OK \[MAILBOXID \((" + OBJECTID + rb")\)\] ", line)
    assert m, line
    return m.group(1)


def test_mailboxid_on_create_status_list_select_and_rename(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert b" OBJECTID" in raw.cmd(b"c", b"CAPABILITY")[0]
    made = _created_id(raw, b"a", b"Projects")
    assert raw.cmd(b"b", b"STATUS Projects (MAILBOXID MESSAGES)")[0] == (
        b"* STATUS Projects (MAILBOXID (" + made + b") MESSAGES 0)")
    lines = raw.cmd(b"d", b'LIST "" "Projects" RETURN (STATUS (MAILBOXID))')
    assert b"* STATUS Projects (MAILBOXID (" + made + b"))" in lines
    assert raw.cmd(b"e", b"RENAME Projects Work")[-1].startswith(b"e OK")
    # RFC 8474 4.2: RENAME keeps the MAILBOXID.
    assert raw.cmd(b"f", b"STATUS Work (MAILBOXID)")[0] == (
        b"* STATUS Work (MAILBOXID (" + made + b"))")
    lines = raw.cmd(b"g", b"SELECT Work")
    assert b"* OK [MAILBOXID (" + made + b")] Ok" in lines
    inbox = raw.cmd(b"h", b"STATUS INBOX (MAILBOXID)")[0]
    assert made not in inbox
    raw.cmd(b"i", b"UNSELECT")
    raw.cmd(b"j", b"DELETE Work")
    # A mailbox created again under the same name is another mailbox.
    assert _created_id(raw, b"k", b"Work") != made
    raw.close()


def test_emailid_and_threadid_survive_copy_and_move(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("topic", Message_ID="<root@x.test>"))
    deliver(postel, user, message("Re: topic", Message_ID="<reply@x.test>",
                                  In_Reply_To="<root@x.test>", References="<root@x.test>"))
    deliver(postel, user, message("other"))
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        got = c.fetch([1, 2, 3], ["EMAILID", "THREADID"])
        emailids = [got[n][b"EMAILID"][0] for n in (1, 2, 3)]
        threadids = [got[n][b"THREADID"][0] for n in (1, 2, 3)]
        assert len(set(emailids)) == 3
        assert all(re.fullmatch(OBJECTID, i) for i in emailids + threadids)
        assert threadids[0] == threadids[1] != threadids[2]
        assert c.search(["EMAILID", emailids[1]]) == [2]
        assert c.search(["THREADID", threadids[0]]) == [1, 2]
        assert c.search(["THREADID", "Tnothing"]) == []
        c.copy([1], "Archive")
        c.move([2], "Trash")
        c.select_folder("Archive")
        copied = c.fetch([1], ["EMAILID", "THREADID"])[1]
        assert copied[b"EMAILID"][0] == emailids[0]
        assert copied[b"THREADID"][0] == threadids[0]
        c.select_folder("Trash")
        moved = c.fetch([1], ["EMAILID", "THREADID"])[1]
        assert moved[b"EMAILID"][0] == emailids[1]
        assert c.search(["EMAILID", emailids[1]]) == [1]


def test_bad_objectid_syntax_gets_bad(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("x"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", b"FETCH 1 (EMAILID THREADID)")
    assert re.match(rb"\* 1 FETCH \(EMAILID \(M[0-9a-f]+\) THREADID \(T[0-9a-f]+\)\)",
                    lines[0])
    assert raw.cmd(b"b", b'SEARCH EMAILID "M.1"')[-1].startswith(b"b BAD")
    assert raw.cmd(b"c", b"SEARCH THREADID")[-1].startswith(b"c BAD")
    assert raw.cmd(b"d", b"FETCH 1 (EMAILID[])")[-1].startswith(b"d BAD")
    assert raw.cmd(b"e", b"STATUS INBOX (MAILBOXID")[-1].startswith(b"e BAD")
    raw.close()
