"""REPLACE and UID REPLACE (RFC 8508) over 993 and 143 (STARTTLS) with raw lines
(imapclient has no REPLACE); imapclient checks the result."""

from __future__ import annotations

import re

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


def _replace(raw: Raw, tag: bytes, command: bytes, body: bytes) -> list[bytes]:
    raw.send(tag + b" " + command + b" {%d+}\r\n" % len(body) + body + b"\r\n")
    return raw.until(tag)


def test_replace_a_draft_in_place(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert b" REPLACE" in raw.cmd(b"c", b"CAPABILITY")[0]
    first = message("draft 1", "first words")
    raw.send(b"a APPEND Drafts (\\Draft) {%d+}\r\n" % len(first) + first + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    raw.cmd(b"s", b"SELECT Drafts")
    lines = _replace(raw, b"r", b"REPLACE 1 Drafts (\\Draft)", message("draft 2", "more"))
    assert re.match(rb"\* OK \[APPENDUID \d+ 2\] ", lines[0]), lines
    assert b"* 1 EXPUNGE" in lines and b"* 1 EXISTS" in lines
    assert lines.index(b"* 1 EXPUNGE") > 0 and lines[-1] == b"r OK REPLACE completed"
    lines = raw.cmd(b"f", b"UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert len(lines) == 2 and b"UID 2" in lines[0] and b"draft 2" in lines[0]
    assert b"\\Draft" in lines[0]
    raw.close()


def test_uid_replace_into_another_mailbox(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("keep"))
    deliver(postel, user, message("old"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = _replace(raw, b"r", b"UID REPLACE 2 Archive", message("new"))
    assert re.match(rb"\* OK \[APPENDUID \d+ 1\] ", lines[0]), lines
    assert b"* 2 EXPUNGE" in lines and lines[-1].startswith(b"r OK")
    raw.close()
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        assert c.search() == [1]
        c.select_folder("Archive")
        got = c.fetch([1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])[1]
        assert b"new" in got[b"BODY[HEADER.FIELDS (SUBJECT)]"]


def test_replace_refusals_keep_the_old_message(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("only"))
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    body = message("new")
    assert _replace(raw, b"a", b"REPLACE 1 Nowhere", body)[-1] == (
        b"a NO [TRYCREATE] No such mailbox")
    assert _replace(raw, b"b", b"REPLACE 5 INBOX", body)[-1].startswith(b"b BAD")
    assert _replace(raw, b"d", b"UID REPLACE 9 INBOX", body)[-1].startswith(b"d NO")
    assert _replace(raw, b"e", b"REPLACE 1:2 INBOX", body)[-1].startswith(b"e BAD")
    assert _replace(raw, b"g", b"REPLACE 1 INBOX (\\Bogus)", body)[-1].startswith(b"g BAD")
    assert raw.cmd(b"h", b"REPLACE 1 INBOX")[-1].startswith(b"h BAD")
    raw.cmd(b"x", b"EXAMINE INBOX")
    assert _replace(raw, b"i", b"REPLACE 1 INBOX", body)[-1].startswith(b"i NO [READ-ONLY]")
    assert raw.cmd(b"j", b"UID SEARCH ALL")[0] == b"* SEARCH 1"
    raw.cmd(b"k", b"UNSELECT")
    assert _replace(raw, b"l", b"REPLACE 1 INBOX", body)[-1].startswith(b"l BAD")
    raw.close()
