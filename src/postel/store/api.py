"""The storage surface, as one Protocol per consumer: the only store types protocol code
(smtp, imap, pop3, web, queue, delivery, auth, cli) sees.

`Mailboxes` serves IMAP, POP3 and delivery; `Directory` the recipients, logins and the
admin operations; `Outbound` the queue workers; `DkimKeys` signing; `WebState` the web
pages; `MetadataEntries` IMAP METADATA. `Store` bundles them as attributes
(``store.mail``, ``store.directory``, ``store.queue``, ``store.dkim``, ``store.web``,
``store.metadata``) with the blob files and commit listeners.
Refusals are the exceptions of `postel.store.errors`, never a backend's own.

Methods block (SQL and fsync); asyncio callers run them in a worker thread. Every write
publishes the changes it committed to the `on_commit` listeners (`postel.store.model`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from postel.mail.mime import ParsedMessage
from postel.store.blobs import BlobStore
from postel.store.integrity import BackupSummary, CheckReport, Progress, no_progress
from postel.store.model import (
    NO_FLAGS,
    Account,
    Alias,
    BlobRef,
    Change,
    DeliveredMessage,
    Domain,
    DsnRequest,
    Flags,
    Mailbox,
    MailboxChanges,
    MailboxIndex,
    MessageMeta,
    OutboundCopy,
    OutboundItem,
    Role,
)
from postel.store.webmail_api import WebmailStore


class Mailboxes(Protocol):
    """What IMAP, POP3 and delivery need: mailboxes and messages, UIDs, MODSEQs, flags,
    expunge and the changes since a MODSEQ (IDLE, QRESYNC)."""

    def list_mailboxes(self, account_id: int) -> list[Mailbox]: ...

    def get_mailbox(self, account_id: int, name: str) -> Mailbox | None: ...

    def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None: ...

    def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> Mailbox: ...

    def deliver(
        self,
        blob: BlobRef,
        parsed: ParsedMessage,
        targets: Sequence[tuple[int, str]],
        *,
        flags: Flags = NO_FLAGS,
        internal_date: datetime | None = None,
        queued: OutboundCopy | None = None,
    ) -> list[DeliveredMessage]:
        """Store one body in several (account, mailbox name) targets in one transaction,
        with the outbound rows of its remote recipients (`queued`) in the same one.

        The blob must already be durable (BlobWriter.commit). A missing mailbox falls back
        to INBOX, so a user who deleted a folder that a rule names still gets the mail.
        """
        ...

    def append(
        self,
        account_id: int,
        mailbox_id: int,
        blob: BlobRef,
        parsed: ParsedMessage,
        *,
        flags: Flags = NO_FLAGS,
        internal_date: datetime | None = None,
    ) -> DeliveredMessage:
        """IMAP APPEND: one message into one mailbox, durable when this returns."""
        ...

    def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        """Every message of a mailbox in UID order (sequence number = index + 1)."""
        ...

    def mailbox_index(self, mailbox_id: int) -> MailboxIndex | None:
        """The mailbox row and its messages' UIDs, MODSEQs and flags in one read, as
        arrays (SELECT); only messages below the row's uidnext. None: no such mailbox."""
        ...

    def subject_candidates(self, mailbox_id: int, needle: str) -> set[int]:
        """SEARCH SUBJECT's pre-filter: the UIDs whose first Subject, casefolded, contains
        the casefolded `needle`, and every message with more than one Subject header
        (which the caller must check itself). A superset of the matches, never less."""
        ...

    def get_message_fields(self, mailbox_id: int, uid: int) -> dict[str, Any] | None:
        """All stored columns of one message, JSON columns decoded (for FETCH)."""
        ...

    def set_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        flags: Flags,
        *,
        mode: str = "replace",
        unchanged_since: int | None = None,
    ) -> tuple[list[MessageMeta], list[int]]:
        """STORE: `mode` is replace, add or remove. Returns (changed, failed UNCHANGEDSINCE).

        Only messages whose flags actually change get a new MODSEQ (RFC 7162 3.1.3).
        """
        ...

    def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages: the given UIDs, or every \\Deleted one. Returns removed UIDs."""
        ...

    def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        """Messages added or changed, and UIDs expunged, after `modseq` (IDLE, QRESYNC)."""
        ...

    def mailbox_counts(self, mailbox_id: int) -> tuple[int, int, int]:
        """(messages, unseen, bytes) for STATUS."""
        ...

    def claim_recent(self, mailbox_id: int, until: int) -> range:
        """RFC 3501 2.3.2 \\Recent: the caller takes the messages below `until` (the
        uidnext it listed them under) that no session has taken yet; their UIDs."""
        ...

    def subscriptions(self, account_id: int) -> set[str]:
        """The subscription list: names, some perhaps of mailboxes deleted since."""
        ...

    def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> bool:
        """SUBSCRIBE / UNSUBSCRIBE; False when there is nothing to act on. A deleted
        mailbox's subscription stays until UNSUBSCRIBE (RFC 3501 6.3.6)."""
        ...

    def delete_mailbox(self, account_id: int, name: str) -> None:
        """DELETE: the mailbox and its messages go; inferior mailboxes stay (RFC 9051 6.3.4)."""
        ...

    def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """RENAME with its inferiors (RFC 9051 6.3.6). Renaming INBOX moves its messages to
        a new mailbox and leaves INBOX, empty, in place."""
        ...

    def copy(
        self, source_id: int, uids: Sequence[int], target_id: int, *, move: bool = False
    ) -> list[tuple[int, int]]:
        """COPY / MOVE in one transaction; returns (source uid, new uid) pairs in UID order
        (RFC 4315 COPYUID, RFC 6851 MOVE)."""
        ...

    def append_many(
        self,
        account_id: int,
        mailbox_id: int,
        items: Sequence[tuple[BlobRef, ParsedMessage, Flags, datetime | None]],
    ) -> list[DeliveredMessage]:
        """MULTIAPPEND (RFC 3502): every message or none, in one transaction."""
        ...

    def replace_message(
        self,
        account_id: int,
        source_id: int,
        uid: int,
        target_id: int,
        item: tuple[BlobRef, ParsedMessage, Flags, datetime | None],
    ) -> DeliveredMessage:
        """REPLACE (RFC 8508 3): append `item` to the target and expunge the source
        message in one transaction, so either both happen or neither does. NotFound when
        the source message or either mailbox is gone."""
        ...

    def message_fields(
        self, mailbox_id: int, uids: Sequence[int] | None, columns: Sequence[str]
    ) -> dict[int, dict[str, Any]]:
        """Chosen columns of many messages by UID (None: all), JSON columns decoded."""
        ...


