"""CONDSTORE and QRESYNC (RFC 7162): MODSEQ in FETCH, CHANGEDSINCE, UNCHANGEDSINCE
conflicts, SEARCH MODSEQ, QRESYNC SELECT after expunges, VANISHED."""

from __future__ import annotations

import re

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, deliver, message, new_user

# Every test here runs over 993 (implicit TLS) and 143 (STARTTLS).
pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def modseq_of(line: bytes) -> int:
    m = re.search(rb"MODSEQ \((\d+)\)", line)
    assert m, line
    return int(m.group(1))


def session(postel: PostelServer, user: str, enable: bytes = b"CONDSTORE") -> Raw:
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"e", b"ENABLE " + enable)
    return raw


def test_fetch_modseq_and_changedsince(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(3):
        deliver(postel, user, message(f"m{i}"))
    raw = Raw(postel)
    raw.login(user)
    lines = raw.cmd(b"s", b"SELECT INBOX (CONDSTORE)")
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(lines)).group(1))  # type: ignore[union-attr]
    lines = raw.cmd(b"a", b"FETCH 1:* (MODSEQ)")
    seqs = [modseq_of(line) for line in lines[:-1]]
    assert max(seqs) == highest
    lines = raw.cmd(b"b", b"STORE 2 +FLAGS (\\Answered)")
    new = modseq_of(lines[0])
    assert new > highest and lines[0].startswith(b"* 2 FETCH (FLAGS (\\Answered \\Recent)")
    lines = raw.cmd(b"c", b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % highest)
    assert len(lines) == 2 and lines[0].startswith(b"* 2 FETCH (FLAGS")
    assert modseq_of(lines[0]) == new
    lines = raw.cmd(b"d", b"SEARCH MODSEQ %d" % new)
    assert lines[0] == b"* SEARCH 2 (MODSEQ %d)" % new
    lines = raw.cmd(b"f", b"STATUS Drafts (HIGHESTMODSEQ)")
    assert lines[0].startswith(b"* STATUS Drafts (HIGHESTMODSEQ ")
    raw.close()


def test_unchangedsince_conflict(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(3):
        deliver(postel, user, message(f"m{i}"))
    a = session(postel, user)
    b = session(postel, user)
    a.cmd(b"s", b"SELECT INBOX")
    b.cmd(b"s", b"SELECT INBOX")
    lines = a.cmd(b"f", b"FETCH 1:3 (MODSEQ)")
    seen_modseq = max(modseq_of(line) for line in lines[:-1])
    b.cmd(b"x", b"STORE 2 +FLAGS (\\Flagged)")
    lines = a.cmd(b"y", b"STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % seen_modseq)
    assert lines[-1].startswith(b"y OK [MODIFIED 2]")
    fetched = [line for line in lines if b"FETCH" in line]
    assert any(line.startswith(b"* 1 FETCH (FLAGS (\\Seen") for line in fetched)
    assert any(line.startswith(b"* 3 FETCH (FLAGS (\\Seen") for line in fetched)
    # Message 2 is reported with its new flags (from the other session), not \Seen.
    two = [line for line in fetched if line.startswith(b"* 2 FETCH")]
    assert two and b"\\Seen" not in two[0] and b"\\Flagged" in two[0]
    lines = a.cmd(b"z", b"UID STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Draft)")
    assert lines[-1].startswith(b"z OK [MODIFIED 1:3]")
    a.close()
    b.close()


def test_qresync_select_after_expunges(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(5):
        deliver(postel, user, message(f"m{i}"))
    first = session(postel, user, b"QRESYNC")
    lines = first.cmd(b"s", b"SELECT INBOX")
    text = b"\n".join(lines)
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))  # type: ignore[union-attr]
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", text).group(1))  # type: ignore[union-attr]
    first.cmd(b"l", b"LOGOUT")
    first.close()

    other = session(postel, user, b"QRESYNC")
    other.cmd(b"s", b"SELECT INBOX")
    other.cmd(b"a", b"STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    lines = other.cmd(b"b", b"EXPUNGE")
    assert lines[0] == b"* VANISHED 2,4"
    assert other.cmd(b"c", b"UID STORE 5 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"c OK")
    other.close()

    back = session(postel, user, b"QRESYNC")
    lines = back.cmd(b"s", b"SELECT INBOX (QRESYNC (%d %d 1:5))" % (uidvalidity, modseq))
    assert b"* VANISHED (EARLIER) 2,4" in lines
    flagged = [line for line in lines if b"FETCH" in line]
    assert len(flagged) == 1 and flagged[0].startswith(b"* 3 FETCH (UID 5 FLAGS (\\Flagged")
    assert lines[-1].startswith(b"s OK [READ-WRITE]")
    lines = back.cmd(b"f", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq)
    assert lines[0] == b"* VANISHED (EARLIER) 2,4"
    assert lines[1].startswith(b"* 3 FETCH (UID 5 FLAGS (\\Flagged")
    # A stale UIDVALIDITY gets a plain SELECT (the client must resync from scratch).
    lines = back.cmd(b"t", b"SELECT INBOX (QRESYNC (1 %d))" % modseq)
    assert not any(b"VANISHED" in line for line in lines)
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"
    back.close()


def test_qresync_requires_enable(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"s", b"SELECT INBOX (QRESYNC (1 1))")[-1].startswith(b"s BAD")
    raw.close()


def test_unsolicited_fetch_carries_modseq_and_uid_under_qresync(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("x"))
    a = session(postel, user, b"QRESYNC")
    b = session(postel, user)
    a.cmd(b"s", b"SELECT INBOX")
    b.cmd(b"s", b"SELECT INBOX")
    b.cmd(b"x", b"STORE 1 +FLAGS (\\Seen)")
    lines = a.cmd(b"n", b"NOOP")
    assert lines[0].startswith(b"* 1 FETCH (FLAGS (\\Seen \\Recent) UID 1 MODSEQ (")
    a.close()
    b.close()
