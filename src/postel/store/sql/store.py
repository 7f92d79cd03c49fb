"""The store on SQLAlchemy Core: one implementation of the mail rules for both backends.

Backend differences are confined to engine set-up (``SqliteStore``: WAL, one writer at a
time; ``PostgresStore``: row locks) and are small on purpose: every rule about UIDs,
MODSEQs, delivery and expunge lives once, here.

Methods block (SQL and fsync); asyncio callers run them in a worker thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from postel.mail.mime import ParsedMessage
from postel.store.blobs import BlobStore
from postel.store.model import (
    DEFAULT_MAILBOXES,
    Account,
    Alias,
    BlobRef,
    Change,
    CredentialsChanged,
    DeliveredMessage,
    Domain,
    Flags,
    FlagsChanged,
    Mailbox,
    MailboxChanged,
    MailboxChanges,
    MessageAdded,
    MessageMeta,
    MessagesExpunged,
    OutboundItem,
    Role,
)
from postel.store.sql import schema as t
from postel.store.sql.groupcommit import GroupCommitter

log = logging.getLogger("postel.store")


class StoreError(Exception):
    """A request the store refuses, with a message fit for an operator or a user."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


NO_FLAGS = Flags()
T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _domain_of(key: str) -> str:
    return key.rpartition("@")[2]


