"""What the webmail needs from storage beyond the mail store's own methods: listing,
search, the text index, preferences. Writes to mail (flags, move, expunge, append,
mailboxes) go through the store's existing methods; this surface only reads mail, and
writes the webmail's own tables.

The SQL implementation is ``postel.store.sql.webmail.SqlWebmail``, the store's
``webmail`` part.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from postel.store.model import Flags, Mailbox


class BadCursor(ValueError):
    """A paging cursor this server did not hand out."""


class SortKey(enum.StrEnum):
    DATE = "date"  # arrival (IMAP INTERNALDATE), as RFC 5256 ARRIVAL
    FROM = "from"  # RFC 5256 3: the first From addr-mailbox, lowercase
    SUBJECT = "subject"  # RFC 5256 2.1 base subject
    SIZE = "size"


@dataclass(frozen=True)
class FolderSummary:
    mailbox: Mailbox
    total: int
    unseen: int


@dataclass(frozen=True)
class ListedMessage:
    """One line of the message list."""

    id: int
    mailbox_id: int
    uid: int
    flags: Flags
    internal_date: datetime
    sent_date: datetime | None
    size: int
    subject: str
    display_from: str
    display_to: str
    has_attachments: bool
    preview: str  # start of the body text ("" until the indexer has seen the message)


@dataclass(frozen=True)
class ListPage:
    messages: list[ListedMessage]
    next_cursor: str | None  # opaque; pass back as `after` for the next page


@dataclass(frozen=True)
class SearchTerms:
    """A parsed quick search: every part must match (AND)."""

    words: tuple[str, ...] = ()  # anywhere: subject, from, to/cc, body
    from_: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    subject: tuple[str, ...] = ()
    has_attachment: bool = False
    unread: bool = False
    flagged: bool = False
    before: datetime | None = None  # arrival strictly before
    after: datetime | None = None  # arrival at or after

    @property
    def empty(self) -> bool:
        return self == SearchTerms()


@dataclass(frozen=True)
class UnindexedMessage:
    """What the indexer needs to extract a message's text."""

    id: int
    blob_sha256: str
    mime: dict[str, Any]
    envelope: list[Any]
    subject: str


@dataclass(frozen=True)
class MessageText:
    message_id: int
    subject: str
    from_text: str
    to_text: str
    body: str


@dataclass(frozen=True)
class WebmailPrefs:
    signature: str = ""
    mark_read_on_open: bool = True
    trusted_senders: frozenset[str] = field(default_factory=frozenset)


class WebmailStore(Protocol):
    def folders(self, account_id: int) -> list[FolderSummary]: ...

    def list_page(self, mailbox_id: int, sort: SortKey, descending: bool,
                  after: str | None, limit: int) -> ListPage: ...

    def search(self, account_id: int, mailbox_id: int | None, terms: SearchTerms,
               after: str | None, limit: int) -> ListPage: ...

    def message_row(self, account_id: int, message_id: int) -> dict[str, Any] | None: ...

    def locate(self, account_id: int, message_ids: Sequence[int]) -> dict[int, list[int]]: ...

    def thread(self, account_id: int, message_id: int,
               limit: int) -> list[ListedMessage] | None: ...

    def find_by_message_id(self, account_id: int, mailbox_id: int,
                           message_id: str) -> int | None: ...

    def correspondents(self, account_id: int, prefix: str, limit: int) -> list[str]: ...

    def newest_message_id(self, account_id: int) -> int: ...

    def unindexed(self, account_id: int, limit: int,
                  above_id: int = 0) -> list[UnindexedMessage]: ...

    def save_texts(self, texts: Sequence[MessageText]) -> int: ...

    def prefs(self, account_id: int) -> WebmailPrefs: ...

    def save_prefs(self, account_id: int, *, signature: str,
                   mark_read_on_open: bool) -> None: ...

    def trust_sender(self, account_id: int, sender: str) -> None: ...
