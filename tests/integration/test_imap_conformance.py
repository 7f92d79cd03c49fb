"""Conformance fixes from issue 11, each over a real socket on 993 and on 143 (STARTTLS):
answers a client written to the RFCs expects where Postel used to surprise it."""

from __future__ import annotations

import re
import socket
import struct
import time

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, deliver, message, new_user

# Every test here runs over 993 (implicit TLS) and 143 (STARTTLS).
pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def append(raw: Raw, body: bytes, mailbox: bytes = b"INBOX", binary: bool = False) -> None:
    marker = b"~" if binary else b""
    lines = raw.cmd(b"ap", b"APPEND %s %s{%d+}\r\n" % (mailbox, marker, len(body)) + body)
    assert lines[-1].startswith(b"ap OK"), lines


def no_nul_outside_literal8(data: bytes) -> bool:
    """True when every NUL in a response sits inside a ~{n} literal (RFC 9051 4.3.1)."""
    position = 0
    while (m := re.compile(rb"(~?)\{(\d+)\}\r\n").search(data, position)) is not None:
        if b"\0" in data[position : m.start()]:
            return False
        end = m.end() + int(m.group(2))
        if not m.group(1) and b"\0" in data[m.end() : end]:
            return False
        position = end
    return b"\0" not in data[position:]