class SqlStore:
    def __init__(self, engine: Engine, blobs: BlobStore) -> None:
        self.engine = engine
        self.blobs = blobs
        self._listeners: list[Callable[[Sequence[Change]], None]] = []

    # -- plumbing ---------------------------------------------------------------------

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Register a callback that receives the changes of every committed write."""
        self._listeners.append(listener)

    def _write_lock(self) -> AbstractContextManager[Any]:
        return nullcontext()

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, list[Change]]]:
        """A write transaction; the changes appended to the list are published after commit."""
        changes: list[Change] = []
        with self._write_lock(), self.engine.begin() as conn:
            yield conn, changes
        if changes:
            self._publish(changes)

    def _group_write(self, work: Callable[[Connection, list[Change]], T]) -> T:
        """A write that may share its transaction with concurrent ones (see SqliteStore).
        `work` may raise StoreError only before it writes anything."""
        with self._write() as (conn, changes):
            return work(conn, changes)

    def _publish(self, changes: list[Change]) -> None:
        for listener in self._listeners:
            # Committed already: a listener's failure must not turn the write into an
            # error (SMTP would answer 4xx for stored mail and get it sent again), and a
            # lost hint loses nothing because subscribers re-read the store.
            try:
                listener(changes)
            except Exception:
                log.exception("commit listener %r failed", listener)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def _insert_new(conn: Connection, statement: Any, exists: str) -> CursorResult[Any]:
        """Insert a row whose unique key was just checked to be free. Without a store-wide
        write lock (PostgreSQL) a concurrent writer may have taken it since: that is the
        same AlreadyExists, not a raw SQL error."""
        try:
            return conn.execute(statement)
        except IntegrityError:
            raise AlreadyExists(exists) from None

    # -- domains ----------------------------------------------------------------------

    def add_domain(self, name: str) -> Domain:
        name = name.lower().rstrip(".")
        with self._write() as (conn, _):
            if conn.execute(select(t.domains.c.id).where(t.domains.c.name == name)).first():
                raise AlreadyExists(f"domain {name} already exists")
            created = now()
            result = self._insert_new(
                conn, insert(t.domains).values(name=name, created_at=created),
                f"domain {name} already exists",
            )
            return Domain(_new_id(result), name, created)

    def get_domain(self, name: str) -> Domain | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.domains).where(t.domains.c.name == name.lower().rstrip("."))
            ).first()
        return Domain(row.id, row.name, row.created_at) if row else None

    def list_domains(self) -> list[Domain]:
        with self._read() as conn:
            rows = conn.execute(select(t.domains).order_by(t.domains.c.name)).all()
        return [Domain(r.id, r.name, r.created_at) for r in rows]

    def remove_domain(self, name: str) -> None:
        name = name.lower().rstrip(".")
        with self._write() as (conn, _):
            domain_id = conn.execute(
                select(t.domains.c.id).where(t.domains.c.name == name)
            ).scalar()
            if domain_id is None:
                raise NotFound(f"domain {name} does not exist")
            users = conn.execute(
                select(func.count()).where(t.accounts.c.domain_id == domain_id)
            ).scalar_one()
            if users:
                raise StoreError(f"domain {name} still has {users} user(s); remove them first")
            conn.execute(delete(t.aliases).where(t.aliases.c.domain_id == domain_id))
            conn.execute(delete(t.domains).where(t.domains.c.id == domain_id))

    def is_local_domain(self, name: str) -> bool:
        return self.get_domain(name) is not None

    # -- accounts ---------------------------------------------------------------------

    @staticmethod
    def _account(row: Any) -> Account:
        return Account(
            id=row.id,
            domain_id=row.domain_id,
            email=row.email,
            password_hash=row.password_hash,
            role=Role(row.role),
            backup_email=row.backup_email,
            display_name=row.display_name,
            quota_bytes=row.quota_bytes,
            disabled=bool(row.disabled),
            created_at=row.created_at,
            password_changed_at=row.password_changed_at,
        )

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
        domain = _domain_of(email)
        with self._write() as (conn, _):
            domain_id = conn.execute(
                select(t.domains.c.id).where(t.domains.c.name == domain)
            ).scalar()
            if domain_id is None:
                raise NotFound(f"domain {domain} is not hosted here; add it first")
            if conn.execute(select(t.accounts.c.id).where(t.accounts.c.email == email)).first():
                raise AlreadyExists(f"user {email} already exists")
            if conn.execute(select(t.aliases.c.id).where(t.aliases.c.source == email)).first():
                raise AlreadyExists(f"{email} is already an alias")
            created = now()
            result = self._insert_new(
                conn,
                insert(t.accounts).values(
                    domain_id=domain_id,
                    email=email,
                    password_hash=password_hash,
                    role=role.value,
                    backup_email=backup_email,
                    display_name=display_name,
                    quota_bytes=quota_bytes,
                    disabled=False,
                    created_at=created,
                    password_changed_at=created,
                ),
                f"user {email} already exists",
            )
            account_id = _new_id(result)
            for name, special_use in DEFAULT_MAILBOXES:
                self._insert_mailbox(conn, account_id, name, special_use)
            row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).one()
            return self._account(row)

    def get_account(self, email: str) -> Account | None:
        with self._read() as conn:
            row = conn.execute(select(t.accounts).where(t.accounts.c.email == email)).first()
        return self._account(row) if row else None

    def get_account_by_id(self, account_id: int) -> Account | None:
        with self._read() as conn:
            row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).first()
        return self._account(row) if row else None

    def list_accounts(self, domain: str | None = None) -> list[Account]:
        query = select(t.accounts).order_by(t.accounts.c.email)
        if domain is not None:
            query = query.join(t.domains).where(t.domains.c.name == domain.lower().rstrip("."))
        with self._read() as conn:
            return [self._account(r) for r in conn.execute(query).all()]

    def update_account(self, email: str, **values: Any) -> Account:
        """Change password_hash, backup_email, role, display_name, quota_bytes or disabled."""
        allowed = {"password_hash", "backup_email", "role", "display_name", "quota_bytes",
                   "disabled"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
        if "role" in values:
            values["role"] = Role(values["role"]).value
        if "password_hash" in values:
            values["password_changed_at"] = now()
        with self._write() as (conn, changes):
            result = conn.execute(
                update(t.accounts).where(t.accounts.c.email == email).values(**values)
            )
            if result.rowcount == 0:
                raise NotFound(f"user {email} does not exist")
            row = conn.execute(select(t.accounts).where(t.accounts.c.email == email)).one()
            if "password_hash" in values or values.get("disabled"):
                changes.append(CredentialsChanged(row.id))
            return self._account(row)

    def remove_account(self, email: str) -> None:
        """Delete an account with its mailboxes and messages (blobs are collected later)."""
        with self._write() as (conn, changes):
            account_id = conn.execute(
                select(t.accounts.c.id).where(t.accounts.c.email == email)
            ).scalar()
            if account_id is None:
                raise NotFound(f"user {email} does not exist")
            box_ids = select(t.mailboxes.c.id).where(t.mailboxes.c.account_id == account_id)
            conn.execute(delete(t.messages).where(t.messages.c.mailbox_id.in_(box_ids)))
            conn.execute(delete(t.expunged).where(t.expunged.c.mailbox_id.in_(box_ids)))
            conn.execute(delete(t.mailboxes).where(t.mailboxes.c.account_id == account_id))
            conn.execute(
                update(t.outbound_queue)
                .where(t.outbound_queue.c.account_id == account_id)
                .values(account_id=None)
            )
            # Web sign-ins and reset links die with the account (the CLI removes users
            # without the web layer, and a foreign key would refuse the delete).
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.account_id == account_id))
            conn.execute(
                delete(t.password_reset_tokens).where(
                    t.password_reset_tokens.c.account_id == account_id
                )
            )
            conn.execute(delete(t.accounts).where(t.accounts.c.id == account_id))
            changes.append(CredentialsChanged(account_id))

    def account_usage(self, account_id: int) -> int:
        """Bytes stored in all of an account's mailboxes (for quotas)."""
        with self._read() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(t.messages.c.size), 0))
                .join(t.mailboxes)
                .where(t.mailboxes.c.account_id == account_id)
            ).scalar_one()
        return int(total)

    def addresses_of(self, account: Account) -> set[str]:
        """The lookup keys an account may send as: its own, and aliases that point at it
        directly (a catch-all does not let a user send as every address of the domain)."""
        with self._read() as conn:
            sources = conn.execute(
                select(t.aliases.c.source).where(t.aliases.c.destination == account.email)
            ).scalars().all()
        return {account.email, *(s for s in sources if not s.startswith("@"))}

    # -- aliases ----------------------------------------------------------------------

    def add_alias(self, source: str, destination: str) -> Alias:
        """`source` is a lookup key or "@domain" (catch-all); the domain must be local."""
        domain = _domain_of(source)
        with self._write() as (conn, _):
            domain_id = conn.execute(
                select(t.domains.c.id).where(t.domains.c.name == domain)
            ).scalar()
            if domain_id is None:
                raise NotFound(f"domain {domain} is not hosted here; add it first")
            if conn.execute(select(t.accounts.c.id).where(t.accounts.c.email == source)).first():
                raise AlreadyExists(f"{source} is a user; an alias cannot shadow it")
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(t.aliases).values(
                            domain_id=domain_id, source=source, destination=destination
                        )
                    )
            except IntegrityError:
                raise AlreadyExists(f"alias {source} -> {destination} already exists") from None
        return Alias(source, destination)

    def list_aliases(self, domain: str | None = None) -> list[Alias]:
        query = select(t.aliases.c.source, t.aliases.c.destination).order_by(
            t.aliases.c.source, t.aliases.c.destination
        )
        if domain is not None:
            query = query.join(t.domains).where(t.domains.c.name == domain.lower().rstrip("."))
        with self._read() as conn:
            return [Alias(r.source, r.destination) for r in conn.execute(query).all()]

    def remove_alias(self, source: str, destination: str) -> None:
        with self._write() as (conn, _):
            result = conn.execute(
                delete(t.aliases).where(
                    and_(t.aliases.c.source == source, t.aliases.c.destination == destination)
                )
            )
            if result.rowcount == 0:
                raise NotFound(f"alias {source} -> {destination} does not exist")

    def resolve(self, key: str, *, max_depth: int = 8) -> tuple[list[Account], list[str]] | None:
        """Expand a recipient lookup key in a local domain.

        Returns (local accounts, remote addresses), or None when nothing is there: not a
        user, not an alias, and no catch-all. Aliases may point at aliases, up to
        `max_depth` levels (a loop ends there instead of running forever). A user's own
        address wins over a catch-all, as everyone expects.
        """
        accounts: dict[int, Account] = {}
        remote: list[str] = []
        found = False
        with self._read() as conn:
            pending = [(key, 0)]
            seen: set[str] = set()
            while pending:
                address, depth = pending.pop()
                if address in seen:
                    continue
                seen.add(address)
                row = conn.execute(
                    select(t.accounts).where(t.accounts.c.email == address)
                ).first()
                if row is not None:
                    found = True
                    if not row.disabled:
                        accounts[row.id] = self._account(row)
                    continue
                destinations = conn.execute(
                    select(t.aliases.c.destination).where(t.aliases.c.source == address)
                ).scalars().all()
                if not destinations and depth == 0:
                    destinations = conn.execute(
                        select(t.aliases.c.destination).where(
                            t.aliases.c.source == "@" + _domain_of(address)
                        )
                    ).scalars().all()
                if destinations:
                    found = True
                elif depth > 0:
                    # An alias target with nothing behind it: targets in other domains are
                    # forwarded; local ones that are not users are dropped.
                    if not self._domain_exists(conn, _domain_of(address)):
                        remote.append(address)
                    continue
                if depth >= max_depth:
                    continue
                for destination in destinations:
                    pending.append((destination, depth + 1))
        if not found:
            return None
        return list(accounts.values()), sorted(set(remote))

    @staticmethod
    def _domain_exists(conn: Connection, domain: str) -> bool:
        return conn.execute(
            select(t.domains.c.id).where(t.domains.c.name == domain)
        ).first() is not None

    # -- mailboxes --------------------------------------------------------------------

    @staticmethod
    def _mailbox(row: Any) -> Mailbox:
        return Mailbox(
            id=row.id,
            account_id=row.account_id,
            name=row.name,
            special_use=row.special_use,
            uidvalidity=row.uidvalidity,
            uidnext=row.uidnext,
            highestmodseq=row.highestmodseq,
            first_recent_uid=row.first_recent_uid,
            subscribed=bool(row.subscribed),
        )

    def _new_uidvalidity(self, conn: Connection) -> int:
        # RFC 3501 2.3.1.1: a mailbox re-created under the same name must get a new
        # UIDVALIDITY. Seconds since the epoch, but always above the last value handed out,
        # which is stored (counters table) so that no other process or host, and no
        # restart, can hand out a value again. The UPDATE takes the row lock on PostgreSQL.
        # Fits in 32 bits until 2106.
        clock = int(time.time())
        counter = t.counters.c.value
        value = conn.execute(
            update(t.counters)
            .where(t.counters.c.name == "uidvalidity")
            .values(value=case((counter + 1 > clock, counter + 1), else_=clock))
            .returning(counter)
        ).scalar()
        if value is None:
            # The row is gone (emptied by hand): start again above every value in use.
            highest = conn.execute(select(func.max(t.mailboxes.c.uidvalidity))).scalar() or 0
            value = max(clock, int(highest) + 1)
            conn.execute(insert(t.counters).values(name="uidvalidity", value=value))
        return int(value)

    def _insert_mailbox(
        self, conn: Connection, account_id: int, name: str, special_use: str | None
    ) -> int:
        result = conn.execute(
            insert(t.mailboxes).values(
                account_id=account_id,
                name=name,
                special_use=special_use,
                uidvalidity=self._new_uidvalidity(conn),
                uidnext=1,
                highestmodseq=1,
                first_recent_uid=1,
                subscribed=True,
                created_at=now(),
            )
        )
        return _new_id(result)

    def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        with self._read() as conn:
            rows = conn.execute(
                select(t.mailboxes)
                .where(t.mailboxes.c.account_id == account_id)
                .order_by(t.mailboxes.c.id)
            ).all()
        return [self._mailbox(r) for r in rows]

    def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        if name.upper() == "INBOX":
            name = "INBOX"
        with self._read() as conn:
            row = conn.execute(
                select(t.mailboxes).where(
                    and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name)
                )
            ).first()
        return self._mailbox(row) if row else None

    def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        with self._read() as conn:
            row = conn.execute(select(t.mailboxes).where(t.mailboxes.c.id == mailbox_id)).first()
        return self._mailbox(row) if row else None

    def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        if name.upper() == "INBOX":
            raise AlreadyExists("INBOX always exists")
        with self._write() as (conn, changes):
            exists = conn.execute(
                select(t.mailboxes.c.id).where(
                    and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name)
                )
            ).first()
            if exists:
                raise AlreadyExists(f"mailbox {name} already exists")
            try:
                mailbox_id = self._insert_mailbox(conn, account_id, name, special_use)
            except IntegrityError:  # another session's CREATE since the check (PostgreSQL)
                raise AlreadyExists(f"mailbox {name} already exists") from None
            changes.append(MailboxChanged(account_id, mailbox_id))
            row = conn.execute(select(t.mailboxes).where(t.mailboxes.c.id == mailbox_id)).one()
            return self._mailbox(row)

    # -- messages ---------------------------------------------------------------------

    @staticmethod
    def _message_values(parsed: ParsedMessage) -> dict[str, Any]:
        return {
            "envelope": json.dumps(parsed.envelope, ensure_ascii=False),
            "mime": json.dumps(parsed.body.to_json(), ensure_ascii=False),
            "headers": json.dumps(parsed.headers, ensure_ascii=False),
            "subject": parsed.subject,
            "base_subject": parsed.base_subject,
            "sent_date": parsed.sent_date,
            "message_id": parsed.message_id,
            "in_reply_to": parsed.in_reply_to,
            "references": " ".join(parsed.references),
            "from_sort": parsed.from_sort,
            "to_sort": parsed.to_sort,
            "cc_sort": parsed.cc_sort,
            "display_from": parsed.display_from,
            "display_to": parsed.display_to,
            "has_attachments": parsed.has_attachments,
        }

    @staticmethod
    def _flag_values(flags: Flags) -> dict[str, Any]:
        return {
            "seen": flags.seen,
            "answered": flags.answered,
            "flagged": flags.flagged,
            "deleted": flags.deleted,
            "draft": flags.draft,
            "keywords": " ".join(sorted(set(flags.keywords))),
        }

    def _allocate(self, conn: Connection, mailbox_id: int, count: int = 1) -> tuple[int, int]:
        """Take `count` UIDs and one MODSEQ from a mailbox; returns (first uid, modseq).

        The UPDATE ... RETURNING takes the row lock on PostgreSQL, so concurrent writers to
        one mailbox serialise here and UIDs stay strictly ascending and never reused.
        """
        row = conn.execute(
            update(t.mailboxes)
            .where(t.mailboxes.c.id == mailbox_id)
            .values(
                uidnext=t.mailboxes.c.uidnext + count,
                highestmodseq=t.mailboxes.c.highestmodseq + 1,
            )
            .returning(t.mailboxes.c.uidnext, t.mailboxes.c.highestmodseq)
        ).one()
        return int(row.uidnext) - count, int(row.highestmodseq)

    @staticmethod
    def _lock_mailbox(conn: Connection, mailbox_id: int) -> int:
        """Take the mailbox row lock before reading messages to change; returns the owner.

        A write that reads flags or \\Deleted messages first and locks later (at the MODSEQ
        bump) works on a stale read on PostgreSQL: two STOREs lose one another's flags, and
        two EXPUNGEs record the same UIDs twice. SQLite's write lock already serialises.
        """
        return int(
            conn.execute(
                select(t.mailboxes.c.account_id)
                .where(t.mailboxes.c.id == mailbox_id)
                .with_for_update()
            ).scalar_one()
        )

    def _bump_modseq(self, conn: Connection, mailbox_id: int) -> int:
        return int(
            conn.execute(
                update(t.mailboxes)
                .where(t.mailboxes.c.id == mailbox_id)
                .values(highestmodseq=t.mailboxes.c.highestmodseq + 1)
                .returning(t.mailboxes.c.highestmodseq)
            ).scalar_one()
        )

    def deliver(
        self,
        blob: BlobRef,
        parsed: ParsedMessage,
        targets: Sequence[tuple[int, str]],
        *,
        flags: Flags = NO_FLAGS,
        internal_date: datetime | None = None,
    ) -> list[DeliveredMessage]:
        """Store one body in several (account, mailbox name) targets in one transaction.

        The blob must already be durable (BlobWriter.commit). A missing mailbox falls back
        to INBOX, so a user who deleted a folder that a rule names still gets the mail.
        """
        received = internal_date or now()
        values = self._message_values(parsed)

        def work(conn: Connection, changes: list[Change]) -> list[DeliveredMessage]:
            delivered: list[DeliveredMessage] = []
            boxes: list[tuple[int, int]] = []
            for account_id, name in targets:
                row = conn.execute(
                    select(t.mailboxes.c.id).where(
                        and_(
                            t.mailboxes.c.account_id == account_id,
                            t.mailboxes.c.name.in_([name, "INBOX"]),
                        )
                    ).order_by((t.mailboxes.c.name == "INBOX").asc())
                ).first()
                if row is None:
                    raise NotFound(f"account {account_id} has no mailbox {name}")
                boxes.append((account_id, row.id))
            # One lock order for every writer: mailbox id ascending (no deadlocks).
            for account_id, mailbox_id in sorted(set(boxes), key=lambda b: b[1]):
                uid, modseq = self._allocate(conn, mailbox_id)
                conn.execute(
                    insert(t.messages).values(
                        mailbox_id=mailbox_id,
                        uid=uid,
                        modseq=modseq,
                        internal_date=received,
                        saved_date=now(),
                        size=blob.size,
                        blob_sha256=blob.sha256,
                        **self._flag_values(flags),
                        **values,
                    )
                )
                delivered.append(DeliveredMessage(account_id, mailbox_id, uid, modseq))
                changes.append(MessageAdded(account_id, mailbox_id, uid, modseq))
            return delivered

        return self._group_write(work)

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
        box = self.get_mailbox_by_id(mailbox_id)
        if box is None or box.account_id != account_id:
            raise NotFound("no such mailbox")
        return self.deliver(
            blob, parsed, [(account_id, box.name)], flags=flags, internal_date=internal_date
        )[0]

    @staticmethod
    def _meta(row: Any) -> MessageMeta:
        keywords = tuple(row.keywords.split()) if row.keywords else ()
        return MessageMeta(
            id=row.id,
            mailbox_id=row.mailbox_id,
            uid=row.uid,
            modseq=row.modseq,
            flags=Flags(
                bool(row.seen), bool(row.answered), bool(row.flagged), bool(row.deleted),
                bool(row.draft), keywords,
            ),
            internal_date=row.internal_date,
            size=row.size,
            blob_sha256=row.blob_sha256,
        )

    _META_COLUMNS = (
        t.messages.c.id, t.messages.c.mailbox_id, t.messages.c.uid, t.messages.c.modseq,
        t.messages.c.seen, t.messages.c.answered, t.messages.c.flagged, t.messages.c.deleted,
        t.messages.c.draft, t.messages.c.keywords, t.messages.c.internal_date,
        t.messages.c.size, t.messages.c.blob_sha256,
    )

    def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        """Every message of a mailbox in UID order (sequence number = index + 1)."""
        with self._read() as conn:
            rows = conn.execute(
                select(*self._META_COLUMNS)
                .where(t.messages.c.mailbox_id == mailbox_id)
                .order_by(t.messages.c.uid)
            ).all()
        return [self._meta(r) for r in rows]

    def get_message_fields(self, mailbox_id: int, uid: int) -> dict[str, Any] | None:
        """All stored columns of one message, JSON columns decoded (for FETCH)."""
        with self._read() as conn:
            row = conn.execute(
                select(t.messages).where(
                    and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.uid == uid)
                )
            ).first()
        if row is None:
            return None
        fields = dict(row._mapping)
        for key in ("envelope", "mime", "headers"):
            fields[key] = json.loads(fields[key])
        return fields

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
        if mode not in ("replace", "add", "remove"):
            raise ValueError(f"bad mode {mode}")
        changed: list[MessageMeta] = []
        failed: list[int] = []
        with self._write() as (conn, changes):
            account_id = self._lock_mailbox(conn, mailbox_id)
            rows = conn.execute(
                select(*self._META_COLUMNS).where(
                    and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.uid.in_(uids))
                ).order_by(t.messages.c.uid)
            ).all()
            updates: list[tuple[MessageMeta, Flags]] = []
            for row in rows:
                meta = self._meta(row)
                if unchanged_since is not None and meta.modseq > unchanged_since:
                    failed.append(meta.uid)
                    continue
                new = _combine(meta.flags, flags, mode)
                if new != meta.flags:
                    updates.append((meta, new))
            if updates:
                modseq = self._bump_modseq(conn, mailbox_id)
                for meta, new in updates:
                    conn.execute(
                        update(t.messages)
                        .where(t.messages.c.id == meta.id)
                        .values(modseq=modseq, **self._flag_values(new))
                    )
                    changed.append(
                        MessageMeta(meta.id, meta.mailbox_id, meta.uid, modseq, new,
                                    meta.internal_date, meta.size, meta.blob_sha256)
                    )
                    changes.append(FlagsChanged(account_id, mailbox_id, meta.uid, modseq, new))
        return changed, failed

    def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages: the given UIDs, or every \\Deleted one. Returns removed UIDs."""
        with self._write() as (conn, changes):
            account_id = self._lock_mailbox(conn, mailbox_id)
            condition = t.messages.c.mailbox_id == mailbox_id
            if uids is None:
                condition = and_(condition, t.messages.c.deleted == True)  # noqa: E712
            else:
                condition = and_(condition, t.messages.c.uid.in_(uids))
            removed = sorted(
                conn.execute(select(t.messages.c.uid).where(condition)).scalars().all()
            )
            if not removed:
                return []
            modseq = self._bump_modseq(conn, mailbox_id)
            conn.execute(delete(t.messages).where(condition))
            conn.execute(
                insert(t.expunged),
                [{"mailbox_id": mailbox_id, "uid": uid, "modseq": modseq} for uid in removed],
            )
            changes.append(MessagesExpunged(account_id, mailbox_id, tuple(removed), modseq))
        return removed

    def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        """Messages added or changed, and UIDs expunged, after `modseq` (IDLE, QRESYNC)."""
        with self._read() as conn:
            box = conn.execute(select(t.mailboxes).where(t.mailboxes.c.id == mailbox_id)).one()
            rows = conn.execute(
                select(*self._META_COLUMNS)
                .where(and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.modseq > modseq))
                .order_by(t.messages.c.uid)
            ).all()
            gone = conn.execute(
                select(t.expunged.c.uid)
                .where(and_(t.expunged.c.mailbox_id == mailbox_id, t.expunged.c.modseq > modseq))
                .order_by(t.expunged.c.uid)
            ).scalars().all()
        return MailboxChanges(self._mailbox(box), [self._meta(r) for r in rows], list(gone))

    def mailbox_counts(self, mailbox_id: int) -> tuple[int, int, int]:
        """(messages, unseen, bytes) for STATUS."""
        with self._read() as conn:
            row = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((t.messages.c.seen == False, 1), else_=0)), 0),  # noqa: E712
                    func.coalesce(func.sum(t.messages.c.size), 0),
                ).where(t.messages.c.mailbox_id == mailbox_id)
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    # -- outbound queue ---------------------------------------------------------------

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
    ) -> list[int]:
        """Queue a message for remote recipients: one row per destination domain."""
        by_domain: dict[str, list[str]] = {}
        for rcpt in recipients:
            by_domain.setdefault(_domain_of(rcpt).lower(), []).append(rcpt)
        ids: list[int] = []
        created = now()
        with self._write() as (conn, _):
            for domain, rcpts in sorted(by_domain.items()):
                result = conn.execute(
                    insert(t.outbound_queue).values(
                        queue_id=queue_id,
                        account_id=account_id,
                        blob_sha256=blob.sha256,
                        body_offset=body_offset,
                        mail_from=mail_from,
                        domain=domain,
                        recipients=json.dumps(rcpts, ensure_ascii=False),
                        smtputf8=smtputf8,
                        body_8bit=body_8bit,
                        size=blob.size - body_offset,
                        state="queued",
                        attempts=0,
                        next_attempt_at=created,
                        created_at=created,
                    )
                )
                ids.append(_new_id(result))
        return ids

    def list_queue(self) -> list[OutboundItem]:
        with self._read() as conn:
            rows = conn.execute(select(t.outbound_queue).order_by(t.outbound_queue.c.id)).all()
        return [
            OutboundItem(
                id=r.id, queue_id=r.queue_id, blob_sha256=r.blob_sha256,
                body_offset=r.body_offset, mail_from=r.mail_from, domain=r.domain,
                recipients=json.loads(r.recipients), size=r.size, state=r.state,
                attempts=r.attempts, next_attempt_at=r.next_attempt_at,
                last_error=r.last_error, created_at=r.created_at,
            )
            for r in rows
        ]

    def referenced_blobs(self) -> set[str]:
        """Every blob a message or queue row refers to (for garbage collection)."""
        with self._read() as conn:
            found = set(conn.execute(select(t.messages.c.blob_sha256).distinct()).scalars())
            found |= set(
                conn.execute(select(t.outbound_queue.c.blob_sha256).distinct()).scalars()
            )
        return found

    # -- web --------------------------------------------------------------------------
    # Sessions, reset tokens, CAPTCHA challenges and the audit log of the web pages.
    # Tokens arrive here already hashed (SHA-256 hex); the store never sees a raw one.

    def web_session_create(
        self, token_hash: str, account_id: int, ip: str, user_agent: str
    ) -> None:
        at = now()
        with self._write() as (conn, _):
            conn.execute(
                insert(t.web_sessions).values(
                    token_hash=token_hash, account_id=account_id, created_at=at,
                    last_seen_at=at, ip=ip[:64], user_agent=user_agent[:500],
                )
            )

    def web_session_get(self, token_hash: str) -> tuple[int, datetime, datetime] | None:
        """(account id, created at, last seen at) of a session, or None."""
        with self._read() as conn:
            row = conn.execute(
                select(t.web_sessions).where(t.web_sessions.c.token_hash == token_hash)
            ).first()
        return (row.account_id, row.created_at, row.last_seen_at) if row else None

    def web_session_touch(self, token_hash: str) -> None:
        with self._write() as (conn, _):
            conn.execute(
                update(t.web_sessions)
                .where(t.web_sessions.c.token_hash == token_hash)
                .values(last_seen_at=now())
            )

    def web_session_delete(self, token_hash: str) -> None:
        with self._write() as (conn, _):
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.token_hash == token_hash))

    def web_sessions_delete_for_account(self, account_id: int, *, keep: str = "") -> int:
        """Sign an account out everywhere (but the session `keep`); returns how many."""
        with self._write() as (conn, _):
            result = conn.execute(
                delete(t.web_sessions).where(
                    and_(
                        t.web_sessions.c.account_id == account_id,
                        t.web_sessions.c.token_hash != keep,
                    )
                )
            )
            return int(result.rowcount)

    def web_sessions_count(self, account_id: int) -> int:
        with self._read() as conn:
            return int(conn.execute(
                select(func.count()).select_from(t.web_sessions)
                .where(t.web_sessions.c.account_id == account_id)
            ).scalar_one())

    def web_expire(self, idle_before: datetime, created_before: datetime) -> None:
        """Drop idle or too old sessions, expired reset tokens and CAPTCHA challenges."""
        at = now()
        with self._write() as (conn, _):
            conn.execute(
                delete(t.web_sessions).where(
                    (t.web_sessions.c.last_seen_at < idle_before)
                    | (t.web_sessions.c.created_at < created_before)
                )
            )
            conn.execute(
                delete(t.password_reset_tokens).where(t.password_reset_tokens.c.expires_at < at)
            )
            conn.execute(
                delete(t.captcha_challenges).where(t.captcha_challenges.c.expires_at < at)
            )

    def web_forget_account(self, account_id: int) -> None:
        """Remove an account's sessions and reset tokens (before remove_account)."""
        with self._write() as (conn, _):
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.account_id == account_id))
            conn.execute(
                delete(t.password_reset_tokens).where(
                    t.password_reset_tokens.c.account_id == account_id
                )
            )

    def reset_token_create(self, token_hash: str, account_id: int, expires_at: datetime) -> None:
        with self._write() as (conn, _):
            conn.execute(
                insert(t.password_reset_tokens).values(
                    token_hash=token_hash, account_id=account_id, created_at=now(),
                    expires_at=expires_at,
                )
            )

    def reset_token_account(self, token_hash: str) -> int | None:
        """The account of a reset token that is unused and unexpired, else None."""
        with self._read() as conn:
            return conn.execute(
                select(t.password_reset_tokens.c.account_id).where(
                    and_(
                        t.password_reset_tokens.c.token_hash == token_hash,
                        t.password_reset_tokens.c.used_at.is_(None),
                        t.password_reset_tokens.c.expires_at > now(),
                    )
                )
            ).scalar()

    def reset_token_use(self, token_hash: str, password_hash: str) -> Account | None:
        """Spend a valid token and set the new password in one transaction.

        The conditional UPDATE makes the token single-use even under concurrent requests;
        every other outstanding token of the account is spent too, and every web session
        of the account is signed out.
        """
        at = now()
        tokens = t.password_reset_tokens
        with self._write() as (conn, changes):
            account_id = conn.execute(
                select(tokens.c.account_id).where(tokens.c.token_hash == token_hash)
            ).scalar()
            if account_id is None:
                return None
            result = conn.execute(
                update(tokens)
                .where(
                    and_(
                        tokens.c.token_hash == token_hash,
                        tokens.c.used_at.is_(None),
                        tokens.c.expires_at > at,
                    )
                )
                .values(used_at=at)
            )
            if result.rowcount != 1:
                return None
            conn.execute(
                update(tokens)
                .where(and_(tokens.c.account_id == account_id, tokens.c.used_at.is_(None)))
                .values(used_at=at)
            )
            conn.execute(
                update(t.accounts)
                .where(t.accounts.c.id == account_id)
                .values(password_hash=password_hash, password_changed_at=at)
            )
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.account_id == account_id))
            row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).one()
            changes.append(CredentialsChanged(account_id))
            return self._account(row)

    def captcha_create(self, challenge_id: str, answer: str, expires_at: datetime) -> None:
        with self._write() as (conn, _):
            conn.execute(
                insert(t.captcha_challenges).values(
                    id=challenge_id, answer=answer, created_at=now(), expires_at=expires_at
                )
            )

    def captcha_get(self, challenge_id: str) -> str | None:
        """The answer of an unexpired challenge (to render it), without spending it."""
        with self._read() as conn:
            return conn.execute(
                select(t.captcha_challenges.c.answer).where(
                    and_(
                        t.captcha_challenges.c.id == challenge_id,
                        t.captcha_challenges.c.expires_at > now(),
                    )
                )
            ).scalar()

    def captcha_take(self, challenge_id: str) -> str | None:
        """Spend a challenge: it is deleted whatever the answer; None when expired/unknown."""
        with self._write() as (conn, _):
            row = conn.execute(
                select(t.captcha_challenges).where(t.captcha_challenges.c.id == challenge_id)
            ).first()
            if row is None:
                return None
            conn.execute(
                delete(t.captcha_challenges).where(t.captcha_challenges.c.id == challenge_id)
            )
        return str(row.answer) if row.expires_at > now() else None

    def audit_add(
        self, *, actor: str, ip: str, domain: str, action: str, target: str = "",
        detail: str = "",
    ) -> None:
        with self._write() as (conn, _):
            conn.execute(
                insert(t.audit_log).values(
                    at=now(), actor=actor, ip=ip[:64], domain=domain, action=action,
                    target=target, detail=detail,
                )
            )

    def audit_list(
        self, domain: str | None, offset: int = 0, limit: int = 50
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, newest-first rows) of one domain's audit log, or every domain's."""
        from sqlalchemy import true  # local: the shared import block belongs to others

        where = t.audit_log.c.domain == domain if domain is not None else true()
        with self._read() as conn:
            total = conn.execute(
                select(func.count()).select_from(t.audit_log).where(where)
            ).scalar_one()
            rows = conn.execute(
                select(t.audit_log).where(where).order_by(t.audit_log.c.id.desc())
                .offset(offset).limit(limit)
            ).all()
        return int(total), [dict(r._mapping) for r in rows]

    def web_search_accounts(
        self, domain: str, query: str = "", offset: int = 0, limit: int = 25
    ) -> tuple[int, list[Account]]:
        """(total, page) of a domain's accounts whose address or name contains `query`."""
        where = t.domains.c.name == domain.lower()
        if query:
            pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            where = and_(
                where,
                t.accounts.c.email.like(pattern, escape="\\")
                | func.lower(t.accounts.c.display_name).like(pattern, escape="\\"),
            )
        base = select(t.accounts).join(t.domains).where(where)
        with self._read() as conn:
            total = conn.execute(
                select(func.count()).select_from(base.subquery())
            ).scalar_one()
            rows = conn.execute(
                base.order_by(t.accounts.c.email).offset(offset).limit(limit)
            ).all()
        return int(total), [self._account(r) for r in rows]

    def web_domain_stats(self) -> list[tuple[Domain, int, int]]:
        """Every domain with its number of users and the bytes their messages take."""
        users = (
            select(t.accounts.c.domain_id, func.count().label("n"))
            .group_by(t.accounts.c.domain_id).subquery()
        )
        usage = (
            select(t.accounts.c.domain_id, func.sum(t.messages.c.size).label("bytes"))
            .select_from(t.accounts.join(t.mailboxes).join(t.messages))
            .group_by(t.accounts.c.domain_id).subquery()
        )
        query = (
            select(
                t.domains,
                func.coalesce(users.c.n, 0).label("users"),
                func.coalesce(usage.c.bytes, 0).label("bytes"),
            )
            .outerjoin(users, users.c.domain_id == t.domains.c.id)
            .outerjoin(usage, usage.c.domain_id == t.domains.c.id)
            .order_by(t.domains.c.name)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            (Domain(r.id, r.name, r.created_at), int(r.users), int(r.bytes)) for r in rows
        ]

    # -- imap -------------------------------------------------------------------------
    # Mailbox tree operations, \Recent, COPY/MOVE, MULTIAPPEND and batch reads for IMAP.

    def imap_claim_recent(self, mailbox_id: int) -> int:
        """RFC 3501 2.3.2 \\Recent: the caller takes every message no session has seen yet.
        Returns the first UID that is recent for the caller (messages from it up)."""
        with self._write() as (conn, _):
            row = conn.execute(
                select(t.mailboxes.c.first_recent_uid, t.mailboxes.c.uidnext)
                .where(t.mailboxes.c.id == mailbox_id)
                .with_for_update()
            ).one()
            if row.uidnext > row.first_recent_uid:
                conn.execute(
                    update(t.mailboxes)
                    .where(t.mailboxes.c.id == mailbox_id)
                    .values(first_recent_uid=row.uidnext)
                )
            return int(row.first_recent_uid)

    def imap_set_subscribed(self, account_id: int, name: str, subscribed: bool) -> bool:
        """SUBSCRIBE / UNSUBSCRIBE; False when the mailbox does not exist."""
        with self._write() as (conn, _):
            result = conn.execute(
                update(t.mailboxes)
                .where(and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name))
                .values(subscribed=subscribed)
            )
            return bool(result.rowcount)

    def imap_delete_mailbox(self, account_id: int, name: str) -> None:
        """DELETE: the mailbox and its messages go; inferior mailboxes stay (RFC 9051 6.3.4)."""
        if name == "INBOX":
            raise StoreError("INBOX cannot be deleted")
        with self._write() as (conn, changes):
            mailbox_id = conn.execute(
                select(t.mailboxes.c.id).where(
                    and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name)
                )
            ).scalar()
            if mailbox_id is None:
                raise NotFound(f"mailbox {name} does not exist")
            conn.execute(delete(t.messages).where(t.messages.c.mailbox_id == mailbox_id))
            conn.execute(delete(t.expunged).where(t.expunged.c.mailbox_id == mailbox_id))
            conn.execute(delete(t.mailboxes).where(t.mailboxes.c.id == mailbox_id))
            changes.append(MailboxChanged(account_id, mailbox_id))

    def imap_rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """RENAME with its inferiors (RFC 9051 6.3.6). Renaming INBOX moves its messages to
        a new mailbox and leaves INBOX, empty, in place."""
        with self._write() as (conn, changes):
            rows = conn.execute(
                select(t.mailboxes.c.id, t.mailboxes.c.name).where(
                    t.mailboxes.c.account_id == account_id
                )
            ).all()
            names = {r.name: r.id for r in rows}
            if old not in names:
                raise NotFound(f"mailbox {old} does not exist")
            if new in names or new == "INBOX":
                raise AlreadyExists(f"mailbox {new} already exists")
            if old == "INBOX":
                inbox = names["INBOX"]
                target = self._insert_mailbox(conn, account_id, new, None)
                uids = conn.execute(
                    select(t.messages.c.uid)
                    .where(t.messages.c.mailbox_id == inbox)
                    .order_by(t.messages.c.uid)
                ).scalars().all()
                if uids:
                    first, modseq = self._allocate(conn, target, len(uids))
                    for offset, uid in enumerate(uids):
                        conn.execute(
                            update(t.messages)
                            .where(and_(t.messages.c.mailbox_id == inbox,
                                        t.messages.c.uid == uid))
                            .values(mailbox_id=target, uid=first + offset, modseq=modseq)
                        )
                    gone = self._bump_modseq(conn, inbox)
                    conn.execute(
                        insert(t.expunged),
                        [{"mailbox_id": inbox, "uid": u, "modseq": gone} for u in uids],
                    )
                    changes.append(MessagesExpunged(account_id, inbox, tuple(uids), gone))
                changes.append(MailboxChanged(account_id, target))
                return
            prefix = old + "/"
            for name, mailbox_id in names.items():
                if name == old or name.startswith(prefix):
                    renamed = new + name[len(old):]
                    if renamed in names:
                        raise AlreadyExists(f"mailbox {renamed} already exists")
                    conn.execute(
                        update(t.mailboxes)
                        .where(t.mailboxes.c.id == mailbox_id)
                        .values(name=renamed)
                    )
                    changes.append(MailboxChanged(account_id, mailbox_id))

    def imap_copy(
        self, source_id: int, uids: Sequence[int], target_id: int, *, move: bool = False
    ) -> list[tuple[int, int]]:
        """COPY / MOVE in one transaction; returns (source uid, new uid) pairs in UID order
        (RFC 4315 COPYUID, RFC 6851 MOVE)."""
        pairs: list[tuple[int, int]] = []
        with self._write() as (conn, changes):
            # Lock both mailbox rows in id order first, so two opposite MOVEs cannot
            # deadlock on PostgreSQL (the one lock order of deliver()).
            accounts = {
                int(row.id): int(row.account_id)
                for row in conn.execute(
                    select(t.mailboxes.c.id, t.mailboxes.c.account_id)
                    .where(t.mailboxes.c.id.in_([source_id, target_id]))
                    .order_by(t.mailboxes.c.id)
                    .with_for_update()
                )
            }
            rows = conn.execute(
                select(t.messages)
                .where(and_(t.messages.c.mailbox_id == source_id, t.messages.c.uid.in_(uids)))
                .order_by(t.messages.c.uid)
            ).all()
            if not rows:
                return []
            first, modseq = self._allocate(conn, target_id, len(rows))
            copies = []
            for offset, row in enumerate(rows):
                values = dict(row._mapping)
                del values["id"]
                values.update(mailbox_id=target_id, uid=first + offset, modseq=modseq,
                              saved_date=now())
                copies.append(values)
                pairs.append((row.uid, first + offset))
                changes.append(MessageAdded(accounts[target_id], target_id, first + offset,
                                            modseq))
            conn.execute(insert(t.messages), copies)
            if move:
                moved = [row.uid for row in rows]
                gone = self._bump_modseq(conn, source_id)
                conn.execute(
                    delete(t.messages).where(
                        and_(t.messages.c.mailbox_id == source_id, t.messages.c.uid.in_(moved))
                    )
                )
                conn.execute(
                    insert(t.expunged),
                    [{"mailbox_id": source_id, "uid": u, "modseq": gone} for u in moved],
                )
                changes.append(
                    MessagesExpunged(accounts[source_id], source_id, tuple(moved), gone)
                )
        return pairs

    def imap_append_many(
        self,
        account_id: int,
        mailbox_id: int,
        items: Sequence[tuple[BlobRef, ParsedMessage, Flags, datetime | None]],
    ) -> list[DeliveredMessage]:
        """MULTIAPPEND (RFC 3502): every message or none, in one transaction."""
        delivered: list[DeliveredMessage] = []
        with self._write() as (conn, changes):
            owner = conn.execute(
                select(t.mailboxes.c.account_id).where(t.mailboxes.c.id == mailbox_id)
            ).scalar()
            if owner != account_id:
                raise NotFound("no such mailbox")
            first, modseq = self._allocate(conn, mailbox_id, len(items))
            for offset, (blob, parsed, flags, internal_date) in enumerate(items):
                uid = first + offset
                conn.execute(
                    insert(t.messages).values(
                        mailbox_id=mailbox_id, uid=uid, modseq=modseq,
                        internal_date=internal_date or now(), saved_date=now(),
                        size=blob.size, blob_sha256=blob.sha256,
                        **self._flag_values(flags), **self._message_values(parsed),
                    )
                )
                delivered.append(DeliveredMessage(account_id, mailbox_id, uid, modseq))
                changes.append(MessageAdded(account_id, mailbox_id, uid, modseq))
        return delivered

    def imap_message_fields(
        self, mailbox_id: int, uids: Sequence[int] | None, columns: Sequence[str]
    ) -> dict[int, dict[str, Any]]:
        """Chosen columns of many messages by UID (None: all), JSON columns decoded."""
        cols = [t.messages.c.uid, *(t.messages.c[name] for name in columns if name != "uid")]
        out: dict[int, dict[str, Any]] = {}
        batches: list[Sequence[int] | None] = [None]
        if uids is not None:
            batches = [uids[i : i + 500] for i in range(0, len(uids), 500)]
        with self._read() as conn:
            for batch in batches:
                query = select(*cols).where(t.messages.c.mailbox_id == mailbox_id)
                if batch is not None:
                    query = query.where(t.messages.c.uid.in_(batch))
                for row in conn.execute(query):
                    fields = dict(row._mapping)
                    for key in ("envelope", "mime", "headers"):
                        if key in fields:
                            fields[key] = json.loads(fields[key])
                    out[int(row.uid)] = fields
        return out


    # -- queue ------------------------------------------------------------------------
    # The outbound queue's life cycle: rows are claimed (state "sending") by the workers,
    # deleted after a 250 or a final bounce, or put back with the next attempt's time.

    @staticmethod
    def _outbound(r: Any) -> OutboundItem:
        return OutboundItem(
            id=r.id, queue_id=r.queue_id, blob_sha256=r.blob_sha256,
            body_offset=r.body_offset, mail_from=r.mail_from, domain=r.domain,
            recipients=json.loads(r.recipients), size=r.size, state=r.state,
            attempts=r.attempts, next_attempt_at=r.next_attempt_at,
            last_error=r.last_error, created_at=r.created_at, smtputf8=r.smtputf8,
            body_8bit=r.body_8bit, account_id=r.account_id, delay_warned=r.delay_warned,
        )

    def queue_get(self, item_id: int) -> OutboundItem | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.outbound_queue).where(t.outbound_queue.c.id == item_id)
            ).first()
        return None if row is None else self._outbound(row)

    def queue_release_claims(self) -> int:
        """At start-up: rows left "sending" by a stopped process are due again."""
        with self._write() as (conn, _):
            result = conn.execute(
                update(t.outbound_queue)
                .where(t.outbound_queue.c.state == "sending")
                .values(state="queued")
            )
        return int(result.rowcount)

    def queue_claim(
        self, due_before: datetime, limit: int, skip_domains: Sequence[str] = ()
    ) -> list[OutboundItem]:
        """Mark up to `limit` due rows "sending" and return them, oldest due first."""
        q = t.outbound_queue
        condition = and_(q.c.state == "queued", q.c.next_attempt_at <= due_before)
        if skip_domains:
            condition = and_(condition, q.c.domain.not_in(list(skip_domains)))
        with self._write() as (conn, _):
            rows = conn.execute(
                select(q).where(condition).order_by(q.c.next_attempt_at, q.c.id).limit(limit)
            ).all()
            claimed = []
            for row in rows:
                # The state check makes a claim by another process lose cleanly.
                result = conn.execute(
                    update(q).where(and_(q.c.id == row.id, q.c.state == "queued"))
                    .values(state="sending")
                )
                if result.rowcount == 1:
                    claimed.append(row)
        return [replace(self._outbound(r), state="sending") for r in claimed]

    def queue_next_due(self) -> datetime | None:
        q = t.outbound_queue
        with self._read() as conn:
            value: datetime | None = conn.execute(
                select(func.min(q.c.next_attempt_at)).where(q.c.state == "queued")
            ).scalar()
        return value

    def queue_finish(self, item_id: int) -> None:
        """Delivered to every recipient, or bounced for good: the row goes."""
        with self._write() as (conn, _):
            conn.execute(delete(t.outbound_queue).where(t.outbound_queue.c.id == item_id))

    def queue_finish_many(self, item_ids: Sequence[int]) -> None:
        """queue_finish for several rows in one transaction (one fsync for a batch)."""
        with self._write() as (conn, _):
            conn.execute(
                delete(t.outbound_queue).where(t.outbound_queue.c.id.in_(list(item_ids)))
            )

    def queue_reschedule(
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
        values: dict[str, Any] = {
            "state": "queued",
            "attempts": t.outbound_queue.c.attempts + 1,
            "next_attempt_at": next_attempt_at,
            "last_error": error[:2000],
        }
        if recipients is not None:
            values["recipients"] = json.dumps(list(recipients), ensure_ascii=False)
        if delay_warned is not None:
            values["delay_warned"] = delay_warned
        with self._write() as (conn, _):
            conn.execute(
                update(t.outbound_queue).where(t.outbound_queue.c.id == item_id).values(**values)
            )

    def queue_retry_now(self, item_id: int | None = None) -> int:
        """Make one row (or every waiting row) due now; returns how many."""
        q = t.outbound_queue
        condition = q.c.state == "queued"
        if item_id is not None:
            condition = and_(condition, q.c.id == item_id)
        with self._write() as (conn, _):
            result = conn.execute(update(q).where(condition).values(next_attempt_at=now()))
        return int(result.rowcount)

    def queue_delete(self, item_id: int) -> bool:
        """Drop a row without delivering or bouncing it (operator's decision)."""
        with self._write() as (conn, _):
            result = conn.execute(
                delete(t.outbound_queue).where(t.outbound_queue.c.id == item_id)
            )
        return bool(result.rowcount)

    def queue_stats(self) -> tuple[int, datetime | None]:
        """How many rows are queued, and when the oldest was created (for /metrics)."""
        q = t.outbound_queue
        with self._read() as conn:
            row = conn.execute(select(func.count(), func.min(q.c.created_at))).one()
        return int(row[0]), row[1]

    # -- DKIM keys --------------------------------------------------------------------

    def dkim_key_add(self, domain: str, selector: str, algorithm: str, private_key: str) -> None:
        try:
            with self._write() as (conn, _):
                conn.execute(
                    insert(t.dkim_keys).values(
                        domain=domain, selector=selector, algorithm=algorithm,
                        private_key=private_key, active=True, created_at=now(),
                    )
                )
        except IntegrityError:
            raise AlreadyExists(f"a DKIM key {selector} for {domain} exists already") from None

    def dkim_signing_keys(self, domain: str) -> list[tuple[str, str, str]]:
        """(selector, algorithm, private key PEM) of the newest active key of `domain` per
        algorithm: mail is signed with RSA and Ed25519 both when both exist (RFC 8463 5
        advises the pair, as not every verifier knows Ed25519)."""
        k = t.dkim_keys
        with self._read() as conn:
            rows = conn.execute(
                select(k.c.selector, k.c.algorithm, k.c.private_key)
                .where(and_(k.c.domain == domain.lower(), k.c.active))
                .order_by(k.c.created_at.desc(), k.c.id.desc())
            ).all()
        newest: dict[str, tuple[str, str, str]] = {}
        for row in rows:
            newest.setdefault(row.algorithm, (row.selector, row.algorithm, row.private_key))
        return list(newest.values())

    def dkim_keys(self) -> list[tuple[str, str, str, bool]]:
        """(domain, selector, algorithm, active) of every key."""
        k = t.dkim_keys
        with self._read() as conn:
            rows = conn.execute(
                select(k.c.domain, k.c.selector, k.c.algorithm, k.c.active)
                .order_by(k.c.domain, k.c.id)
            ).all()
        return [(r.domain, r.selector, r.algorithm, bool(r.active)) for r in rows]


def _combine(old: Flags, given: Flags, mode: str) -> Flags:
    if mode == "replace":
        # Keywords are a set, kept sorted, so equal flags compare equal (as stored).
        return replace(given, keywords=tuple(sorted(set(given.keywords))))
    on = mode == "add"

    def pick(current: bool, named: bool) -> bool:
        return on if named else current

    if on:
        keywords = tuple(sorted(set(old.keywords) | set(given.keywords)))
    else:
        keywords = tuple(k for k in old.keywords if k not in given.keywords)
    return Flags(
        pick(old.seen, given.seen),
        pick(old.answered, given.answered),
        pick(old.flagged, given.flagged),
        pick(old.deleted, given.deleted),
        pick(old.draft, given.draft),
        keywords,
    )


class SqliteStore(SqlStore):
    """The embedded default: one SQLite file in WAL mode, one writer at a time.

    SQLite allows one writer; taking a process-wide lock before BEGIN avoids the
    "database is locked" errors that deferred transactions upgrading to write locks cause,
    while readers proceed in parallel under WAL.
    """

    def __init__(self, url: str, blobs: BlobStore) -> None:
        engine = create_engine(url, pool_size=8, max_overflow=32, pool_timeout=60)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a 250 after DATA survives a
            # power cut, not only a process crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        super().__init__(engine, blobs)
        self._lock = threading.Lock()
        self._group = GroupCommitter(engine, self._lock, (StoreError,), self._publish)

    def _write_lock(self) -> AbstractContextManager[Any]:
        return self._lock

    def _group_write(self, work: Callable[[Connection, list[Change]], T]) -> T:
        # Concurrent deliveries share one transaction and one WAL fsync (group commit).
        return self._group.run(work)


class PostgresStore(SqlStore):
    """PostgreSQL: concurrent writers, serialised per mailbox by row locks."""

    def __init__(self, url: str, blobs: BlobStore) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        engine = create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True)
        super().__init__(engine, blobs)


__all__ = [
    "AlreadyExists",
    "NotFound",
    "PostgresStore",
    "SqlStore",
    "SqliteStore",
    "StoreError",
]
