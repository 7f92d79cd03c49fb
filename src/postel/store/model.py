"""Frozen records the store hands out, and the changes its writes report."""

from __future__ import annotations

import enum
import functools
from array import array
from dataclasses import dataclass, field
from datetime import datetime


class Role(enum.StrEnum):
    USER = "user"
    DOMAIN_ADMIN = "domain-admin"
    ADMIN = "admin"


# RFC 6154 special-use mailboxes created for every new account, in LIST order.
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Junk", "\\Junk"),
    ("Trash", "\\Trash"),
    ("Archive", "\\Archive"),
)

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


@dataclass(frozen=True)
class Domain:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Account:
    id: int
    domain_id: int
    email: str  # the login, lowercase lookup form
    password_hash: str
    role: Role
    backup_email: str | None
    display_name: str
    quota_bytes: int  # 0 = unlimited
    disabled: bool
    created_at: datetime
    password_changed_at: datetime

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


@dataclass(frozen=True)
class Alias:
    source: str  # lookup key, or "@domain" for a catch-all
    destination: str


@dataclass(frozen=True)
class Mailbox:
    id: int
    account_id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    first_recent_uid: int


@dataclass(frozen=True)
class Flags:
    """System flags as booleans (SQL-countable), keywords as a sorted tuple."""

    seen: bool = False
    answered: bool = False
    flagged: bool = False
    deleted: bool = False
    draft: bool = False
    keywords: tuple[str, ...] = ()

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> Flags:
        lowered = {name.lower() for name in names}
        keywords = sorted({n for n in names if not n.startswith("\\")})
        return cls(
            seen="\\seen" in lowered,
            answered="\\answered" in lowered,
            flagged="\\flagged" in lowered,
            deleted="\\deleted" in lowered,
            draft="\\draft" in lowered,
            keywords=tuple(keywords),
        )

    def names(self) -> list[str]:
        set_flags = zip(
            SYSTEM_FLAGS, (self.seen, self.answered, self.flagged, self.deleted, self.draft),
            strict=True,
        )
        return [name for name, on in set_flags if on] + list(self.keywords)


    @property
    def bits(self) -> int:
        """The system flags as FLAG_BITS (see MailboxIndex)."""
        return (self.seen | self.answered << 1 | self.flagged << 2 | self.deleted << 3
                | self.draft << 4)


NO_FLAGS = Flags()


@functools.lru_cache(maxsize=4096)
def flags_of(bits: int, keywords: tuple[str, ...] = ()) -> Flags:
    """The Flags for FLAG_BITS and keywords, shared: a mailbox of 100,000 messages has a
    handful of distinct flag sets, so its index holds a handful of Flags objects."""
    return Flags(bool(bits & 1), bool(bits & 2), bool(bits & 4), bool(bits & 8),
                 bool(bits & 16), keywords)


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


@dataclass(frozen=True)
class MessageMeta:
    id: int
    mailbox_id: int
    uid: int
    modseq: int
    flags: Flags
    internal_date: datetime
    size: int
    blob_sha256: str


@dataclass(frozen=True)
class DeliveredMessage:
    account_id: int
    mailbox_id: int
    uid: int
    modseq: int


# Changes a write made. The bus carries them as hints; a subscriber that misses one loses
# nothing, because it re-reads the store (changes_since) for the truth.
@dataclass(frozen=True)
class MessageAdded:
    account_id: int
    mailbox_id: int
    uid: int
    modseq: int


@dataclass(frozen=True)
class FlagsChanged:
    account_id: int
    mailbox_id: int
    uid: int
    modseq: int
    flags: Flags


@dataclass(frozen=True)
class MessagesExpunged:
    account_id: int
    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True)
class MailboxChanged:
    """A mailbox was created, renamed, deleted, subscribed or unsubscribed."""

    account_id: int
    mailbox_id: int


@dataclass(frozen=True)
class MetadataChanged:
    """SETMETADATA changed entries of a mailbox or of the server (RFC 5464), for NOTIFY
    (RFC 5465 5.6, 5.7). `account_id` None: the whole server's /shared entries, which
    every account sees, so the bus tells every subscriber."""

    account_id: int | None
    mailbox_id: int | None  # None: server entries