def test_nul_never_sent_in_a_normal_literal(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    body = b"Subject: nul\r\nContent-Type: text/plain\r\n\r\nab\0cd\r\n"
    append(raw, body, binary=True)
    raw.cmd(b"s", b"EXAMINE INBOX")
    for fetch in (b"BODY.PEEK[1]", b"BODY.PEEK[]", b"BODY.PEEK[TEXT]", b"RFC822"):
        lines = raw.cmd(b"f", b"FETCH 1 (" + fetch + b")")
        assert lines[-1].startswith(b"f OK"), lines
        assert no_nul_outside_literal8(lines[0]), lines[0]
    # BINARY still gives the octets exactly, in a literal8 (RFC 3516 4.2).
    lines = raw.cmd(b"b", b"FETCH 1 (BINARY.PEEK[1])")
    assert lines[0] == b"* 1 FETCH (BINARY[1] ~{7}\r\nab\0cd\r\n)"
    raw.close()


ODD_NAME = b"!#$&'+,-.0123456789:;<=>?@^_`|[}"


def test_valid_astring_that_is_not_modified_utf7_gets_no_not_bad(postel: PostelServer) -> None:
    """RFC 9051 7.1.3: BAD is for syntax errors; this name is a valid astring."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"a", b"SELECT " + ODD_NAME)[-1].startswith(b"a NO")
    assert raw.cmd(b"b", b"EXAMINE " + ODD_NAME)[-1].startswith(b"b NO")
    assert raw.cmd(b"c", b"STATUS " + ODD_NAME + b" (MESSAGES)")[-1].startswith(b"c NO")
    lines = raw.cmd(b"d", b'LIST "" ' + ODD_NAME)
    assert lines == [lines[-1]] and lines[-1].startswith(b"d OK"), lines
    assert raw.cmd(b"e", b"CREATE " + ODD_NAME)[-1].startswith(b"e NO")
    lines = raw.cmd(b"f", b'LIST "" *')
    assert not any(b"0123456789" in line for line in lines)
    raw.close()


def test_binary_of_quoted_printable_deletes_trailing_white_space(postel: PostelServer) -> None:
    """RFC 2045 6.7 rule 3: trailing white space is padding, deleted when decoding, also
    before a soft line break; RFC 3516 BINARY returns the decoded part."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    body = (b"Subject: qp\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"hello  \r\nfoo \t= \r\nbar=3D=20\r\nend\t\r\n")
    append(raw, body)
    raw.cmd(b"s", b"EXAMINE INBOX")
    decoded = b"hello\r\nfoobar= \r\nend\r\n"
    lines = raw.cmd(b"a", b"FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
    assert lines[0] == b"* 1 FETCH (BINARY[1] {%d}\r\n%s BINARY.SIZE[1] %d)" % (
        len(decoded), decoded, len(decoded))
    raw.close()


def _new_log(postel: PostelServer, offset: int) -> bytes:
    return postel.log_path.read_bytes()[offset:]


def test_peer_disconnecting_mid_write_is_an_info_line(postel: PostelServer) -> None:
    """A client that goes away while a large FETCH is being written is not a server
    error: one info line, no traceback."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    append(raw, b"Subject: big\r\n\r\n" + b"x" * 76 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 4000)
    raw.cmd(b"s", b"EXAMINE INBOX")
    offset = postel.log_path.stat().st_size
    raw.send(b"f1 FETCH 1 BODY.PEEK[]\r\nf2 FETCH 1 BODY.PEEK[]\r\nf3 FETCH 1 BODY.PEEK[]\r\n")
    raw.line()  # the server is now writing
    sock = raw.sock
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST: the peer is gone mid-write
    deadline = time.monotonic() + 30
    while b'"connection ended"' not in _new_log(postel, offset):
        assert b"session failed" not in _new_log(postel, offset), _new_log(postel, offset)
        assert time.monotonic() < deadline, _new_log(postel, offset)
        time.sleep(0.02)  # polling the log with a deadline
    log = _new_log(postel, offset)
    assert b"session failed" not in log and b"Traceback" not in log, log


def test_search_from_to_cc_match_the_addresses(postel: PostelServer) -> None:
    """RFC 3501 6.4.4: FROM/TO/CC search the envelope's address fields, so comments and
    white space inside an address do not hide it."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    append(raw, b"From: <user-from (comment)@ (comment) domain.org>\r\n"
                b"To: Someone <user-to @ domain.org>\r\n"
                b"Cc: team: a (x) @ cc.example, b@cc.example;\r\nSubject: s\r\n\r\nbody\r\n")
    append(raw, b"From: other@domain.org\r\nSubject: t\r\n\r\nbody\r\n")
    raw.cmd(b"s", b"EXAMINE INBOX")
    assert raw.cmd(b"a", b"SEARCH FROM user-from@domain.org")[0] == b"* SEARCH 1"
    assert raw.cmd(b"b", b"SEARCH TO user-to@domain.org")[0] == b"* SEARCH 1"
    assert raw.cmd(b"c", b"SEARCH CC a@cc.example")[0] == b"* SEARCH 1"
    assert raw.cmd(b"d", b"SEARCH FROM domain.org")[0] == b"* SEARCH 1 2"
    assert raw.cmd(b"e", b'SEARCH TO "Someone"')[0] == b"* SEARCH 1"
    assert raw.cmd(b"f", b"SEARCH FROM comment")[0] == b"* SEARCH 1"  # header text too
    raw.close()


