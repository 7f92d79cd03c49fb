"""UIDONLY (RFC 9586) without sockets: which commands name sequence numbers, and the
FETCH/EXPUNGE responses of a selected mailbox in UIDONLY mode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postel.imap.proto.commands import Command, parse_command
from postel.imap.proto.receiver import CommandBytes, Receiver
from postel.imap.selected import SelectedMailbox
from postel.imap.uidonly import uses_sequence_numbers
from postel.store.model import Flags, Mailbox, MailboxChanges, MessageMeta


def parsed(line: bytes) -> Command:
    receiver = Receiver()
    receiver.feed(line + b"\r\n")
    event = receiver.next_event()
    assert isinstance(event, CommandBytes)
    return parse_command(event)


@pytest.mark.parametrize(("line", "refused"), [
    (b"a FETCH 1 FLAGS", True), (b"a UID FETCH 1 FLAGS", False),
    (b"a STORE 1 +FLAGS (\\Seen)", True), (b"a UID STORE 1 FLAGS ()", False),
    (b"a SEARCH ALL", True), (b"a UID SEARCH ALL", False),
    (b"a UID SEARCH 1:4", True), (b"a UID SEARCH NOT (OR SEEN 2)", True),
    (b"a UID SEARCH UID 1:4 $", False), (b"a UID SORT (DATE) UTF-8 1", True),
    (b"a COPY 1 x", True), (b"a UID MOVE 1 x", False), (b"a EXPUNGE", False),
    (b"a UID EXPUNGE 1", False), (b"a UID THREAD REFERENCES UTF-8 ALL", False),
])
def test_commands_that_name_sequence_numbers(line: bytes, refused: bool) -> None:
    cmd = parsed(line)
    assert uses_sequence_numbers(cmd) is refused


def _view() -> SelectedMailbox:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    messages = [MessageMeta(uid, 1, uid, 1, Flags(), when, 10, "ab") for uid in (4, 7, 9)]
    view = SelectedMailbox(1, "INBOX", readonly=False, uidvalidity=1, uidnext=10, modseq=1,
                           messages=messages, recent=None)
    view.uidonly = True
    return view


def test_uidonly_view_writes_uidfetch_and_vanished() -> None:
    view = _view()
    assert view.fetch_head(7) == b"7 UIDFETCH" and view.fetch_head(5) is None
    when = datetime(2024, 1, 1, tzinfo=UTC)
    box = Mailbox(1, 1, "INBOX", None, 1, 10, 3, 1)
    changes = MailboxChanges(box, [MessageMeta(9, 1, 9, 3, Flags(seen=True), when, 10, "ab")],
                             [4])
    out = view.apply(changes, allow_expunge=True, recent=None, condstore=False,
                     qresync=False)
    assert out == [b"* VANISHED 4\r\n", b"* 9 UIDFETCH (FLAGS (\\Seen))\r\n"]
