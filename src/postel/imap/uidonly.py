"""UIDONLY (RFC 9586): once enabled, no message sequence number crosses the wire.

Commands that take sequence numbers (and SEARCH keys that name them) are refused with
BAD [UIDREQUIRED] (RFC 9586 3); FETCH responses become UIDFETCH responses numbered by UID
(RFC 9586 3.3, ``SelectedMailbox.fetch_head``); expunges are reported as VANISHED (RFC
9586 3.4, ``SelectedMailbox.announce_expunged``).
"""

from __future__ import annotations

from postel.imap.proto.commands import Command, Search, Sort, Thread
from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.sequence import SequenceSet

# RFC 9586 3: the commands whose arguments are message sequence numbers.
SEQUENCE_COMMANDS = frozenset({
    "FETCH", "STORE", "SEARCH", "SORT", "THREAD", "COPY", "MOVE", "REPLACE",
})


def _names_sequence_numbers(key: SearchKey) -> bool:
    # A bare sequence set is a sequence-number key; "$" (RFC 5182) is the saved result,
    # kept as UIDs, so it stays allowed.
    if key.op == "SEQ":
        seq = key.args[0]
        return not (isinstance(seq, SequenceSet) and seq.saved)
    return any(isinstance(a, SearchKey) and _names_sequence_numbers(a) for a in key.args)


def uses_sequence_numbers(cmd: Command) -> bool:
    """Whether a command needs a message sequence number, which UIDONLY forbids."""
    if cmd.name in SEQUENCE_COMMANDS:
        return True
    args = cmd.args
    return isinstance(args, Search | Sort | Thread) and _names_sequence_numbers(args.key)
