"""WITHIN (RFC 5032): the OLDER and YOUNGER search keys, relative to the internal date, over
993 and 143 (STARTTLS) with raw lines, and with imapclient."""

from __future__ import annotations

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, imapclient, message, new_user

pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def test_older_and_younger_search_by_internal_date(postel: PostelServer) -> None:
    user = new_user(postel)
    client = imapclient(postel, user)
    assert b"WITHIN" in client.capabilities()
    # Internal dates a year ago, a day ago and now (APPEND's date-time, RFC 9051 6.3.12).
    client.append("INBOX", message("old"), msg_time=None)
    raw = Raw(postel)
    raw.login(user)
    for tag, when in ((b"a1", b'"01-Jan-2020 10:00:00 +0000"'), (b"a2", None)):
        data = message("dated")
        head = b"APPEND INBOX " + (when + b" " if when else b"") + b"{%d+}" % len(data)
        assert raw.cmd(tag, head + b"\r\n" + data)[-1].startswith(tag + b" OK")
    raw.cmd(b"s", b"SELECT INBOX")
    # 1 and 3 arrived now; 2 is dated 2020.
    assert raw.cmd(b"b", b"SEARCH YOUNGER 3600")[0] == b"* SEARCH 1 3"
    assert raw.cmd(b"c", b"SEARCH OLDER 3600")[0] == b"* SEARCH 2"
    assert raw.cmd(b"d", b"UID SEARCH OLDER 1 YOUNGER 999999999")[0] == b"* SEARCH 2"
    assert raw.cmd(b"e", b"SEARCH NOT YOUNGER 3600")[0] == b"* SEARCH 2"
    # RFC 5032 3: the interval is a non-zero number.
    assert raw.cmd(b"f", b"SEARCH OLDER 0")[-1].startswith(b"f BAD")
    assert raw.cmd(b"g", b"SEARCH YOUNGER x")[-1].startswith(b"g BAD")
    raw.close()
    client.select_folder("INBOX")
    assert client.search(["YOUNGER", 3600]) == [1, 3]
    client.logout()
