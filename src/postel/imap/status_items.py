"""STATUS items (RFC 9051 6.3.11, RFC 7162 CONDSTORE, RFC 8438 STATUS=SIZE, RFC 9208
QUOTA, RFC 7889 APPENDLIMIT): one small function per item, and what each must read first.

``STATUS_ITEMS`` maps an item name to its source (nothing more than the mailbox row, the
counts query, or every message's flags) and the function that writes ``NAME value``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from postel.imap.objectid import mailbox_id
from postel.store.model import Mailbox, MessageMeta

# What an item's value is written as: a number, or a parenthesized atom (MAILBOXID).
StatusValue = int | str


class Source(enum.Enum):
    MAILBOX = 1  # the mailbox row alone
    COUNTS = 2  # store.mail.mailbox_counts: (messages, unseen, octets)
    MESSAGES = 3  # store.mail.list_messages: every message's UID, flags and size


@dataclass(frozen=True)
class StatusData:
    """What the items of one STATUS response are computed from; the optional parts are
    read only when an asked item needs them."""

    box: Mailbox
    append_limit: int
    counts: tuple[int, int, int] | None = None
    messages: Sequence[MessageMeta] | None = None

    def count(self, index: int) -> int:
        assert self.counts is not None
        return self.counts[index]

    def all_messages(self) -> Sequence[MessageMeta]:
        assert self.messages is not None
        return self.messages


def _messages(d: StatusData) -> int:
    return d.count(0)


def _unseen(d: StatusData) -> int:
    return d.count(1)


def _size(d: StatusData) -> int:
    return d.count(2)  # RFC 8438: octets of every message


def _uidnext(d: StatusData) -> int:
    return d.box.uidnext


def _uidvalidity(d: StatusData) -> int:
    return d.box.uidvalidity


def _highestmodseq(d: StatusData) -> int:
    return d.box.highestmodseq


def _appendlimit(d: StatusData) -> int:
    return d.append_limit


def _mailboxid(d: StatusData) -> str:
    # RFC 8474 4.4: status-att-val =/ "MAILBOXID" SP "(" objectid ")"
    return f"({mailbox_id(d.box)})"


def _recent(d: StatusData) -> int:
    return sum(1 for m in d.all_messages() if m.uid >= d.box.first_recent_uid)


def _deleted(d: StatusData) -> int:
    return sum(1 for m in d.all_messages() if m.flags.deleted)


def _deleted_storage(d: StatusData) -> int:
    # RFC 9208 4.2.1: what EXPUNGE would free, in units of 1024 octets.
    return sum(m.size for m in d.all_messages() if m.flags.deleted) // 1024


@dataclass(frozen=True)
class StatusItem:
    source: Source
    value: Callable[[StatusData], StatusValue]


STATUS_ITEMS: Mapping[str, StatusItem] = MappingProxyType({
    "MESSAGES": StatusItem(Source.COUNTS, _messages),
    "UIDNEXT": StatusItem(Source.MAILBOX, _uidnext),
    "UIDVALIDITY": StatusItem(Source.MAILBOX, _uidvalidity),
    "UNSEEN": StatusItem(Source.COUNTS, _unseen),
    "RECENT": StatusItem(Source.MESSAGES, _recent),
    "SIZE": StatusItem(Source.COUNTS, _size),
    "HIGHESTMODSEQ": StatusItem(Source.MAILBOX, _highestmodseq),
    "DELETED": StatusItem(Source.MESSAGES, _deleted),
    "APPENDLIMIT": StatusItem(Source.MAILBOX, _appendlimit),
    "DELETED-STORAGE": StatusItem(Source.MESSAGES, _deleted_storage),
    "MAILBOXID": StatusItem(Source.MAILBOX, _mailboxid),
})


def sources(items: Sequence[str]) -> set[Source]:
    return {STATUS_ITEMS[item].source for item in items}


def status_values(data: StatusData, items: Sequence[str]) -> list[tuple[str, StatusValue]]:
    """(item, value) in the order asked, as RFC 9051 7.3.4 STATUS writes them."""
    return [(item, STATUS_ITEMS[item].value(data)) for item in items]
