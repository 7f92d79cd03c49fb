"""PARTIAL results for SEARCH and SORT (RFC 5267 4.4, with RFC 9394's ranges from the end).

Raw lines only: no client library sends the PARTIAL return option.
"""

from __future__ import annotations

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, deliver, message, new_user

# Every test here runs over 993 (implicit TLS) and 143 (STARTTLS).
pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def _session(postel: PostelServer, subjects: list[str]) -> Raw:
    user = new_user(postel)
    for subject in subjects:
        deliver(postel, user, message(subject))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    return raw


def test_partial_search_pages(postel: PostelServer) -> None:
    raw = _session(postel, ["a", "x", "a", "a", "x", "a"])  # "a" is 1, 3, 4, 6
    lines = raw.cmd(b"p1", b"UID SEARCH RETURN (PARTIAL 1:2) SUBJECT a")
    assert lines[0] == b'* ESEARCH (TAG "p1") UID PARTIAL (1:2 1,3)'
    lines = raw.cmd(b"p2", b"UID SEARCH RETURN (PARTIAL 4:3 COUNT) SUBJECT a")
    assert lines[0] == b'* ESEARCH (TAG "p2") UID COUNT 4 PARTIAL (3:4 4,6)'
    # Past the end: what there is, or NIL (RFC 5267 4.4).
    lines = raw.cmd(b"p3", b"SEARCH RETURN (PARTIAL 4:10) SUBJECT a")
    assert lines[0] == b'* ESEARCH (TAG "p3") PARTIAL (4:10 6)'
    lines = raw.cmd(b"p4", b"SEARCH RETURN (PARTIAL 5:10) SUBJECT a")
    assert lines[0] == b'* ESEARCH (TAG "p4") PARTIAL (5:10 NIL)'
    # RFC 9394 3.1: -1 is the last result.
    lines = raw.cmd(b"p5", b"UID SEARCH RETURN (PARTIAL -1:-3) SUBJECT a")
    assert lines[0] == b'* ESEARCH (TAG "p5") UID PARTIAL (-1:-3 3:4,6)'
    lines = raw.cmd(b"p6", b"UID SEARCH RETURN (PARTIAL -5:-9) SUBJECT a")
    assert lines[0] == b'* ESEARCH (TAG "p6") UID PARTIAL (-5:-9 NIL)'
    raw.close()


def test_partial_sort_pages_in_sort_order(postel: PostelServer) -> None:
    raw = _session(postel, ["d", "b", "c", "a"])
    lines = raw.cmd(b"q1", b"UID SORT RETURN (PARTIAL 2:3) (SUBJECT) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "q1") UID PARTIAL (2:3 2:3)'
    lines = raw.cmd(b"q2", b"SORT RETURN (PARTIAL -1:-2 MIN) (SUBJECT) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "q2") MIN 4 PARTIAL (-1:-2 3,1)'
    raw.close()


def test_bad_partial_ranges_get_bad(postel: PostelServer) -> None:
    raw = _session(postel, ["a"])
    for opts in (b"PARTIAL", b"PARTIAL 0:5", b"PARTIAL 1:*", b"PARTIAL -1:5", b"PARTIAL 5",
                 b"PARTIAL 1:5 ALL", b"ALL PARTIAL 1:5", b"PARTIAL 1:5 PARTIAL 6:9",
                 b'PARTIAL "1:5"', b"PARTIAL 1:99999999999"):
        line = b"SEARCH RETURN (" + opts + b") ALL"
        assert raw.cmd(b"x", line)[-1].startswith(b"x BAD"), line
        line = b"SORT RETURN (" + opts + b") (DATE) UTF-8 ALL"
        assert raw.cmd(b"y", line)[-1].startswith(b"y BAD"), line
    assert raw.cmd(b"n", b"NOOP")[-1] == b"n OK NOOP completed"
    raw.close()
