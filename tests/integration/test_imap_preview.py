"""PREVIEW (RFC 8970): FETCH PREVIEW and PREVIEW (LAZY) over 993 and 143 (STARTTLS) with
raw lines, and with imapclient (which passes PREVIEW through as an unknown item)."""

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

HTML = (b"From: a@remote.test\r\nTo: b@example.test\r\nSubject: html\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>x{}</style></head><body><p>Gr\xc3\xbc\xc3\x9fe &amp; "
        b"more</p></body></html>\r\n")


def test_preview_plain_and_lazy(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one", "Hello there,\r\n> old quote\r\nsee you soon"))
    raw = Raw(postel)
    raw.login(user)
    assert b" PREVIEW" in raw.cmd(b"c", b"CAPABILITY")[0]
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"a", b"FETCH 1 (PREVIEW)")
    assert lines[0] == b'* 1 FETCH (PREVIEW "Hello there, see you soon")'
    lines = raw.cmd(b"b", b"UID FETCH 1 (PREVIEW (LAZY) FLAGS)")
    assert lines[0] == b'* 1 FETCH (UID 1 PREVIEW "Hello there, see you soon" FLAGS (\\Recent))'
    # PREVIEW does not set \Seen (it is not a body section).
    assert raw.cmd(b"d", b"FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS (\\Recent))"
    raw.close()


def test_preview_of_html_in_utf8(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, HTML)
    with imapclient(postel, user) as c:
        c.select_folder("INBOX", readonly=True)
        got = c.fetch([1], ["PREVIEW"])[1][b"PREVIEW"]
        assert got.decode("utf-8") == "Grüße & more"


def test_bad_preview_syntax_gets_bad(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("x"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    assert raw.cmd(b"a", b"FETCH 1 (PREVIEW (FUZZY))")[-1].startswith(b"a BAD")
    assert raw.cmd(b"b", b"FETCH 1 PREVIEW (LAZY")[-1].startswith(b"b BAD")
    assert raw.cmd(b"d", b"FETCH 1 PREVIEW[]")[-1].startswith(b"d BAD")
    assert raw.cmd(b"e", b"NOOP")[-1].startswith(b"e OK")
    raw.close()
