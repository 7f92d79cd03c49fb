"""Message commands over real sockets with imaplib, imapclient and imap-tools: APPEND
(MULTIAPPEND, LITERAL+, 25 MB), FETCH (every item), STORE, SEARCH, COPY, MOVE, EXPUNGE,
and their UID forms with UIDPLUS responses."""

from __future__ import annotations

import imaplib
import re
from datetime import UTC, datetime

import pytest
from imap_tools import AND, MailBox, MailMessageFlags

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_imap_support import (
    Raw,
    deliver,
    imapclient,
    message,
    new_user,
    starttls_client,
)

NESTED = (
    b"From: Outer <outer@example.test>\r\n"
    b"To: x@example.test\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?= outer\r\n"
    b"Date: Tue, 05 Mar 2024 10:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9 au lait\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: Inner <inner@example.test>\r\n"
    b"Subject: inner\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner text\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>inner html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=data.bin\r\n"
    b"\r\n"
    b"AAECAwQFBgc=\r\n"
    b"--outer--\r\n"
)




def test_append_and_fetch_with_imapclient(postel: PostelServer) -> None:
    user = new_user(postel)
    with imapclient(postel, user) as c:
        when = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
        result = c.append("INBOX", NESTED, flags=[b"\\Seen", b"$Work"], msg_time=when)
        assert re.match(rb"\[APPENDUID \d+ 1\]", result)
        c.select_folder("INBOX")
        data = c.fetch("1", ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                             "BODYSTRUCTURE", "UID"])[1]
        assert set(data[b"FLAGS"]) == {b"\\Seen", b"$Work", b"\\Recent"}
        assert data[b"RFC822.SIZE"] == len(NESTED)
        assert data[b"INTERNALDATE"].astimezone(UTC) == when
        env = data[b"ENVELOPE"]
        assert env.subject == b"=?utf-8?q?Caf=C3=A9?= outer"
        assert env.from_[0].mailbox == b"outer" and env.from_[0].host == b"example.test"
        bs = data[b"BODYSTRUCTURE"]
        assert bs.is_multipart
        parts, subtype = bs[0], bs[1]
        assert subtype == b"mixed" and len(parts) == 3
        rfc822 = parts[1]
        assert rfc822[0] == b"message" and rfc822[1] == b"rfc822"
        assert rfc822[7][1] == b"inner"  # the embedded ENVELOPE
        inner = rfc822[8]
        assert isinstance(inner[0], tuple) and inner[2] == b"alternative"
        assert inner[0][:2] == (b"text", b"plain") and inner[1][:2] == (b"text", b"html")