def test_thread_references_breaks_a_link_that_would_loop(postel: PostelServer) -> None:
    """RFC 5256 4, REFERENCES step 1B: the current message's old parent link is broken,
    and a new link that would make a loop is not created."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    for mid, refs, day, subject in ((b"<1@x>", b"", 3, b"one"),
                                    (b"<2@x>", b"<1@x> <3@x>", 2, b"two"),
                                    (b"<3@x>", b"<2@x>", 1, b"three")):
        header = b"References: " + refs + b"\r\n" if refs else b""
        append(raw, b"Message-ID: " + mid + b"\r\n" + header
               + b"Date: %d Jan 2024 10:00:00 +0000\r\nSubject: " % day + subject
               + b"\r\n\r\nbody\r\n")
    raw.cmd(b"s", b"EXAMINE INBOX")
    assert raw.cmd(b"t", b"THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (3 2)(1)"
    raw.close()


def test_sort_by_group_names_and_unicode_casemap(postel: PostelServer) -> None:
    """RFC 5256 3 / RFC 5957 3: CC and DISPLAYTO sort by the first address, which for a
    group is its name; strings compare under i;unicode-casemap (RFC 5051), where
    letters map to upper case and so sort before "_"."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    append(raw, b"From: a@x.test\r\nTo: Zulu group: Adam <adam@x.test>;\r\n"
                b"Cc: zteam: aaron@x.test;\r\nSubject: _under\r\n\r\nbody\r\n")
    append(raw, b"From: b@x.test\r\nTo: Mike <mike@x.test>\r\n"
                b"Cc: mike@x.test\r\nSubject: banana\r\n\r\nbody\r\n")
    raw.cmd(b"s", b"EXAMINE INBOX")
    assert raw.cmd(b"a", b"SORT (CC) UTF-8 ALL")[0] == b"* SORT 2 1"
    assert raw.cmd(b"b", b"SORT (DISPLAYTO) UTF-8 ALL")[0] == b"* SORT 2 1"
    assert raw.cmd(b"c", b"SORT (SUBJECT) UTF-8 ALL")[0] == b"* SORT 2 1"
    assert raw.cmd(b"d", b"SORT (REVERSE SUBJECT) UTF-8 ALL")[0] == b"* SORT 1 2"
    raw.close()