class Directory(Protocol):
    """Domains, accounts and aliases: who receives mail here, and who may log in."""

    def add_domain(self, name: str) -> Domain: ...

    def get_domain(self, name: str) -> Domain | None: ...

    def list_domains(self) -> list[Domain]: ...

    def remove_domain(self, name: str) -> None: ...

    def is_local_domain(self, name: str) -> bool: ...

    def add_account(
        self,
        email: str,
        password_hash: str,
        *,
        role: Role = Role.USER,
        backup_email: str | None = None,
        display_name: str = "",
        quota_bytes: int = 0,
    ) -> Account:
        """Create an account and its default mailboxes. `email` must be a lookup key."""
        ...

    def get_account(self, email: str) -> Account | None: ...

    def get_account_by_id(self, account_id: int) -> Account | None: ...

    def list_accounts(self, domain: str | None = None) -> list[Account]: ...

    def update_account(self, email: str, **values: Any) -> Account:
        """Change password_hash, backup_email, role, display_name, quota_bytes or disabled."""
        ...

    def rehash_password(self, account_id: int, old_hash: str, new_hash: str) -> bool:
        """Replace the stored hash with one of the same password under new parameters,
        only while it is still `old_hash` (a password change in between wins). Publishes
        no CredentialsChanged and keeps password_changed_at: nobody is signed out."""
        ...

    def remove_account(self, email: str) -> None:
        """Delete an account with its mailboxes and messages; then the bodies that no
        other message and no queued row names any more are deleted from disk."""
        ...

    def account_usage(self, account_id: int) -> int:
        """Bytes stored in all of an account's mailboxes (for quotas)."""
        ...

    def addresses_of(self, account: Account) -> set[str]:
        """The lookup keys an account may send as: its own, and aliases that point at it
        directly (a catch-all does not let a user send as every address of the domain)."""
        ...

    def add_alias(self, source: str, destination: str) -> Alias:
        """`source` is a lookup key or "@domain" (catch-all); the domain must be local."""
        ...

    def list_aliases(self, domain: str | None = None) -> list[Alias]: ...

    def remove_alias(self, source: str, destination: str) -> None: ...

    def resolve(self, key: str, *, max_depth: int = 8) -> tuple[list[Account], list[str]] | None:
        """Expand a recipient lookup key in a local domain.

        Returns (local accounts, remote addresses), or None when nothing is there: not a
        user, not an alias, and no catch-all. Aliases may point at aliases, up to
        `max_depth` levels (a loop ends there instead of running forever). A user's own
        address wins over a catch-all, as everyone expects.
        """
        ...

    def counts(self) -> dict[str, int]:
        """Sizes an operator watches: domains, accounts, messages and their bytes."""
        ...


