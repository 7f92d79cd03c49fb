"""OBJECTID (RFC 8474) without sockets: the ids' form, and the SEARCH key grammar."""

from __future__ import annotations

import re

import pytest

from postel.imap.objectid import email_id, mailbox_id, thread_id
from postel.imap.proto.cursor import Cursor, ParseError
from postel.imap.proto.searchkeys import SearchKey, parse_search_keys
from postel.store.model import Mailbox

OBJECTID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,254}\Z")  # RFC 8474 6, letter first
SHA = "ab" * 32


def test_ids_are_objectids_and_follow_the_thread_root() -> None:
    box = Mailbox(12, 1, "Work", None, 1700000000, 1, 1, 1)
    assert mailbox_id(box) == "F12-1700000000"
    root = {"blob_sha256": SHA, "message_id": "<a@x>", "in_reply_to": None, "references": ""}
    reply = {"blob_sha256": "cd" * 32, "message_id": "<b@x>", "in_reply_to": "<a@x>",
             "references": "<a@x>"}
    late = {"blob_sha256": "ef" * 32, "message_id": "<c@x>", "in_reply_to": "<b@x>",
            "references": "<A@x> <b@x>"}
    alone = {"blob_sha256": "01" * 32, "message_id": None, "in_reply_to": None,
             "references": ""}
    for value in (mailbox_id(box), email_id(root), thread_id(root), thread_id(alone)):
        assert OBJECTID.match(value), value
    assert thread_id(root) == thread_id(reply) == thread_id(late) != thread_id(alone)
    assert email_id(root) != email_id(reply)


def keys(text: bytes) -> SearchKey:
    return parse_search_keys(Cursor([text]))


def test_search_keys_parse() -> None:
    assert keys(b"EMAILID Mab12") == SearchKey("EMAILID", ("Mab12",))
    assert keys(b"NOT THREADID T-1_x") == SearchKey("NOT", (SearchKey("THREADID", ("T-1_x",)),))


@pytest.mark.parametrize("text", [b"EMAILID", b'EMAILID "M1"', b"THREADID M.1",
                                  b"EMAILID " + b"a" * 256])
def test_bad_objectid_keys(text: bytes) -> None:
    with pytest.raises(ParseError):
        keys(text)
