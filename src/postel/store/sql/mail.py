"""Mailboxes and messages: UIDs, MODSEQs, delivery, flags, expunge, changes."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from postel.mail.mime import ParsedMessage
from postel.store.model import (
    BlobRef,
    Change,
    DeliveredMessage,
    Flags,
    FlagsChanged,
    Mailbox,
    MailboxChanged,
    MailboxChanges,
    MessageAdded,
    MessageMeta,
    MessagesExpunged,
)
from postel.store.sql import schema as t
from postel.store.sql.base import (
    NO_FLAGS,
    AlreadyExists,
    NotFound,
    StoreBase,
    _new_id,
    now,
)


class MailStore(StoreBase):
    """Mailboxes and messages: UIDs, MODSEQs, delivery, flags, expunge, changes."""

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
