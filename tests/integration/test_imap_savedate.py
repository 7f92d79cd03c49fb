"""SAVEDATE (RFC 8514): FETCH SAVEDATE and the SAVEDBEFORE / SAVEDON / SAVEDSINCE /
SAVEDATESUPPORTED search keys, over 993 and 143 (STARTTLS) with raw lines, and with
imapclient (which passes SAVEDATE through as an unknown FETCH item)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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


def _day(offset: int = 0) -> bytes:
    return (datetime.now(UTC) + timedelta(days=offset)).strftime("%d-%b-%Y").encode()


def test_savedate_is_advertised_fetched_and_searched(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    deliver(postel, user, message("two"))
    raw = Raw(postel)
    raw.login(user)
    assert b" SAVEDATE" in raw.cmd(b"c", b"CAPABILITY")[0]
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"f", b"FETCH 1:2 (SAVEDATE)")
    assert len(lines) == 3 and lines[-1].startswith(b"f OK")
    for line in lines[:2]:
        m = re.match(rb'\* \d FETCH \(SAVEDATE "([^"]+)"\)', line)
        assert m, line
        saved = datetime.strptime(m.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
        assert abs((saved - datetime.now(UTC)).total_seconds()) < 3600
    assert raw.cmd(b"a", b"SEARCH SAVEDATESUPPORTED")[0] == b"* SEARCH 1 2"
    assert raw.cmd(b"b", b"SEARCH SAVEDON " + _day())[0] == b"* SEARCH 1 2"
    assert raw.cmd(b"d", b"SEARCH SAVEDSINCE " + _day())[0] == b"* SEARCH 1 2"
    assert raw.cmd(b"e", b"SEARCH SAVEDBEFORE " + _day())[0] == b"* SEARCH"
    assert raw.cmd(b"g", b"UID SEARCH SAVEDBEFORE " + _day(1))[0] == b"* SEARCH 1 2"
    assert raw.cmd(b"h", b"SEARCH NOT SAVEDSINCE " + _day(1))[0] == b"* SEARCH 1 2"
    raw.close()


def test_copy_gets_its_own_savedate(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("old"))
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        c.copy([1], "Archive")
        c.select_folder("Archive")
        got = c.fetch([1], ["SAVEDATE", "INTERNALDATE"])
        saved = got[1][b"SAVEDATE"]
        assert isinstance(saved, bytes) and re.match(rb"\d{1,2}-\w{3}-\d{4} ", saved.strip())
        assert c.search(["SAVEDATESUPPORTED"]) == [1]


def test_bad_savedate_syntax_gets_bad(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    assert raw.cmd(b"a", b"SEARCH SAVEDON 32-Foo-2024")[-1].startswith(b"a BAD")
    assert raw.cmd(b"b", b"SEARCH SAVEDSINCE")[-1].startswith(b"b BAD")
    assert raw.cmd(b"c", b"SEARCH SAVEDATESUPPORTED 1-Jan-2024")[-1].startswith(b"c BAD")
    assert raw.cmd(b"d", b"NOOP")[-1].startswith(b"d OK")
    raw.close()
