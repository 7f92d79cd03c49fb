"""The relational schema, one for SQLite and PostgreSQL.

Plain tables an operator can read with SQL (no key/value blobs). Alembic migrations in
``migrations/versions`` create and evolve it; this module is what the code queries against
and what ``alembic revision --autogenerate`` compares to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy.dialects.postgresql  # noqa: F401  (registers to_tsvector, used below)
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can refer to them on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored as naive UTC and come back timezone-aware.

    SQLite has no time zones; storing UTC everywhere keeps the two backends identical.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


# A domain we receive mail for.
domains = Table(
    "domains",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),  # lowercase, Unicode (U-labels)
    Column("created_at", UtcDateTime, nullable=False),
)

# A mailbox owner. `email` is the login and the lookup key: local part lowercased +
# "@" + domain, so logins match case-insensitively.
accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("domain_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),  # Argon2id, PHC string
    Column("role", String(16), nullable=False),  # user | domain-admin | admin
    Column("backup_email", String(320)),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("quota_bytes", BigInteger, nullable=False, server_default="0"),  # 0 = unlimited
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("password_changed_at", UtcDateTime, nullable=False),
)

# Extra addresses that deliver to accounts or forward elsewhere. `source` is a lookup key
# like accounts.email, or "@domain" for a catch-all.
aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("domain_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("source", String(320), nullable=False, index=True),
    Column("destination", String(320), nullable=False),
    UniqueConstraint("source", "destination", name="uq_aliases_source_destination"),
)

# IMAP mailboxes. Names are full paths with "/" as the hierarchy delimiter, stored in
# UTF-8 (IMAP4rev2); INBOX is always spelled "INBOX".
mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("special_use", String(16)),  # \Drafts \Sent \Junk \Trash \Archive (RFC 6154)
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False),  # next UID to assign; never goes down
    Column("highestmodseq", BigInteger, nullable=False),  # RFC 7162
    # RFC 3501 \Recent: messages with uid >= first_recent_uid have not yet been seen by
    # any session; the first session to SELECT claims them by moving this forward.
    Column("first_recent_uid", BigInteger, nullable=False, server_default="1"),
    # No longer read (since migration 0005): the subscriptions table holds the list, which
    # must outlive a DELETE. Kept because dropping it means rebuilding the table on SQLite.
    Column("subscribed", Boolean, nullable=False, server_default="1"),
    Column("created_at", UtcDateTime, nullable=False),
    # STATUS MESSAGES / UNSEEN / SIZE without counting rows (migration 0010): changed in
    # the same transaction (and the same UPDATE) as the uidnext or HIGHESTMODSEQ of every
    # write that adds, removes or (un)sees a message (rows.py allocate and bump_modseq).
    Column("message_count", BigInteger, nullable=False, server_default="0"),
    Column("unseen_count", BigInteger, nullable=False, server_default="0"),
    Column("total_size", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("account_id", "name", name="uq_mailboxes_account_id_name"),
)

# One row per message per mailbox. The body lives in a content-addressed blob file; the
# parsed fields below are what IMAP FETCH, SEARCH and SORT read without re-parsing.
messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("seen", Boolean, nullable=False, server_default="0"),
    Column("answered", Boolean, nullable=False, server_default="0"),
    Column("flagged", Boolean, nullable=False, server_default="0"),
    Column("deleted", Boolean, nullable=False, server_default="0"),
    Column("draft", Boolean, nullable=False, server_default="0"),
    Column("keywords", Text, nullable=False, server_default=""),  # space-separated, as set
    Column("internal_date", UtcDateTime, nullable=False),
    Column("saved_date", UtcDateTime, nullable=False),  # RFC 8514 SAVEDATE
    Column("size", BigInteger, nullable=False),
    Column("blob_sha256", String(64), nullable=False, index=True),
    Column("envelope", Text, nullable=False),  # JSON: the IMAP ENVELOPE structure
    Column("mime", Text, nullable=False),  # JSON: part tree with byte offsets into the blob
    Column("headers", Text, nullable=False),  # JSON: [[name, decoded value], ...]
    Column("subject", Text, nullable=False, server_default=""),
    Column("base_subject", Text, nullable=False, server_default=""),  # RFC 5256 2.1
    Column("sent_date", UtcDateTime),
    Column("message_id", Text),
    Column("in_reply_to", Text),
    Column("references", Text, nullable=False, server_default=""),
    Column("from_sort", Text, nullable=False, server_default=""),
    Column("to_sort", Text, nullable=False, server_default=""),
    Column("cc_sort", Text, nullable=False, server_default=""),
    Column("display_from", Text, nullable=False, server_default=""),
    Column("display_to", Text, nullable=False, server_default=""),
    Column("has_attachments", Boolean, nullable=False, server_default="0"),
    UniqueConstraint("mailbox_id", "uid", name="uq_messages_mailbox_id_uid"),
    Index("ix_messages_mailbox_id_modseq", "mailbox_id", "modseq"),
)

# Expunged UIDs with the MODSEQ of their removal, for QRESYNC VANISHED (RFC 7162 3.2.10).
expunged = Table(
    "expunged",
    metadata,
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id"), primary_key=True),
    Column("uid", BigInteger, primary_key=True),
    Column("modseq", BigInteger, nullable=False),
    Index("ix_expunged_mailbox_id_modseq", "mailbox_id", "modseq"),
)

# IMAP METADATA entries (RFC 5464), one row per entry name and target. Mailbox entries
# name their mailbox (and its owner); server entries have no mailbox: "/private/..." ones
# belong to account_id, "/shared/..." ones have no account (the whole server's). Names are
# stored lowercase (RFC 5464 3.2: entry names are case-insensitive) with their /private or
# /shared prefix. RENAME keeps mailbox_id, so entries move with the mailbox (RFC 5464 3.1);
# DELETE and account removal delete them.
metadata_entries = Table(
    "metadata_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id")),  # NULL: server /shared
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id")),  # NULL: a server entry
    Column("name", String(1024), nullable=False),
    Column("value", LargeBinary, nullable=False),  # octets, may hold NUL (literal8)
    Index("ix_metadata_entries_account_id_mailbox_id_name", "account_id", "mailbox_id", "name"),
    Index("ix_metadata_entries_mailbox_id", "mailbox_id"),
)

# Outbound messages: one row per message and remote domain. Delivering them is the queue's
# job; the SMTP submission path only inserts rows here.
outbound_queue = Table(
    "outbound_queue",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("queue_id", String(32), nullable=False, index=True),  # the id logged for the transaction
    Column("account_id", Integer, ForeignKey("accounts.id")),  # the submitting user, if any
    Column("blob_sha256", String(64), nullable=False, index=True),
    # Bytes at the start of the blob that are not sent (a Return-Path added for local copies).
    Column("body_offset", Integer, nullable=False, server_default="0"),
    Column("mail_from", String(320), nullable=False),  # "" for the null reverse-path
    Column("domain", String(255), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list of addresses in `domain`
    Column("smtputf8", Boolean, nullable=False, server_default="0"),
    Column("body_8bit", Boolean, nullable=False, server_default="0"),
    Column("size", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # queued | sending | held
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    # The sender has been told the message is delayed (one warning per row).
    Column("delay_warned", Boolean, nullable=False, server_default="0"),
    # DSN requests (RFC 3461): RET, ENVID, and JSON {recipient: {"notify": [...], "orcpt":}}.
    Column("dsn_ret", String(4)),
    Column("dsn_envid", String(100)),
    Column("dsn_recipients", Text),
    # RFC 8689 MAIL REQUIRETLS: relay only over verified TLS to a server offering it.
    Column("requiretls", Boolean, nullable=False, server_default="0"),
    # A "sending" row's claim: which host's queue runner (its node id) holds it, and until
    # when; after that any host may take it over (the claimer died mid-delivery).
    Column("claimed_by", String(64)),
    Column("claimed_until", UtcDateTime),
    # RFC 3030 3 BODY=BINARYMIME: send only by BDAT to a next hop offering BINARYMIME.
    Column("body_binary", Boolean, nullable=False, server_default="0"),
    Index("ix_outbound_queue_state_next_attempt_at", "state", "next_attempt_at"),
)

# DKIM signing keys (RFC 6376), made by `postel dkim generate`. Outbound mail whose From
# domain has an active key is signed with the newest one per algorithm; the public half is
# published in DNS at <selector>._domainkey.<domain>.
dkim_keys = Table(
    "dkim_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("domain", String(255), nullable=False, index=True),  # lowercase, A-labels
    Column("selector", String(63), nullable=False),
    Column("algorithm", String(32), nullable=False),  # rsa-sha256 | ed25519-sha256
    Column("private_key", Text, nullable=False),  # PEM (PKCS#8), unencrypted
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("domain", "selector", name="uq_dkim_keys_domain_selector"),
)

# -- web ------------------------------------------------------------------------------

# Signed-in browser (and API) sessions. The cookie carries a random token; only its
# SHA-256 is stored, so a database leak does not hand out live sessions. Deleting rows
# signs people out (logout, password change, admin action).
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),  # idle expiry counts from here
    Column("ip", String(64), nullable=False, server_default=""),
    Column("user_agent", Text, nullable=False, server_default=""),
)

# "Forgot your password?" links: single use (used_at), short-lived (expires_at), and
# stored as the SHA-256 of the token that only the mail to the backup address carries.
password_reset_tokens = Table(
    "password_reset_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
)

# Who did what, when and from where: every admin action and every password reset.
# `domain` scopes the row for a domain admin's view ("" for system-wide actions).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(320), nullable=False),  # account email, or "" for anonymous
    Column("ip", String(64), nullable=False, server_default=""),
    Column("domain", String(255), nullable=False, server_default="", index=True),
    Column("action", String(64), nullable=False),  # e.g. user.add, user.password
    Column("target", String(320), nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default=""),  # never a password
)

# CAPTCHA challenges: one answer each (the row is deleted when answered), expiring.
captcha_challenges = Table(
    "captcha_challenges",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("answer", String(32), nullable=False),  # the image/audio renders it
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# The IMAP subscription list (RFC 9051 6.3.9): names, not mailboxes, because a
# subscription outlives the mailbox (RFC 3501 6.3.6: the server MUST NOT remove a name
# because its mailbox no longer exists). Only SUBSCRIBE adds to it, and the new account's
# default mailboxes.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(1000), primary_key=True),
)

# Named counters that must never go backwards, across processes and hosts. "uidvalidity":
# the last UIDVALIDITY handed out (RFC 3501 2.3.1.1: a re-created mailbox needs a new one).
counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# -- webmail --------------------------------------------------------------------------

# The decoded text of each message for the webmail's full-text search and preview line,
# filled by the indexer (postel.store.sql.webmail) after delivery, never in the delivery
# path. A row goes with its message (ON DELETE CASCADE). The search index itself is
# backend-specific and lives only in migration 0005: an FTS5 table kept in step by
# triggers on SQLite, a GIN index over to_tsvector('simple', ...) on PostgreSQL.
webmail_text = Table(
    "webmail_text",
    metadata,
    Column("message_id", BigInteger().with_variant(Integer, "sqlite"),
           ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("subject", Text, nullable=False, server_default=""),
    Column("from_text", Text, nullable=False, server_default=""),  # names and addresses
    Column("to_text", Text, nullable=False, server_default=""),  # To and Cc
    Column("body", Text, nullable=False, server_default=""),  # text parts, HTML stripped
)

# Per-account webmail preferences (My Settings): one row, created on first save.
webmail_prefs = Table(
    "webmail_prefs",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"),
           primary_key=True),
    Column("signature", Text, nullable=False, server_default=""),
    Column("mark_read_on_open", Boolean, nullable=False, server_default="1"),
)

# Senders whose remote images and fonts the user always allows ("always for this sender").
webmail_trusted_senders = Table(
    "webmail_trusted_senders",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"),
           primary_key=True),
    Column("sender", String(320), primary_key=True),  # lowercase address
)

# Keyset paging of the webmail's message list in each sort order without scanning a
# 100,000-message mailbox. Text sort keys are indexed by a prefix (a whole Text column may
# pass PostgreSQL's btree row limit and fail a delivery); the list orders by the same
# expressions.
# Literal arguments: SQLite uses an index on an expression only for the very same text, and
# bound parameters ("substr(x, ?, ?)") would not be.
_ONE: ColumnElement[int] = literal_column("1")
_HUNDRED: ColumnElement[int] = literal_column("100")
FROM_SORT_PREFIX: ColumnElement[str] = func.substr(messages.c.from_sort, _ONE, _HUNDRED)
SUBJECT_SORT_PREFIX: ColumnElement[str] = func.substr(messages.c.base_subject, _ONE, _HUNDRED)
MESSAGE_ID_PREFIX: ColumnElement[str] = func.substr(messages.c.message_id, _ONE,
                                                    literal_column("200"))
Index("ix_messages_webmail_date", messages.c.mailbox_id, messages.c.internal_date,
      messages.c.id)
Index("ix_messages_webmail_size", messages.c.mailbox_id, messages.c.size, messages.c.id)
# Unread counts per folder from the index alone.
Index("ix_messages_webmail_seen", messages.c.mailbox_id, messages.c.seen)
Index("ix_messages_webmail_from", messages.c.mailbox_id, FROM_SORT_PREFIX, messages.c.id)
Index("ix_messages_webmail_subject", messages.c.mailbox_id, SUBJECT_SORT_PREFIX,
      messages.c.id)
Index("ix_messages_webmail_message_id", MESSAGE_ID_PREFIX)

# The search document of PostgreSQL's full-text index (GIN, migration 0005); SQLite uses
# the FTS5 table of that migration instead. Neither is in this metadata (backend-specific).
# Literal separators, so the query's expression is the index's (a bound parameter is not).
_SPACE: ColumnElement[str] = literal_column("' '")
SEARCH_DOCUMENT = func.to_tsvector(
    literal_column("'simple'::regconfig"),
    webmail_text.c.subject + _SPACE + webmail_text.c.from_text + _SPACE + webmail_text.c.to_text
    + _SPACE + webmail_text.c.body,
)

# -- URLAUTH (RFC 4467) -----------------------------------------------------------------

# One mailbox access key per mailbox (RFC 4467 3): the secret the INTERNAL mechanism signs
# URLAUTH URLs with (HMAC-SHA256). It must be stored as is, not hashed, because every
# verification recomputes the HMAC with it. RESETKEY replaces it, which invalidates every
# URL made with the old key; deleting the mailbox deletes it.
urlauth_keys = Table(
    "urlauth_keys",
    metadata,
    Column("mailbox_id", Integer, ForeignKey("mailboxes.id", ondelete="CASCADE"),
           primary_key=True),
    Column("access_key", String(64), nullable=False),  # 32 random bytes, hex
    Column("created_at", UtcDateTime, nullable=False),
)

# -- bodies in PostgreSQL (store/sql/pgblobs.py) ---------------------------------------

# On PostgreSQL the database holds every body, so each host of a cluster can read it; the
# blob directory is then a per-host cache. Unused on SQLite, where the files are the bodies.
blob_objects = Table(
    "blob_objects",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    # Stamped at every install, a duplicate's too: the collector spares a body stamped
    # within its grace period, which a writer on another host may be about to name.
    Column("used_at", UtcDateTime, nullable=False),
)

# A body's bytes in 256 KiB chunks (written before its blob_objects row, in one transaction).
# These two tables are the bodies, not rows: copies and backups carry the bodies as blob
# files and rebuild them (store/sql/copy.py, store/sql/backup.py).
blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

# -- failed logins (issue 15) -----------------------------------------------------------

# One row per failed login counted by the shared limiter (auth/limits.py), so every worker
# process and host sees the same windows and `postel block list/remove` works against a
# running server. `scope` is what is counted ("ip": an address or IPv6 /64, "account", or
# "checks": the password checks a locked account still gets); `at` is Unix time, the one
# clock hosts share. Rows older than the window are deleted as new ones come.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("key", String(400), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_auth_failures_scope_key_at", "scope", "key", "at"),
    Index("ix_auth_failures_at", "at"),
)


BODY_TABLES = ("blob_objects", "blob_chunks")


def row_tables() -> list[Table]:
    """Every table of rows (not the bodies' tables), parents before children."""
    return [table for table in metadata.sorted_tables if table.name not in BODY_TABLES]