def _listed(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* LIST") or line.startswith(b"* LSUB")]


def test_subscriptions_are_the_clients_and_outlive_delete(postel: PostelServer) -> None:
    """RFC 3501 6.3.6 / RFC 9051 6.3.9: only SUBSCRIBE adds to the subscription list, and
    the server does not remove a name from it when the mailbox is deleted."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"a", b"CREATE Work/Notes")[-1].startswith(b"a OK")
    assert _listed(raw.cmd(b"b", b'LSUB "" Work*')) == []
    assert raw.cmd(b"c", b"SUBSCRIBE Work/Notes")[-1].startswith(b"c OK")
    assert raw.cmd(b"d", b"DELETE Work/Notes")[-1].startswith(b"d OK")
    assert _listed(raw.cmd(b"e", b'LSUB "" Work/*')) == [b'* LSUB () "/" Work/Notes']
    lines = _listed(raw.cmd(b"f", b'LIST (SUBSCRIBED) "" Work/*'))
    assert lines == [b'* LIST (\\NonExistent \\Noselect \\HasNoChildren \\Subscribed) "/" '
                     b"Work/Notes"], lines
    assert _listed(raw.cmd(b"g", b'LIST "" Work/*')) == []
    # Re-created, it is still subscribed; UNSUBSCRIBE of the gone name works too.
    assert raw.cmd(b"h", b"CREATE Work/Notes")[-1].startswith(b"h OK")
    assert _listed(raw.cmd(b"i", b'LSUB "" Work/*')) == [b'* LSUB () "/" Work/Notes']
    assert raw.cmd(b"j", b"DELETE Work/Notes")[-1].startswith(b"j OK")
    assert raw.cmd(b"k", b"UNSUBSCRIBE Work/Notes")[-1].startswith(b"k OK")
    assert _listed(raw.cmd(b"l", b'LSUB "" *')) == [
        b'* LSUB () "/" ' + n for n in (b"INBOX", b"Archive", b"Drafts", b"Junk", b"Sent",
                                        b"Trash")]
    raw.close()


def test_list_subscribed_recursivematch_childinfo(postel: PostelServer) -> None:
    """RFC 5258 3.5: CHILDINFO goes with a parent whose subscribed children are not
    themselves returned, subscribed or not, and a parent that is not subscribed is
    returned only for such children."""
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    for name in (b"Foo/Bar", b"Foo2/Bar", b"Baz", b"Qux/Bar"):
        assert raw.cmd(b"c", b"CREATE " + name)[-1].startswith(b"c OK")
    for name in (b"Foo/Bar", b"Foo2", b"Foo2/Bar", b"Baz"):
        assert raw.cmd(b"s", b"SUBSCRIBE " + name)[-1].startswith(b"s OK")
    lines = _listed(raw.cmd(b"a", b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"'))
    assert b'* LIST (\\HasChildren) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))' in lines, lines
    assert (b'* LIST (\\HasChildren \\Subscribed) "/" Foo2 ("CHILDINFO" ("SUBSCRIBED"))'
            in lines), lines
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Baz' in lines, lines
    assert not any(b"Qux" in line for line in lines), lines
    lines = _listed(raw.cmd(b"b", b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"'))
    # Every subscribed child is returned itself: no CHILDINFO, no unsubscribed parent.
    assert not any(b"CHILDINFO" in line for line in lines), lines
    assert not any(line.endswith(b'"/" Foo') for line in lines), lines
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Foo/Bar' in lines, lines
    raw.close()


def _highestmodseq(lines: list[bytes]) -> int:
    m = re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(lines))
    assert m, lines
    return int(m.group(1))


@pytest.mark.parametrize("enabling", [b"FETCH 1 (MODSEQ)", b"SEARCH MODSEQ 1",
                                      b"ENABLE CONDSTORE", b"FETCH 1 (FLAGS) (CHANGEDSINCE 1)"])
def test_first_condstore_enabling_command_reports_highestmodseq(
    postel: PostelServer, enabling: bytes
) -> None:
    """RFC 7162 3.1: the first CONDSTORE-enabling command in a selected mailbox sends
    OK [HIGHESTMODSEQ n]; later ones do not."""
    user = new_user(postel)
    deliver(postel, user, message("one"))
    deliver(postel, user, message("two"))
    other = Raw(postel)  # STATUS HIGHESTMODSEQ enables CONDSTORE: ask elsewhere
    other.login(user)
    highest = _highestmodseq(other.cmd(b"st", b"STATUS INBOX (HIGHESTMODSEQ)"))
    other.close()
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", enabling)
    assert any(line.startswith(b"* OK [HIGHESTMODSEQ %d]" % highest) for line in lines), lines
    lines = raw.cmd(b"b", b"FETCH 1 (MODSEQ)")
    assert not any(b"HIGHESTMODSEQ" in line for line in lines), lines
    raw.close()


def test_esearch_min_max_modseq_is_of_the_returned_message(postel: PostelServer) -> None:
    """RFC 4731 3.2: with MIN or MAX alone, MODSEQ is that message's mod-sequence."""
    user = new_user(postel)
    for i in range(3):
        deliver(postel, user, message(f"m{i}"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"e", b"ENABLE CONDSTORE")
    raw.cmd(b"s", b"SELECT INBOX")
    raw.cmd(b"f", b"STORE 2 +FLAGS (\\Flagged)")  # message 2 now has the highest MODSEQ
    modseqs = {}
    for line in raw.cmd(b"m", b"FETCH 1:3 (MODSEQ)")[:-1]:
        m = re.match(rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", line)
        assert m, line
        modseqs[int(m.group(1))] = int(m.group(2))
    assert modseqs[2] > max(modseqs[1], modseqs[3])
    lines = raw.cmd(b"a", b"SEARCH RETURN (MIN) MODSEQ 1")
    assert lines[0] == b'* ESEARCH (TAG "a") MIN 1 MODSEQ %d' % modseqs[1]
    lines = raw.cmd(b"b", b"SEARCH RETURN (MAX) MODSEQ 1")
    assert lines[0] == b'* ESEARCH (TAG "b") MAX 3 MODSEQ %d' % modseqs[3]
    lines = raw.cmd(b"c", b"SEARCH RETURN (MIN MAX) MODSEQ 1")
    assert lines[0] == b'* ESEARCH (TAG "c") MIN 1 MAX 3 MODSEQ %d' % max(modseqs[1],
                                                                          modseqs[3])
    lines = raw.cmd(b"d", b"SEARCH RETURN (MIN COUNT) MODSEQ 1")
    assert lines[0] == b'* ESEARCH (TAG "d") MIN 1 COUNT 3 MODSEQ %d' % modseqs[2]
    raw.close()