class Outbound(Protocol):
    """The outbound queue: rows per destination domain, claimed by the queue workers,
    finished after delivery or a final bounce, or rescheduled."""

    def enqueue(
        self,
        *,
        queue_id: str,
        blob: BlobRef,
        body_offset: int,
        mail_from: str,
        recipients: Sequence[str],
        account_id: int | None,
        smtputf8: bool,
        body_8bit: bool,
        dsn: DsnRequest | None = None,
        requiretls: bool = False,
        body_binary: bool = False,
    ) -> list[int]:
        """Queue a message for remote recipients: one row per destination domain."""
        ...

    def list_all(self) -> list[OutboundItem]: ...

    def get(self, item_id: int) -> OutboundItem | None: ...

    def release_claims(self, owner: str = "") -> int:
        """At start-up: rows this host's previous run left "sending" (claimed by `owner`)
        are due again; other hosts' claims run out by their lease."""
        ...

    def renew_claims(self, owner: str, item_ids: Sequence[int], lease: float) -> int:
        """Move the leases of `owner`'s rows being delivered `lease` seconds ahead."""
        ...

    def claim(
        self, due_before: datetime, limit: int, skip_domains: Sequence[str] = (), *,
        owner: str = "", lease: float = 900.0,
    ) -> list[OutboundItem]:
        """Mark up to `limit` due rows "sending" for `owner` until `lease` seconds from now
        and return them, oldest due first; a row whose claim ran out (a host that died
        mid-delivery) is due too."""
        ...

    def finish(self, item_id: int) -> None:
        """Delivered to every recipient, or bounced for good: the row goes."""
        ...

    def finish_many(self, item_ids: Sequence[int]) -> None:
        """finish() for several rows in one transaction (one fsync for a batch)."""
        ...

    def reschedule(
        self,
        item_id: int,
        *,
        next_attempt_at: datetime,
        error: str,
        recipients: Sequence[str] | None = None,
        delay_warned: bool | None = None,
    ) -> None:
        """One more failed attempt: back to "queued" until `next_attempt_at`, keeping only
        the recipients still to deliver when given."""
        ...

    def retry_now(self, item_id: int | None = None) -> int:
        """Make one row (or every waiting row) due now; returns how many."""
        ...

    def delete(self, item_id: int) -> bool:
        """Drop a row without delivering or bouncing it (operator's decision)."""
        ...

    def stats(self) -> tuple[int, datetime | None]:
        """How many rows are queued, and when the oldest was created (for /metrics)."""
        ...


