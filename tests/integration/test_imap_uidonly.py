"""UIDONLY (RFC 9586) over 993 and 143 (STARTTLS) with raw lines, since UIDFETCH
responses are new to every client library; imapclient exercises ENABLE, UID SEARCH and
UID MOVE, which look the same with UIDONLY."""

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


def _uidonly_session(postel: PostelServer, user: str) -> Raw:
    raw = Raw(postel)
    raw.login(user)
    assert b" UIDONLY" in raw.cmd(b"c", b"CAPABILITY")[0]
    assert raw.cmd(b"e", b"ENABLE UIDONLY")[0] == b"* ENABLED UIDONLY"
    return raw


def test_sequence_numbers_are_refused(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    raw = _uidonly_session(postel, user)
    lines = raw.cmd(b"s", b"SELECT INBOX")
    assert not any(b"[UNSEEN" in line for line in lines)
    for tag, command in [(b"a", b"FETCH 1 FLAGS"), (b"b", b"STORE 1 +FLAGS (\\Seen)"),
                         (b"d", b"SEARCH ALL"), (b"f", b"COPY 1 Archive"),
                         (b"g", b"MOVE 1 Archive"), (b"h", b"UID SEARCH 1:*"),
                         (b"i", b"UID SEARCH OR UID 1 NOT 1"),
                         (b"j", b"SORT (DATE) UTF-8 ALL")]:
        lines = raw.cmd(tag, command)
        assert lines == [tag + b" BAD [UIDREQUIRED] " + lines[0].split(b"] ", 1)[1]], lines
    assert raw.cmd(b"k", b"UID SEARCH ALL")[0] == b"* SEARCH 1"
    raw.close()


def test_uidfetch_and_vanished_responses(postel: PostelServer) -> None:
    user = new_user(postel)
    for subject in ("one", "two", "three"):
        deliver(postel, user, message(subject))
    raw = _uidonly_session(postel, user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", b"UID FETCH 2:* (FLAGS)")
    assert lines[:-1] == [b"* 2 UIDFETCH (FLAGS (\\Recent))",
                          b"* 3 UIDFETCH (FLAGS (\\Recent))"]
    lines = raw.cmd(b"b", b"UID STORE 3 +FLAGS (\\Deleted)")
    assert lines[0] == b"* 3 UIDFETCH (FLAGS (\\Deleted \\Recent))"
    lines = raw.cmd(b"d", b"UID FETCH 1 (UID FLAGS)")
    assert lines[0] == b"* 1 UIDFETCH (UID 1 FLAGS (\\Recent))"
    # RFC 9586 3.4: VANISHED, never EXPUNGE.
    assert raw.cmd(b"f", b"EXPUNGE")[:-1] == [b"* VANISHED 3"]
    assert raw.cmd(b"g", b"UID MOVE 1 Archive")[1:-1] == [b"* VANISHED 1"]
    # Another session's flag change arrives as UIDFETCH too.
    with imapclient(postel, user) as other:
        other.select_folder("INBOX")
        other.add_flags([2], [b"\\Flagged"])
    lines = raw.cmd(b"h", b"NOOP")
    assert b"* 2 UIDFETCH (FLAGS (\\Flagged \\Recent))" in lines
    raw.close()


def test_imapclient_with_uidonly(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    deliver(postel, user, message("two"))
    with imapclient(postel, user) as c:
        assert c.enable("UIDONLY") == [b"UIDONLY"]
        c.select_folder("INBOX")
        assert c.search(["SUBJECT", "two"]) == [2]
        c.move([2], "Archive")
        assert c.search() == [1]


def test_enable_uidonly_syntax(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    assert raw.cmd(b"a", b"ENABLE UIDONLY")[-1].startswith(b"a BAD")  # before login
    raw.login(user)
    assert raw.cmd(b"b", b"ENABLE")[-1].startswith(b"b BAD")
    assert raw.cmd(b"d", b"ENABLE UIDONLY UIDONLY")[0] == b"* ENABLED UIDONLY"
    assert raw.cmd(b"f", b"ENABLE UIDONLY")[0] == b"* ENABLED"
    raw.close()