def test_fetch_sections(postel: PostelServer) -> None:
    user = new_user(postel)
    with imapclient(postel, user) as c:
        c.append("INBOX", NESTED)
        c.select_folder("INBOX")
        items = ["BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]", "BODY.PEEK[1]",
                 "BODY.PEEK[1.MIME]", "BODY.PEEK[2]", "BODY.PEEK[2.HEADER]",
                 "BODY.PEEK[2.TEXT]", "BODY.PEEK[2.1]", "BODY.PEEK[2.2]",
                 "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]",
                 "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM TO DATE MIME-VERSION)]",
                 "BODY.PEEK[]<0.4>", "BINARY.SIZE[3]", "BINARY.PEEK[1]",
                 "RFC822.HEADER"]
        data = c.fetch("1", items)[1]
        header, _, text = NESTED.partition(b"\r\n\r\n")
        assert data[b"BODY[]"] == NESTED
        assert data[b"BODY[HEADER]"] == header + b"\r\n\r\n"
        assert data[b"RFC822.HEADER"] == header + b"\r\n\r\n"
        assert data[b"BODY[TEXT]"] == text
        assert data[b"BODY[1]"] == b"caf=C3=A9 au lait"
        assert data[b"BODY[1.MIME]"].startswith(b"Content-Type: text/plain; charset=utf-8")
        assert data[b"BODY[1.MIME]"].endswith(b"\r\n\r\n")
        assert data[b"BODY[2]"].startswith(b"From: Inner")
        assert data[b"BODY[2]"].endswith(b"--inner--")
        assert data[b"BODY[2.HEADER]"].startswith(b"From: Inner")
        assert data[b"BODY[2.TEXT]"].startswith(b"--inner\r\n")
        assert data[b"BODY[2.1]"] == b"inner text"
        assert data[b"BODY[2.2]"] == b"<p>inner html</p>"
        assert data[b"BODY[HEADER.FIELDS (SUBJECT FROM)]"] == (
            b"From: Outer <outer@example.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?= outer\r\n\r\n")
        assert data[b"BODY[HEADER.FIELDS.NOT (SUBJECT FROM TO DATE MIME-VERSION)]"] == (
            b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n')
        assert data[b"BODY[]<0>"] == b"From"
        assert data[b"BINARY.SIZE[3]"] == 8
        assert data[b"BINARY[1]"] == "café au lait".encode()
        flags = c.get_flags([1])[1]
        assert b"\\Seen" not in flags, "PEEK must not set \\Seen"
        data = c.fetch("1", ["BODY[1]"])[1]
        assert b"\\Seen" in data[b"FLAGS"], "BODY[] sets \\Seen and reports it"
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"EXAMINE INBOX")
    lines = raw.cmd(b"a", b"FETCH 1 (BINARY.PEEK[3] BODY[2.2]<3.5>)")
    assert lines[0] == (b"* 1 FETCH (BINARY[3] ~{8}\r\n" + bytes(range(8))
                        + b" BODY[2.2]<3> {5}\r\ninner)")
    lines = raw.cmd(b"b0", b"FETCH 1 (BINARY.PEEK[] BINARY.SIZE[] BINARY.PEEK[]<2.3>)")
    assert lines[0] == (b"* 1 FETCH (BINARY[] {%d}\r\n" % len(NESTED) + NESTED
                        + b" BINARY.SIZE[] %d BINARY[]<2> {3}\r\nom:)" % len(NESTED))
    lines = raw.cmd(b"b", b"FETCH 1 BODYSTRUCTURE")
    assert b'("message" "rfc822" NIL NIL NIL "7BIT" ' in lines[0]
    assert (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)'
        b'("text" "html"'
    ) in lines[0]
    raw.close()