class DkimKeys(Protocol):
    """DKIM signing keys per domain (RFC 6376)."""

    def add_key(self, domain: str, selector: str, algorithm: str, private_key: str) -> None: ...

    def signing_keys(self, domain: str) -> list[tuple[str, str, str]]:
        """(selector, algorithm, private key PEM) of the newest active key of `domain` per
        algorithm: mail is signed with RSA and Ed25519 both when both exist (RFC 8463 5
        advises the pair, as not every verifier knows Ed25519)."""
        ...

    def keys(self) -> list[tuple[str, str, str, bool]]:
        """(domain, selector, algorithm, active) of every key."""
        ...


class WebState(Protocol):
    """What the web pages keep: sessions and reset tokens (already hashed), CAPTCHA
    challenges, the audit log, account search and domain statistics."""

    def session_create(
        self, token_hash: str, account_id: int, ip: str, user_agent: str
    ) -> None: ...

    def session_get(self, token_hash: str) -> tuple[int, datetime, datetime] | None:
        """(account id, created at, last seen at) of a session, or None."""
        ...

    def session_touch(self, token_hash: str) -> None: ...

    def session_delete(self, token_hash: str) -> None: ...

    def sessions_delete_for_account(self, account_id: int, *, keep: str = "") -> int:
        """Sign an account out everywhere (but the session `keep`); returns how many."""
        ...

    def sessions_count(self, account_id: int) -> int: ...

    def expire(self, idle_before: datetime, created_before: datetime) -> None:
        """Drop idle or too old sessions, expired reset tokens and CAPTCHA challenges."""
        ...

    def forget_account(self, account_id: int) -> None:
        """Remove an account's sessions and reset tokens (before remove_account)."""
        ...

    def reset_token_create(
        self, token_hash: str, account_id: int, expires_at: datetime
    ) -> None: ...

    def reset_token_account(self, token_hash: str) -> int | None:
        """The account of a reset token that is unused and unexpired, else None."""
        ...

    def reset_token_use(self, token_hash: str, password_hash: str) -> Account | None:
        """Spend a valid token and set the new password in one transaction.

        The conditional UPDATE makes the token single-use even under concurrent requests;
        every other outstanding token of the account is spent too, and every web session
        of the account is signed out.
        """
        ...

    def reset_tokens_spend(self, account_id: int) -> int:
        """Spend every outstanding reset token of an account (its password or backup
        address changed, so a link sent before must not work after); returns how many."""
        ...

    def captcha_create(self, challenge_id: str, answer: str, expires_at: datetime) -> None: ...

    def captcha_get(self, challenge_id: str) -> str | None:
        """The answer of an unexpired challenge (to render it), without spending it."""
        ...

    def captcha_take(self, challenge_id: str) -> str | None:
        """Spend a challenge: it is deleted whatever the answer; None when expired/unknown."""
        ...

    def audit_add(
        self, *, actor: str, ip: str, domain: str, action: str, target: str = "",
        detail: str = "",
    ) -> None: ...

    def audit_list(
        self, domain: str | None, offset: int = 0, limit: int = 50
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, newest-first rows) of one domain's audit log, or every domain's."""
        ...

    def search_accounts(
        self, domain: str, query: str = "", offset: int = 0, limit: int = 25
    ) -> tuple[int, list[Account]]:
        """(total, page) of a domain's accounts whose address or name contains `query`."""
        ...

    def domain_stats(self) -> list[tuple[Domain, int, int]]:
        """Every domain with its number of users and the bytes their messages take."""
        ...



