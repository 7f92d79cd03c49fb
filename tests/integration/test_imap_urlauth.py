"""URLAUTH (RFC 4467): GENURLAUTH, URLFETCH, RESETKEY over 993 and 143 (STARTTLS) with raw
lines (neither imaplib nor imapclient speaks URLAUTH)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, deliver, message, new_user

pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def rump(user: str, access: str, tail: str = "/;UID=1") -> bytes:
    return f"imap://{quote(user, safe='')}@localhost/INBOX{tail};URLAUTH={access}".encode()


def genurlauth(raw: Raw, url: bytes) -> bytes:
    lines = raw.cmd(b"g", b'GENURLAUTH "' + url + b'" INTERNAL')
    assert lines[-1].startswith(b"g OK"), lines
    found = re.match(rb'\* GENURLAUTH "([^"]+)"$', lines[0])
    assert found, lines
    return found.group(1)


def urlfetch(raw: Raw, url: bytes) -> bytes:
    lines = raw.cmd(b"f", b'URLFETCH "' + url + b'"')
    assert lines[-1].startswith(b"f OK"), lines
    assert lines[0].startswith(b'* URLFETCH "' + url + b'" '), lines
    return lines[0][len(b'* URLFETCH "' + url + b'" '):]


def test_generate_fetch_and_reset(postel: PostelServer) -> None:
    user = new_user(postel)
    original = message("secret", "the body")
    deliver(postel, user, original)
    raw = Raw(postel)
    raw.login(user)
    assert b" URLAUTH" in raw.cmd(b"c", b"CAPABILITY")[0]
    url = genurlauth(raw, rump(user, f"user+{quote(user, safe='')}"))
    assert re.search(rb";URLAUTH=user\+[^:]+:internal:[0-9a-f]{64}$", url), url
    fetched = urlfetch(raw, url)
    assert fetched.startswith(b"{") and fetched.endswith(original)
    # Sections, and a URL signed once works again (the key persists).
    part = genurlauth(raw, rump(user, "authuser", "/;UID=1/;SECTION=TEXT"))
    assert urlfetch(raw, part) == b"{10}\r\nthe body\r\n"
    assert urlfetch(raw, url).endswith(original)
    # A wrong token, or one the user may not use, is NIL (RFC 4467 6).
    assert urlfetch(raw, url[:-4] + b"0000") == b"NIL"
    submit = genurlauth(raw, rump(user, f"submit+{quote(user, safe='')}"))
    assert urlfetch(raw, submit) == b"NIL"  # only the submission server may use it
    # RESETKEY: the old URL stops working; a new one works.
    assert raw.cmd(b"r", b"RESETKEY INBOX INTERNAL")[-1].startswith(b"r OK [URLMECH INTERNAL]")
    assert urlfetch(raw, url) == b"NIL"
    again = genurlauth(raw, rump(user, f"user+{quote(user, safe='')}"))
    assert again != url and urlfetch(raw, again).endswith(original)
    assert raw.cmd(b"r", b"RESETKEY")[-1].startswith(b"r OK")
    assert urlfetch(raw, again) == b"NIL"
    raw.close()


def test_another_users_url(postel: PostelServer) -> None:
    alice, bob = new_user(postel), new_user(postel)
    deliver(postel, alice, message("for bob"))
    raw = Raw(postel)
    raw.login(alice)
    for_bob = genurlauth(raw, rump(alice, f"user+{quote(bob, safe='')}"))
    anyone = genurlauth(raw, rump(alice, "authuser"))
    expired = genurlauth(raw, rump(alice, "anonymous", "/;UID=1;EXPIRE=2001-01-01T00:00:00Z"))
    assert urlfetch(raw, for_bob) == b"NIL"
    raw.close()
    raw = Raw(postel)
    raw.login(bob)
    assert b"for bob" in urlfetch(raw, for_bob)
    assert b"for bob" in urlfetch(raw, anyone)
    assert urlfetch(raw, expired) == b"NIL"
    # Bob cannot sign a URL of Alice's mailbox.
    line = raw.cmd(b"g", b'GENURLAUTH "' + rump(alice, "authuser") + b'" INTERNAL')[-1]
    assert line.startswith(b"g NO [BADURL "), line
    raw.close()


def test_refusals(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    raw = Raw(postel)
    raw.login(user)
    good = rump(user, "authuser")
    for url in (rump(user, "authuser", "/;UID=9"), good + b":internal:" + b"0" * 64,
                b"/INBOX/;UID=1;URLAUTH=authuser", b"imap://x@localhost/INBOX/;UID=1"):
        line = raw.cmd(b"g", b'GENURLAUTH "' + url + b'" INTERNAL')[-1]
        assert line.startswith(b"g NO [BADURL"), (url, line)
    assert raw.cmd(b"g", b'GENURLAUTH "' + good + b'" HMAC')[-1].startswith(b"g NO")
    assert raw.cmd(b"g", b"GENURLAUTH")[-1].startswith(b"g BAD")
    assert raw.cmd(b"g", b'GENURLAUTH "' + good + b'"')[-1].startswith(b"g BAD")
    assert raw.cmd(b"f", b"URLFETCH")[-1].startswith(b"f BAD")
    assert raw.cmd(b"r", b"RESETKEY Nowhere")[-1].startswith(b"r NO")
    assert raw.cmd(b"r", b"RESETKEY INBOX MD5")[-1].startswith(b"r NO")
    assert urlfetch(raw, b"not a url") == b"NIL"
    raw.close()
    raw = Raw(postel)  # not logged in
    assert raw.cmd(b"f", b'URLFETCH "' + good + b'"')[-1].startswith(b"f BAD")
    raw.close()
