"""STATUS=SIZE (RFC 8438): STATUS (SIZE) is the sum of the messages' RFC822.SIZE, over 993
and 143 (STARTTLS) with raw lines, in STATUS and in LIST-STATUS (RFC 5819)."""

from __future__ import annotations

import re

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, deliver, message, new_user

pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def test_status_size_is_the_sum_of_message_sizes(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert b" STATUS=SIZE" in raw.cmd(b"c", b"CAPABILITY")[0]
    assert raw.cmd(b"a", b"STATUS INBOX (SIZE MESSAGES)")[0] == (
        b"* STATUS INBOX (SIZE 0 MESSAGES 0)")
    deliver(postel, user, message("one", "x" * 500))
    deliver(postel, user, message("two", "y" * 1500))
    raw.cmd(b"s", b"EXAMINE INBOX")
    sizes = [int(n) for n in re.findall(
        rb"RFC822\.SIZE (\d+)", b"\n".join(raw.cmd(b"f", b"FETCH 1:* (RFC822.SIZE)")))]
    assert len(sizes) == 2
    line = raw.cmd(b"b", b"STATUS INBOX (SIZE)")[0]
    assert line == b"* STATUS INBOX (SIZE %d)" % sum(sizes)
    lines = raw.cmd(b"l", b'LIST "" "INBOX" RETURN (STATUS (SIZE))')
    assert b"* STATUS INBOX (SIZE %d)" % sum(sizes) in lines
    raw.close()


def test_unknown_status_item_gets_bad(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"a", b"STATUS INBOX (SIZES)")[-1].startswith(b"a BAD")
    assert raw.cmd(b"b", b"STATUS INBOX (SIZE")[-1].startswith(b"b BAD")
    raw.close()
