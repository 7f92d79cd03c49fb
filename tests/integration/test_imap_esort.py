"""ESORT (RFC 5267 3): SORT with RETURN options answers in ESEARCH, in sort order.

Raw lines speak the extended SORT (no client library sends RETURN on SORT); imapclient
delivers the mail and checks that plain SORT is unchanged.
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

DATES = ["Wed, 03 Jan 2024 10:00:00 +0000", "Mon, 01 Jan 2024 10:00:00 +0000",
         "Tue, 02 Jan 2024 10:00:00 +0000", "Thu, 04 Jan 2024 10:00:00 +0000"]


def _mailbox(postel: PostelServer) -> str:
    """Four messages; by DATE the order is 2, 3, 1, 4."""
    user = new_user(postel)
    for i, date in enumerate(DATES, start=1):
        deliver(postel, user, message(f"m{i}", Date=date))
    return user


def test_esort_is_advertised_after_login(postel: PostelServer) -> None:
    raw = Raw(postel)
    assert b"ESORT" not in raw.greeting
    raw.login(_mailbox(postel))
    caps = raw.cmd(b"c", b"CAPABILITY")[0].split()
    assert {b"ESORT", b"CONTEXT=SEARCH", b"CONTEXT=SORT", b"SORT"} <= set(caps)
    raw.close()


def test_sort_return_options_follow_the_sort_order(postel: PostelServer) -> None:
    raw = Raw(postel)
    raw.login(_mailbox(postel))
    raw.cmd(b"s", b"SELECT INBOX")
    # RFC 5267 3.1: MIN/MAX are the first and last in sort order, ALL keeps that order.
    lines = raw.cmd(b"a", b"SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "a") MIN 2 MAX 4 ALL 2:3,1,4 COUNT 4'
    assert lines[-1] == b"a OK SORT completed"
    # RFC 5267 3.3: RETURN () means ALL; ranges only where the order ascends (3.2).
    lines = raw.cmd(b"b", b"UID SORT RETURN () (ARRIVAL) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "b") UID ALL 1:4'
    lines = raw.cmd(b"c", b"UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "c") UID ALL 4,3,2,1'
    lines = raw.cmd(b"d", b"SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing")
    assert lines[0] == b'* ESEARCH (TAG "d") COUNT 0'
    lines = raw.cmd(b"e", b"SORT RETURN (MIN) (DATE) UTF-8 SUBJECT nothing")
    assert lines[0] == b'* ESEARCH (TAG "e")'
    raw.close()


def test_plain_sort_is_unchanged(postel: PostelServer) -> None:
    user = _mailbox(postel)
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        assert c.sort(["DATE"]) == [2, 3, 1, 4]
        assert c.sort(["REVERSE", "DATE"]) == [4, 1, 3, 2]


def test_bad_sort_return_options_get_bad(postel: PostelServer) -> None:
    raw = Raw(postel)
    raw.login(_mailbox(postel))
    raw.cmd(b"s", b"SELECT INBOX")
    for text in (b"SORT RETURN (SAVE) (DATE) UTF-8 ALL",  # SAVE is SEARCH's (RFC 5182)
                 b"SORT RETURN (BOGUS) (DATE) UTF-8 ALL",
                 b"SORT RETURN (ALL ALL) (DATE) UTF-8 ALL",
                 b"SORT RETURN MIN (DATE) UTF-8 ALL",
                 b"SORT RETURN (MIN (DATE) UTF-8 ALL"):
        assert raw.cmd(b"x", text)[-1].startswith(b"x BAD"), text
    assert raw.cmd(b"n", b"NOOP")[-1] == b"n OK NOOP completed"
    raw.close()