def test_fetch_with_imaplib_uid_and_ranges(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(5):
        deliver(postel, user, message(f"msg {i}"))
    client = starttls_client(postel, user)
    client.select("INBOX")
    typ, data = client.uid("FETCH", "2:*", "(UID FLAGS)")
    assert typ == "OK"
    uids = [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]  # type: ignore[union-attr]
    assert uids == [2, 3, 4, 5]
    typ, data = client.uid("FETCH", "99:*", "(UID)")
    assert typ == "OK" and b"UID 5" in data[0]
    with pytest.raises(imaplib.IMAP4.error):
        client.fetch("9", "(FLAGS)")
    client.logout()


def test_store_flags_and_keywords(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(3):
        deliver(postel, user, message(f"m{i}"))
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        c.add_flags([1, 2], [b"\\Flagged", b"$Label1"])
        c.remove_flags([2], [b"$Label1"])
        c.set_flags([3], [b"\\Answered"])
        flags = c.get_flags([1, 2, 3])
        assert set(flags[1]) >= {b"\\Flagged", b"$Label1"}
        assert b"$Label1" not in flags[2] and b"\\Flagged" in flags[2]
        assert set(flags[3]) == {b"\\Answered", b"\\Recent"}
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        assert set(c.get_flags([1])[1]) == {b"\\Flagged", b"$Label1"}, "flags persist"
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert lines == [b"a OK STORE completed"]
    lines = raw.cmd(b"b", b"UID STORE 2 FLAGS (\\Seen)")
    assert lines[0] == b"* 2 FETCH (FLAGS (\\Seen) UID 2)"
    assert raw.cmd(b"c", b"STORE 1 FLAGS (\\Bogus)")[-1].startswith(b"c BAD")
    lines = raw.cmd(b"d", b"STORE 3 +FLAGS ($Brand-New)")
    assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Brand-New $Label1)"
    raw.close()


def test_search_keys(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("Lunch plans", "Let us meet at noon", Cc="carol@x.test"))
    deliver(postel, user, message("Réunion", "L'ordre du jour est prêt",
                                  Date="Mon, 01 Jan 2024 10:00:00 +0000"))
    deliver(postel, user, NESTED)
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        assert c.search(["SUBJECT", "lunch"]) == [1]
        assert c.search(["CC", "CAROL"]) == [1]
        assert c.search(["BODY", "NOON"]) == [1]
        assert c.search(["TEXT", "inner html"]) == [3]
        assert c.search(["BODY", "café"], charset="UTF-8") == [3]
        assert c.search(["SUBJECT", "réunion"], charset="UTF-8") == [2]
        assert c.search(["SENTBEFORE", "2-Jan-2024"]) == [2]
        assert c.search(["SENTON", "1-Jan-2024"]) == [2]
        assert c.search(["LARGER", "600"]) == [3]
        assert c.search(["NOT", "LARGER", "600"]) == [1, 2]
        assert c.search(["OR", "SUBJECT", "lunch", "HEADER", "Subject", "inner"]) == [1]
        assert c.search(["HEADER", "Content-Type", "multipart"]) == [3]
        c.add_flags([2], [b"\\Flagged", b"custom"])
        assert c.search(["FLAGGED"]) == [2]
        assert c.search(["KEYWORD", "custom"]) == [2]
        assert c.search(["UNKEYWORD", "custom", "UNFLAGGED"]) == [1, 3]
        assert c.search(["UID", "2:3", "UNSEEN"]) == [2, 3]
        assert c.search(["1,3"]) == [1, 3]
        assert c.search(["NEW"]) == [1, 2, 3] and c.search(["OLD"]) == []
        today = datetime.now(UTC).strftime("%d-%b-%Y")
        assert c.search(["SINCE", today]) == [1, 2, 3]
        assert c.search(["BEFORE", today]) == []
        assert c.search(["ON", today]) == [1, 2, 3]
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", b"SEARCH CHARSET KOI8-R ALL")
    assert lines[-1].startswith(b"a NO [BADCHARSET")
    lines = raw.cmd(b"b", b"UID SEARCH SUBJECT {5}\r\nlunch")
    assert b"* SEARCH 1" in lines and lines[-1].startswith(b"b OK")
    raw.close()


def test_search_with_literal(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("Grüße aus Köln"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    word = "köln".encode()
    raw.send(b"a SEARCH CHARSET UTF-8 SUBJECT {%d}\r\n" % len(word))
    assert raw.line().startswith(b"+ ")
    raw.send(word + b"\r\n")
    assert raw.until(b"a")[0] == b"* SEARCH 1"
    raw.close()


def test_imap_tools_workflow(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("first", "one"))
    deliver(postel, user, message("second", "two"))
    with MailBox("127.0.0.1", port=postel.port("imaps"),
                 ssl_context=postel.client_tls()).login(user, PASSWORD) as mb:
        subjects = [m.subject for m in mb.fetch(mark_seen=False)]
        assert subjects == ["first", "second"]
        uid = next(mb.fetch(AND(subject="second"))).uid
        mb.flag(uid, MailMessageFlags.FLAGGED, True)
        mb.copy(uid, "Archive")
        mb.move(uid, "Trash")
        assert [m.subject for m in mb.fetch()] == ["first"]
        mb.folder.set("Archive")
        msgs = list(mb.fetch())
        assert [m.subject for m in msgs] == ["second"]
        assert MailMessageFlags.FLAGGED in msgs[0].flags
        mb.delete(msgs[0].uid)
        assert list(mb.fetch()) == []


def test_copy_move_uidplus(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(4):
        deliver(postel, user, message(f"m{i}"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", b"COPY 2:3 Archive")
    m = re.match(rb"a OK \[COPYUID (\d+) 2:3 1:2\]", lines[-1])
    assert m, lines
    lines = raw.cmd(b"b", b"UID MOVE 1,4 Trash")
    assert re.match(rb"\* OK \[COPYUID \d+ 1,4 1:2\]", lines[0]), lines
    assert lines[1:3] == [b"* 4 EXPUNGE", b"* 1 EXPUNGE"]
    assert lines[-1].startswith(b"b OK")
    lines = raw.cmd(b"c", b"COPY 1 Nowhere")
    assert lines[-1].startswith(b"c NO [TRYCREATE]")
    lines = raw.cmd(b"d", b"STATUS Trash (MESSAGES UIDNEXT)")
    assert lines[0] == b"* STATUS Trash (MESSAGES 2 UIDNEXT 3)"
    raw.close()


def test_expunge_and_uid_expunge(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(5):
        deliver(postel, user, message(f"m{i}"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    raw.cmd(b"a", b"STORE 1:5 +FLAGS.SILENT (\\Deleted)")
    lines = raw.cmd(b"b", b"UID EXPUNGE 2:3")
    assert lines[:-1] == [b"* 3 EXPUNGE", b"* 2 EXPUNGE"]
    lines = raw.cmd(b"c", b"STORE 3 -FLAGS.SILENT (\\Deleted)")
    lines = raw.cmd(b"d", b"EXPUNGE")
    assert lines[:-1] == [b"* 2 EXPUNGE", b"* 1 EXPUNGE"]
    lines = raw.cmd(b"e", b"FETCH 1 (UID)")
    assert lines[0] == b"* 1 FETCH (UID 5)"
    raw.close()


def test_multiappend_and_literal_plus(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    one, two = message("one"), message("two")
    raw.send(b"a APPEND Drafts (\\Draft) {%d+}\r\n" % len(one) + one
             + b' (\\Seen) " 1-Feb-2024 08:00:00 +0000" {%d+}\r\n' % len(two) + two + b"\r\n")
    lines = raw.until(b"a")
    assert re.match(rb"a OK \[APPENDUID \d+ 1:2\]", lines[-1]), lines
    lines = raw.cmd(b"b", b"APPEND Nowhere {3+}\r\nabc")
    assert lines[-1].startswith(b"b NO [TRYCREATE]")
    raw.cmd(b"c", b"SELECT Drafts")
    lines = raw.cmd(b"d", b"FETCH 1:2 (FLAGS INTERNALDATE)")
    assert lines[0] == b'* 1 FETCH (FLAGS (\\Draft \\Recent) INTERNALDATE "' + (
        lines[0].split(b'INTERNALDATE "')[1])
    assert b' 1-Feb-2024 08:00:00 +0000' in lines[1]
    raw.close()


def test_append_25_megabytes_streams(postel: PostelServer) -> None:
    user = new_user(postel)
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (25 * 1024 * 1024 // len(line))
    client = starttls_client(postel, user)
    typ, data = client.append("INBOX", None, None, body)
    assert typ == "OK", data
    client.select("INBOX")
    typ, data = client.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][1] == body  # type: ignore[index]
    client.logout()


def test_fetch_bad_and_empty(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    assert raw.cmd(b"a", b"FETCH 1:* FLAGS")[-1].startswith(b"a OK")
    assert raw.cmd(b"b", b"FETCH 1 FLAGS")[-1].startswith(b"b BAD")
    assert raw.cmd(b"c", b"UID FETCH 1:* FLAGS")[-1].startswith(b"c OK")
    raw.close()