@dataclass(frozen=True)
class CredentialsChanged:
    """The account's password changed, or it was disabled or removed: every session
    logged in to it must sign out (the new password works at once, the old one nowhere)."""

    account_id: int


@dataclass(frozen=True)
class QueueChanged:
    """An outbound row was queued or made due now: the queue workers should look at once
    instead of at their next poll. Not about any account, so the bus does not carry it."""

    account_id: None = None


Change = (
    MessageAdded | FlagsChanged | MessagesExpunged | MailboxChanged | CredentialsChanged
    | QueueChanged | MetadataChanged
)


@dataclass(frozen=True)
class MailboxChanges:
    """What happened in a mailbox after a MODSEQ: the answer to an IDLE wake-up."""

    mailbox: Mailbox
    changed: list[MessageMeta] = field(default_factory=list)  # added or flags changed
    expunged_uids: list[int] = field(default_factory=list)


# The system flags of one message as the bits of one small integer, in this order: how
# MailboxIndex keeps 100,000 messages' flags in 100,000 bytes instead of as objects.
FLAG_BITS = ("seen", "answered", "flagged", "deleted", "draft")
SEEN_BIT, ANSWERED_BIT, FLAGGED_BIT, DELETED_BIT, DRAFT_BIT = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class MailboxIndex:
    """A mailbox row and every message's UID, MODSEQ and flags, read in one transaction
    and kept compactly: parallel arrays in UID order (IMAP SELECT), and keywords only for
    the messages that have any."""

    mailbox: Mailbox
    uids: array[int]  # "Q", ascending
    modseqs: array[int]  # "Q"
    bits: array[int]  # "B": the FLAG_BITS of each message
    keywords: dict[int, tuple[str, ...]]  # by UID, sorted, only the non-empty ones


@dataclass(frozen=True)
class DsnRequest:
    """What the submitter asked of DSNs (RFC 3461), carried with a queue row."""

    ret: str | None = None  # "FULL" | "HDRS" | None (RFC 3461 4.3)
    envid: str | None = None  # RFC 3461 4.4, decoded
    # Per recipient: NOTIFY values (empty: not given) and ORCPT ("rfc822;addr"), 4.1, 4.2.
    notify: dict[str, tuple[str, ...]] = field(default_factory=dict)
    orcpt: dict[str, str] = field(default_factory=dict)

    def wants(self, recipient: str, event: str) -> bool:
        """Does `recipient` want a DSN for `event` (SUCCESS, FAILURE, DELAY)? Without
        NOTIFY, failures and delays are reported, success is not (RFC 3461 4.1)."""
        values = self.notify.get(recipient)
        if not values:
            return event != "SUCCESS"
        return event in values


@dataclass(frozen=True)
class OutboundItem:
    """One queued message for one remote domain."""

    id: int
    queue_id: str
    blob_sha256: str
    body_offset: int
    mail_from: str
    domain: str
    recipients: list[str]
    size: int
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    smtputf8: bool = False  # the message needs SMTPUTF8 (RFC 6531) at the next hop
    body_8bit: bool = False  # BODY=8BITMIME (RFC 6152)
    account_id: int | None = None  # the submitting user, if any
    delay_warned: bool = False  # the sender was told the message is delayed
    dsn: DsnRequest = field(default_factory=DsnRequest)  # RFC 3461 parameters
    requiretls: bool = False  # RFC 8689: only over verified TLS to a REQUIRETLS next hop
    # RFC 3030 3 BODY=BINARYMIME: the bytes are binary MIME, sent only by BDAT to a next
    # hop offering BINARYMIME and CHUNKING.
    body_binary: bool = False


@dataclass(frozen=True)
class OutboundCopy:
    """The remote part of a delivery, queued in the same transaction as the local copies
    (`Mailboxes.deliver(queued=...)`): a crash between the two can no longer leave a
    message stored for the local recipients and never sent to the remote ones."""

    queue_id: str
    body_offset: int
    mail_from: str
    recipients: tuple[str, ...]
    account_id: int | None
    smtputf8: bool
    body_8bit: bool
    dsn: DsnRequest | None = None
    requiretls: bool = False
    body_binary: bool = False
