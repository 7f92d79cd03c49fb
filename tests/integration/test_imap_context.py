"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 4): RETURN (UPDATE) results kept live with
ADDTO and REMOVEFROM as another session changes the mailbox; CANCELUPDATE; NOUPDATE.

The watching session speaks raw lines (no client library sends RETURN (UPDATE)); the other
session is imapclient (APPEND, STORE, EXPUNGE) or an SMTP delivery.
"""

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

# Every test here runs over 993 (implicit TLS) and 143 (STARTTLS).
pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def _watcher(postel: PostelServer, user: str) -> Raw:
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    return raw


def _updates(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ESEARCH")]


def test_uid_search_update_sees_append_flag_change_and_expunge(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(3):
        deliver(postel, user, message("match" if i != 1 else "other"))
    raw = _watcher(postel, user)
    lines = raw.cmd(b"B01", b"UID SEARCH RETURN (UPDATE) SUBJECT match UNDELETED")
    assert lines[0] == b'* ESEARCH (TAG "B01") UID ALL 1,3'
    with imapclient(postel, user) as other:
        other.select_folder("INBOX")
        other.append("INBOX", message("match again"))
        other.append("INBOX", message("not this one"))
        lines = raw.cmd(b"n1", b"NOOP")
        # RFC 5267 4.3.3: the ADDTO comes after the EXISTS.
        assert lines.index(b"* 5 EXISTS") < lines.index(b'* ESEARCH (TAG "B01") UID ADDTO (0 4)')
        # A message that stops matching (\Deleted now) leaves the result.
        other.add_flags([3], [b"\\Deleted"])
        lines = raw.cmd(b"n2", b"NOOP")
        assert _updates(lines) == [b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 3)']
        other.remove_flags([3], [b"\\Deleted"])
        assert _updates(raw.cmd(b"n3", b"NOOP")) == [b'* ESEARCH (TAG "B01") UID ADDTO (0 3)']
        # Expunged: REMOVEFROM before the EXPUNGE (RFC 5267 4.3.4).
        other.add_flags([1], [b"\\Deleted"])
        other.expunge()
        lines = raw.cmd(b"n4", b"NOOP")
        assert lines[:2] == [b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 1)', b"* 1 EXPUNGE"]
    # The result is exactly what the same search says now.
    assert raw.cmd(b"c", b"UID SEARCH SUBJECT match UNDELETED")[0] == b"* SEARCH 3 4"
    raw.close()


def test_sequence_number_updates_use_the_numbers_of_the_moment(postel: PostelServer) -> None:
    user = new_user(postel)
    for subject in ("x", "keep", "x", "keep"):
        deliver(postel, user, message(subject))
    raw = _watcher(postel, user)
    assert raw.cmd(b"A1", b"SEARCH RETURN (UPDATE COUNT) SUBJECT keep")[0] == (
        b'* ESEARCH (TAG "A1") COUNT 2')
    with imapclient(postel, user) as other:
        other.select_folder("INBOX")
        other.add_flags([1, 2], [b"\\Deleted"])
        other.expunge()
        other.append("INBOX", message("keep"))
        lines = raw.cmd(b"n", b"NOOP")
    # Message 2 goes while it is still number 2; the new one is number 3 after EXISTS.
    assert lines[:3] == [b'* ESEARCH (TAG "A1") REMOVEFROM (0 2)', b"* 2 EXPUNGE",
                         b"* 1 EXPUNGE"]
    assert lines.index(b"* 3 EXISTS") < lines.index(b'* ESEARCH (TAG "A1") ADDTO (0 3)')
    raw.close()


def test_sort_update_keeps_the_sort_order(postel: PostelServer) -> None:
    user = new_user(postel)
    for subject in ("b", "d", "f"):
        deliver(postel, user, message(subject))
    raw = _watcher(postel, user)
    lines = raw.cmd(b"S1", b"UID SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 UNSEEN")
    assert lines[0] == b'* ESEARCH (TAG "S1") UID ALL 3,2,1'
    with imapclient(postel, user) as other:
        other.select_folder("INBOX")
        other.append("INBOX", message("e"))  # UID 4, between d and f in reverse order
        other.append("INBOX", message("a"))  # UID 5, last
        lines = raw.cmd(b"n1", b"NOOP")
        assert _updates(lines) == [b'* ESEARCH (TAG "S1") UID ADDTO (2 4 5 5)']
        other.add_flags([2, 1], [b"\\Seen"])
        lines = raw.cmd(b"n2", b"NOOP")
        # Result was 3,4,2,1,5: "2,1" are at positions 3 and 4, one run.
        assert _updates(lines) == [b'* ESEARCH (TAG "S1") UID REMOVEFROM (3 2,1)']
    raw.close()


def test_update_arrives_during_idle(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("watched"))
    raw = _watcher(postel, user)
    assert raw.cmd(b"W1", b"UID SEARCH RETURN (UPDATE) SUBJECT watched")[0] == (
        b'* ESEARCH (TAG "W1") UID ALL 1')
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    deliver(postel, user, message("watched too"))
    got = [raw.line()]
    while not got[-1].startswith(b"* ESEARCH"):
        got.append(raw.line())
    assert got == [b"* 2 EXISTS", b"* 2 RECENT", b'* ESEARCH (TAG "W1") UID ADDTO (0 2)']
    raw.send(b"DONE\r\n")
    assert raw.until(b"i")[-1] == b"i OK IDLE terminated"
    raw.close()


def test_cancelupdate_and_tag_reuse(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    raw = _watcher(postel, user)
    assert raw.cmd(b"U1", b"UID SEARCH RETURN (UPDATE) ALL")[0] == b'* ESEARCH (TAG "U1") UID ALL 1'
    assert raw.cmd(b"U2", b"SEARCH RETURN (UPDATE MIN) ALL")[0] == b'* ESEARCH (TAG "U2") MIN 1'
    # RFC 5267 4.3: UPDATE with the tag of a live context is BAD.
    assert raw.cmd(b"U1", b"SEARCH RETURN (UPDATE) ALL") == [b"U1 BAD Tag reuse: a search "
                                                              b"with this tag is still being "
                                                              b"updated"]
    assert raw.cmd(b"c", b'CANCELUPDATE "U1"')[-1] == b"c OK CANCELUPDATE completed"
    assert raw.cmd(b"c2", b'CANCELUPDATE "U1"')[-1].startswith(b"c2 BAD")
    for bad in (b"CANCELUPDATE", b"CANCELUPDATE U2", b'CANCELUPDATE "U2" x'):
        assert raw.cmd(b"x", bad)[-1].startswith(b"x BAD"), bad
    deliver(postel, user, message("two"))
    # Only U2 is still updated (RFC 5267 4.3: no interaction with MIN, all changes).
    assert _updates(raw.cmd(b"n", b"NOOP")) == [b'* ESEARCH (TAG "U2") ADDTO (0 2)']
    # Updates end with the selection.
    raw.cmd(b"s2", b"SELECT INBOX")
    deliver(postel, user, message("three"))
    assert _updates(raw.cmd(b"n2", b"NOOP")) == []
    assert raw.cmd(b"c3", b'CANCELUPDATE "U2"')[-1].startswith(b"c3 BAD")
    raw.close()


def test_too_many_contexts_get_noupdate(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    raw = _watcher(postel, user)
    for i in range(16):
        assert raw.cmd(b"T%d" % i, b"SEARCH RETURN (UPDATE) ALL")[-1].endswith(b"completed")
    lines = raw.cmd(b"T99", b"SEARCH RETURN (UPDATE COUNT) ALL")
    # RFC 5267 4.3.1: the results still come; only the updates are refused.
    assert lines == [b'* ESEARCH (TAG "T99") COUNT 1',
                     b'* NO [NOUPDATE "T99"] Too many searches are being updated',
                     b"T99 OK SEARCH completed"]
    raw.close()


def test_positional_search_is_reevaluated(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(3):
        deliver(postel, user, message(f"m{i}"))
    raw = _watcher(postel, user)
    # "*" is the last message: it moves when mail arrives.
    lines = raw.cmd(b"P1", b"UID SEARCH RETURN (UPDATE) UID *")
    assert lines[0] == b'* ESEARCH (TAG "P1") UID ALL 3'
    deliver(postel, user, message("new"))
    lines = raw.cmd(b"n", b"NOOP")
    assert _updates(lines) == [b'* ESEARCH (TAG "P1") UID REMOVEFROM (0 3)',
                               b'* ESEARCH (TAG "P1") UID ADDTO (0 4)']
    raw.close()


def test_own_store_and_expunge_update_the_context(postel: PostelServer) -> None:
    user = new_user(postel)
    for _ in range(3):
        deliver(postel, user, message("mine"))
    raw = _watcher(postel, user)
    assert raw.cmd(b"O1", b"SEARCH RETURN (UPDATE) UNSEEN")[0] == b'* ESEARCH (TAG "O1") ALL 1:3'
    lines = raw.cmd(b"st", b"STORE 2 +FLAGS (\\Seen \\Deleted)")
    assert lines[:2] == [b"* 2 FETCH (FLAGS (\\Seen \\Deleted \\Recent))",
                         b'* ESEARCH (TAG "O1") REMOVEFROM (0 2)']
    raw.cmd(b"st2", b"STORE 3 +FLAGS.SILENT (\\Deleted)")
    lines = raw.cmd(b"ex", b"EXPUNGE")
    # 3 leaves the result while it is still number 3; 2 was out of it already.
    assert lines[:3] == [b'* ESEARCH (TAG "O1") REMOVEFROM (0 3)', b"* 3 EXPUNGE",
                         b"* 2 EXPUNGE"]
    assert raw.cmd(b"c", b"SEARCH UNSEEN")[0] == b"* SEARCH 1"
    raw.close()