class MetadataEntries(Protocol):
    """IMAP METADATA (RFC 5464): entries on mailboxes and on the server. Names are
    lowercase with their /private or /shared prefix; values are octets."""

    def get_entries(
        self, account_id: int, mailbox_id: int | None, names: Sequence[str], *,
        descendants: bool = False,
    ) -> dict[str, bytes]:
        """The stored entries named, and with `descendants` every entry below them.
        `mailbox_id` None: the server's entries as the account sees them (its own
        /private ones and the server's /shared ones)."""
        ...

    def entries_of_mailboxes(
        self, mailbox_ids: Sequence[int], names: Sequence[str], *, descendants: bool = False
    ) -> dict[int, dict[str, bytes]]:
        """get_entries for many mailboxes in one query (LIST RETURN (METADATA ...))."""
        ...

    def set_entries(
        self, account_id: int, mailbox_id: int | None, values: Mapping[str, bytes | None], *,
        max_entries: int,
    ) -> None:
        """SETMETADATA: set every entry (None removes it) or none. Raises NotFound when
        the mailbox is not the account's, LimitReached when a target (a mailbox, the
        account's server entries, the server's shared ones) would hold more than
        `max_entries` entries. Entries go with their mailbox and their account."""
        ...


class UrlAuthKeys(Protocol):
    """The mailbox access keys URLAUTH signs with (RFC 4467 3); IMAP GENURLAUTH, RESETKEY,
    URLFETCH and SMTP BURL read them."""

    def access_key(self, mailbox_id: int, *, create: bool) -> bytes | None:
        """The mailbox's key; with `create`, one is made when it has none yet."""
        ...

    def reset_keys(self, mailbox_ids: list[int]) -> None:
        """Forget the keys of these mailboxes (RFC 4467 4: RESETKEY), so every URL made
        with them stops working; the next GENURLAUTH makes a new key."""
        ...


class AuthFailures(Protocol):
    """Failed logins the shared limiter (auth/limits.py) counts, per scope ("ip",
    "account", "checks") and key, at Unix times; every worker and host sees the same."""

    def add(self, scope: str, key: str, at: float, *, since: float) -> int:
        """Record one failure at `at`, forget the key's before `since`; return how many
        the key has now."""
        ...

    def count(self, scope: str, key: str, *, since: float) -> int: ...

    def clear(self, scope: str, key: str) -> int:
        """Forget every failure of the key; return how many there were."""
        ...

    def clear_prefix(self, scope: str, prefix: str) -> int:
        """Forget the failures of every key starting with `prefix`."""
        ...

    def windows(self, *, since: float) -> list[tuple[str, str, list[float]]]:
        """(scope, key, failure times ascending) of every key with failures since."""
        ...

    def prune(self, *, before: float) -> int:
        """Forget every failure before `before`; return how many."""
        ...


class Integrity(Protocol):
    """`postel check`: blobs against rows, UID and MODSEQ counters, rows without their
    parent, stale temp files; `repair` fixes only what cannot lose anything."""

    def check(
        self, *, repair: bool = False, stale_after: float = 3600.0,
        progress: Progress = no_progress,
    ) -> CheckReport: ...


class Backups(Protocol):
    """`postel backup` / `postel restore`: every row at one snapshot plus the blobs they
    name, with a manifest of SHA-256s; restore refuses a changed backup or a used store.
    Both raise `integrity.BackupError`."""

    def backup(self, target: Path, progress: Progress = no_progress) -> BackupSummary: ...

    def restore(self, source: Path, progress: Progress = no_progress) -> BackupSummary: ...


class Store(Protocol):
    """The whole store: its parts, the message bodies, and the commit listeners."""

    @property
    def mail(self) -> Mailboxes: ...

    @property
    def directory(self) -> Directory: ...

    @property
    def queue(self) -> Outbound: ...

    @property
    def dkim(self) -> DkimKeys: ...

    @property
    def web(self) -> WebState: ...

    @property
    def webmail(self) -> WebmailStore: ...

    @property
    def metadata(self) -> MetadataEntries: ...

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def urlauth(self) -> UrlAuthKeys: ...

    @property
    def auth_failures(self) -> AuthFailures: ...

    @property
    def integrity(self) -> Integrity: ...

    @property
    def backups(self) -> Backups: ...

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Register a callback that receives the changes of every committed write."""
        ...

    def close(self) -> None: ...
