"""Mailboxes and messages: UIDs, MODSEQs, delivery, flags, expunge, changes; and what
IMAP adds (\\Recent, subscriptions, rename and delete, COPY/MOVE, MULTIAPPEND)."""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from itertools import compress
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from postel.mail.mime import ParsedMessage
from postel.store.errors import AlreadyExists, NotFound, StoreError
from postel.store.model import (
    NO_FLAGS,
    BlobRef,
    Change,
    DeliveredMessage,
    Flags,
    FlagsChanged,
    Mailbox,
    MailboxChanged,
    MailboxChanges,
    MailboxIndex,
    MessageAdded,
    MessageMeta,
    MessagesExpunged,
    OutboundCopy,
)
from postel.store.sql import schema as t
from postel.store.sql.database import Database
from postel.store.sql.queue import insert_queue_rows
from postel.store.sql.raw import fetch_all
from postel.store.sql.rows import (
    META_COLUMNS,
    allocate,
    bump_modseq,
    flag_values,
    insert_mailbox,
    lock_mailbox,
    mailbox_id_by_name,
    message_fields,
    message_values,
    now,
    to_mailbox,
    to_meta,
)


class SqlMailboxes:
    """`api.Mailboxes` on SQL: every rule about UIDs, MODSEQs, delivery and expunge."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(t.mailboxes)
                .where(t.mailboxes.c.account_id == account_id)
                .order_by(t.mailboxes.c.id)
            ).all()
        return [to_mailbox(r) for r in rows]

    def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        if name.upper() == "INBOX":
            name = "INBOX"
        with self._db.read() as conn:
            row = conn.execute(
                select(t.mailboxes).where(
                    and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name)
                )
            ).first()
        return to_mailbox(row) if row else None

    def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        with self._db.read() as conn:
            row = conn.execute(select(t.mailboxes).where(t.mailboxes.c.id == mailbox_id)).first()
        return to_mailbox(row) if row else None

    def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        if name.upper() == "INBOX":
            raise AlreadyExists("INBOX always exists")
        with self._db.write() as (conn, changes):
            exists = conn.execute(
                select(t.mailboxes.c.id).where(
                    and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name)
                )
            ).first()
            if exists:
                raise AlreadyExists(f"mailbox {name} already exists")
            try:
                mailbox_id = insert_mailbox(conn, account_id, name, special_use)
            except IntegrityError:  # another session's CREATE since the check (PostgreSQL)
                raise AlreadyExists(f"mailbox {name} already exists") from None
            changes.append(MailboxChanged(account_id, mailbox_id))
            row = conn.execute(select(t.mailboxes).where(t.mailboxes.c.id == mailbox_id)).one()
            return to_mailbox(row)

    # -- messages ---------------------------------------------------------------------

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
        received = internal_date or now()
        values = message_values(parsed)

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
                uid, modseq = allocate(conn, mailbox_id, unseen=int(not flags.seen),
                                       size=blob.size)
                conn.execute(
                    insert(t.messages).values(
                        mailbox_id=mailbox_id,
                        uid=uid,
                        modseq=modseq,
                        internal_date=received,
                        saved_date=now(),
                        size=blob.size,
                        blob_sha256=blob.sha256,
                        **flag_values(flags),
                        **values,
                    )
                )
                delivered.append(DeliveredMessage(account_id, mailbox_id, uid, modseq))
                changes.append(MessageAdded(account_id, mailbox_id, uid, modseq))
            if queued is not None:
                insert_queue_rows(conn, changes, blob, queued)
            return delivered

        try:
            return self._db.group_write(work)
        finally:
            self._db.blobs.release(blob.sha256)  # the rows name it now (or never will)

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

    def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        """Every message of a mailbox in UID order (sequence number = index + 1)."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(*META_COLUMNS)
                .where(t.messages.c.mailbox_id == mailbox_id)
                .order_by(t.messages.c.uid)
            ).all()
        return [to_meta(r) for r in rows]

    def mailbox_index(self, mailbox_id: int) -> MailboxIndex | None:
        """The mailbox row and every message below its uidnext as arrays (IMAP SELECT):
        one indexed range read, no per-message objects. None when the mailbox is gone."""
        with self._db.read() as conn:
            box = conn.execute(
                select(t.mailboxes).where(t.mailboxes.c.id == mailbox_id)
            ).first()
            if box is None:
                return None
            # Below the uidnext just read: every such message was committed before it,
            # so the view is the mailbox as of that row (select.py relies on it).
            rows = fetch_all(conn, _INDEX_SQL, (mailbox_id, box.uidnext))
        mailbox = to_mailbox(box)
        if not rows:
            return MailboxIndex(mailbox, array("Q"), array("Q"), array("B"), {})
        # Transposed and packed in C; only messages with keywords cost a Python step.
        uids, modseqs, bits, words = zip(*rows, strict=True)
        keywords = {
            int(uid): tuple(text.split())
            for uid, text in compress(zip(uids, words, strict=True), words)
        }
        return MailboxIndex(mailbox, array("Q", uids), array("Q", modseqs),
                            array("B", bits), keywords)

    def subject_candidates(self, mailbox_id: int, needle: str) -> set[int]:
        """SEARCH SUBJECT's pre-filter (see api.Mailboxes): the subject column is the
        first Subject header's decoded value, so with one Subject header this is the
        match itself; a message whose headers (JSON) may name Subject twice is kept for
        the exact check."""
        folded = needle.casefold()
        with self._db.read() as conn:
            rows = fetch_all(conn, _SUBJECT_SQL, (_TWO_SUBJECTS, mailbox_id))
        return {int(uid) for uid, subject, twice in rows
                if twice or folded in subject.casefold()}

    def get_message_fields(self, mailbox_id: int, uid: int) -> dict[str, Any] | None:
        """All stored columns of one message, JSON columns decoded (for FETCH)."""
        with self._db.read() as conn:
            row = conn.execute(
                select(t.messages).where(
                    and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.uid == uid)
                )
            ).first()
        return None if row is None else message_fields(row)

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
        with self._db.write() as (conn, changes):
            account_id = lock_mailbox(conn, mailbox_id)
            rows = conn.execute(
                select(*META_COLUMNS).where(
                    and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.uid.in_(uids))
                ).order_by(t.messages.c.uid)
            ).all()
            updates: list[tuple[MessageMeta, Flags]] = []
            for row in rows:
                meta = to_meta(row)
                if unchanged_since is not None and meta.modseq > unchanged_since:
                    failed.append(meta.uid)
                    continue
                new = _combine(meta.flags, flags, mode)
                if new != meta.flags:
                    updates.append((meta, new))
            if updates:
                # STATUS UNSEEN moves by the messages that gain or lose \Seen.
                unseen = sum(int(meta.flags.seen) - int(new.seen) for meta, new in updates)
                modseq = bump_modseq(conn, mailbox_id, unseen=unseen)
                for meta, new in updates:
                    conn.execute(
                        update(t.messages)
                        .where(t.messages.c.id == meta.id)
                        .values(modseq=modseq, **flag_values(new))
                    )
                    changed.append(
                        MessageMeta(meta.id, meta.mailbox_id, meta.uid, modseq, new,
                                    meta.internal_date, meta.size, meta.blob_sha256)
                    )
                    changes.append(FlagsChanged(account_id, mailbox_id, meta.uid, modseq, new))
        return changed, failed

    def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages: the given UIDs, or every \\Deleted one. Returns removed UIDs."""
        with self._db.write() as (conn, changes):
            account_id = lock_mailbox(conn, mailbox_id)
            condition = t.messages.c.mailbox_id == mailbox_id
            if uids is None:
                condition = and_(condition, t.messages.c.deleted == True)  # noqa: E712
            else:
                condition = and_(condition, t.messages.c.uid.in_(uids))
            rows = conn.execute(
                select(t.messages.c.uid, t.messages.c.seen, t.messages.c.size).where(condition)
            ).all()
            removed = sorted(int(row.uid) for row in rows)
            if not removed:
                return []
            modseq = bump_modseq(conn, mailbox_id, **_gone(rows))
            conn.execute(delete(t.messages).where(condition))
            conn.execute(
                insert(t.expunged),
                [{"mailbox_id": mailbox_id, "uid": uid, "modseq": modseq} for uid in removed],
            )
            changes.append(MessagesExpunged(account_id, mailbox_id, tuple(removed), modseq))
        return removed

    def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        """Messages added or changed, and UIDs expunged, after `modseq` (IDLE, QRESYNC)."""
        with self._db.read() as conn:
            box = conn.execute(
                select(t.mailboxes).where(t.mailboxes.c.id == mailbox_id)
            ).first()
            if box is None:  # deleted by another session
                raise NotFound(f"mailbox {mailbox_id} does not exist")
            if box.highestmodseq <= modseq:
                # Every write that adds, changes or expunges a message raises the
                # mailbox's HIGHESTMODSEQ in its transaction: nothing can be newer.
                return MailboxChanges(to_mailbox(box))
            rows = conn.execute(
                select(*META_COLUMNS)
                .where(and_(t.messages.c.mailbox_id == mailbox_id, t.messages.c.modseq > modseq))
                .order_by(t.messages.c.uid)
            ).all()
            gone = conn.execute(
                select(t.expunged.c.uid)
                .where(and_(t.expunged.c.mailbox_id == mailbox_id, t.expunged.c.modseq > modseq))
                .order_by(t.expunged.c.uid)
            ).scalars().all()
        return MailboxChanges(to_mailbox(box), [to_meta(r) for r in rows], list(gone))

    def mailbox_counts(self, mailbox_id: int) -> tuple[int, int, int]:
        """(messages, unseen, bytes) for STATUS: the mailbox row's counters, which every
        write keeps in step (rows.py allocate, bump_modseq), not a count of the rows."""
        c = t.mailboxes.c
        with self._db.read() as conn:
            row = conn.execute(
                select(c.message_count, c.unseen_count, c.total_size).where(c.id == mailbox_id)
            ).first()
        if row is None:
            return 0, 0, 0
        return int(row[0]), int(row[1]), int(row[2])

    # -- imap -------------------------------------------------------------------------
    # Mailbox tree operations, \Recent, COPY/MOVE, MULTIAPPEND and batch reads for IMAP.

    def claim_recent(self, mailbox_id: int, until: int) -> range:
        """RFC 3501 2.3.2 \\Recent: the caller takes the messages below `until` that no
        session has taken yet, and gets their UIDs back as a range. `until` is the
        uidnext the caller read its messages under, so it claims only what it lists: a
        claim reaching past its listing would leave messages recent for nobody."""
        with self._db.write() as (conn, _):
            row = conn.execute(
                select(t.mailboxes.c.first_recent_uid, t.mailboxes.c.uidnext)
                .where(t.mailboxes.c.id == mailbox_id)
                .with_for_update()
            ).first()
            if row is None:  # deleted by another session
                raise NotFound(f"mailbox {mailbox_id} does not exist")
            first = int(row.first_recent_uid)
            end = min(int(row.uidnext), until)
            if end <= first:
                return range(first, first)
            conn.execute(
                update(t.mailboxes)
                .where(t.mailboxes.c.id == mailbox_id)
                .values(first_recent_uid=end)
            )
            return range(first, end)

    def subscriptions(self, account_id: int) -> set[str]:
        """The subscription list: names, some perhaps of mailboxes deleted since."""
        with self._db.read() as conn:
            return set(conn.execute(
                select(t.subscriptions.c.name)
                .where(t.subscriptions.c.account_id == account_id)
            ).scalars())

    def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> bool:
        """SUBSCRIBE / UNSUBSCRIBE. False when there is nothing to act on: SUBSCRIBE of a
        mailbox that does not exist, UNSUBSCRIBE of a name neither subscribed nor
        existing. A deleted mailbox's subscription can be removed (RFC 3501 6.3.7)."""
        where = and_(t.subscriptions.c.account_id == account_id,
                     t.subscriptions.c.name == name)
        with self._db.write() as (conn, changes):
            mailbox_id = mailbox_id_by_name(conn, account_id, name)
            exists = mailbox_id is not None
            listed = conn.execute(select(t.subscriptions.c.name).where(where)).first()
            if mailbox_id is not None and (listed is None) == subscribed:
                # A hint for NOTIFY's SubscriptionChange (RFC 5465 5.5) in other sessions.
                changes.append(MailboxChanged(account_id, mailbox_id))
            if subscribed:
                if exists and listed is None:
                    conn.execute(insert(t.subscriptions).values(account_id=account_id,
                                                                name=name))
                return exists
            conn.execute(delete(t.subscriptions).where(where))
            return exists or listed is not None

    @staticmethod
    def _move_subscription(conn: Connection, account_id: int, old: str, new: str) -> None:
        """A renamed mailbox keeps its subscription, under the new name."""
        where = and_(t.subscriptions.c.account_id == account_id,
                     t.subscriptions.c.name == old)
        if conn.execute(select(t.subscriptions.c.name).where(where)).first() is None:
            return
        conn.execute(delete(t.subscriptions).where(where))
        conn.execute(delete(t.subscriptions).where(and_(
            t.subscriptions.c.account_id == account_id, t.subscriptions.c.name == new)))
        conn.execute(insert(t.subscriptions).values(account_id=account_id, name=new))

    def delete_mailbox(self, account_id: int, name: str) -> None:
        """DELETE: the mailbox and its messages go; inferior mailboxes stay (RFC 9051 6.3.4)."""
        if name == "INBOX":
            raise StoreError("INBOX cannot be deleted")
        with self._db.write() as (conn, changes):
            mailbox_id = mailbox_id_by_name(conn, account_id, name)
            if mailbox_id is None:
                raise NotFound(f"mailbox {name} does not exist")
            conn.execute(delete(t.messages).where(t.messages.c.mailbox_id == mailbox_id))
            conn.execute(delete(t.expunged).where(t.expunged.c.mailbox_id == mailbox_id))
            # RFC 5464 3.1: a deleted mailbox's METADATA entries go with it.
            conn.execute(delete(t.metadata_entries)
                         .where(t.metadata_entries.c.mailbox_id == mailbox_id))
            conn.execute(delete(t.mailboxes).where(t.mailboxes.c.id == mailbox_id))
            changes.append(MailboxChanged(account_id, mailbox_id))

    def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """RENAME with its inferiors (RFC 9051 6.3.6). Renaming INBOX moves its messages to
        a new mailbox and leaves INBOX, empty, in place."""
        with self._db.write() as (conn, changes):
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
                target = insert_mailbox(conn, account_id, new, None)
                moved = conn.execute(
                    select(t.messages.c.uid, t.messages.c.seen, t.messages.c.size)
                    .where(t.messages.c.mailbox_id == inbox)
                    .order_by(t.messages.c.uid)
                ).all()
                uids = [int(row.uid) for row in moved]
                if uids:
                    first, modseq = allocate(conn, target, len(uids), **_added(moved))
                    for offset, uid in enumerate(uids):
                        conn.execute(
                            update(t.messages)
                            .where(and_(t.messages.c.mailbox_id == inbox,
                                        t.messages.c.uid == uid))
                            .values(mailbox_id=target, uid=first + offset, modseq=modseq)
                        )
                    gone = bump_modseq(conn, inbox, **_gone(moved))
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
                    self._move_subscription(conn, account_id, name, renamed)
                    changes.append(MailboxChanged(account_id, mailbox_id))

    def copy(
        self, source_id: int, uids: Sequence[int], target_id: int, *, move: bool = False
    ) -> list[tuple[int, int]]:
        """COPY / MOVE in one transaction; returns (source uid, new uid) pairs in UID order
        (RFC 4315 COPYUID, RFC 6851 MOVE)."""
        pairs: list[tuple[int, int]] = []
        with self._db.write() as (conn, changes):
            # Two opposite MOVEs cannot deadlock: both lock in id order.
            accounts = _lock_mailboxes(conn, source_id, target_id)
            rows = conn.execute(
                select(t.messages)
                .where(and_(t.messages.c.mailbox_id == source_id, t.messages.c.uid.in_(uids)))
                .order_by(t.messages.c.uid)
            ).all()
            if not rows:
                return []
            first, modseq = allocate(conn, target_id, len(rows), **_added(rows))
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
                gone = bump_modseq(conn, source_id, **_gone(rows))
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

    def append_many(
        self,
        account_id: int,
        mailbox_id: int,
        items: Sequence[tuple[BlobRef, ParsedMessage, Flags, datetime | None]],
    ) -> list[DeliveredMessage]:
        """MULTIAPPEND (RFC 3502): every message or none, in one transaction."""
        delivered: list[DeliveredMessage] = []
        try:
            with self._db.write() as (conn, changes):
                owner = conn.execute(
                    select(t.mailboxes.c.account_id).where(t.mailboxes.c.id == mailbox_id)
                ).scalar()
                if owner != account_id:
                    raise NotFound("no such mailbox")
                first, modseq = allocate(
                    conn, mailbox_id, len(items),
                    unseen=sum(not flags.seen for _, _, flags, _ in items),
                    size=sum(blob.size for blob, *_ in items),
                )
                for offset, item in enumerate(items):
                    uid = first + offset
                    _insert_message(conn, mailbox_id, uid, modseq, item)
                    delivered.append(DeliveredMessage(account_id, mailbox_id, uid, modseq))
                    changes.append(MessageAdded(account_id, mailbox_id, uid, modseq))
        finally:
            for blob, *_ in items:
                self._db.blobs.release(blob.sha256)  # the rows name them now (or never will)
        return delivered

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
        blob = item[0]
        try:
            with self._db.write() as (conn, changes):
                owners = _lock_mailboxes(conn, source_id, target_id)
                if set(owners.values()) != {account_id} or len(owners) != len(
                    {source_id, target_id}
                ):
                    raise NotFound("no such mailbox")
                old = and_(t.messages.c.mailbox_id == source_id, t.messages.c.uid == uid)
                replaced = conn.execute(
                    select(t.messages.c.seen, t.messages.c.size).where(old)
                ).all()
                if not replaced:
                    raise NotFound(f"no message with UID {uid}")
                new_uid, modseq = allocate(conn, target_id, unseen=int(not item[2].seen),
                                           size=blob.size)
                _insert_message(conn, target_id, new_uid, modseq, item)
                changes.append(MessageAdded(account_id, target_id, new_uid, modseq))
                gone = bump_modseq(conn, source_id, **_gone(replaced))
                conn.execute(delete(t.messages).where(old))
                conn.execute(insert(t.expunged).values(mailbox_id=source_id, uid=uid,
                                                       modseq=gone))
                changes.append(MessagesExpunged(account_id, source_id, (uid,), gone))
        finally:
            self._db.blobs.release(blob.sha256)  # the row names it now (or never will)
        return DeliveredMessage(account_id, target_id, new_uid, modseq)

    def message_fields(
        self, mailbox_id: int, uids: Sequence[int] | None, columns: Sequence[str]
    ) -> dict[int, dict[str, Any]]:
        """Chosen columns of many messages by UID (None: all), JSON columns decoded."""
        cols = [t.messages.c.uid, *(t.messages.c[name] for name in columns if name != "uid")]
        out: dict[int, dict[str, Any]] = {}
        batches: list[Sequence[int] | None] = [None]
        if uids is not None:
            batches = [uids[i : i + 500] for i in range(0, len(uids), 500)]
        with self._db.read() as conn:
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



# One row per message: UID, MODSEQ, the system flags as FLAG_BITS (model.py), keywords.
_INDEX_SQL = (
    "SELECT uid, modseq, CAST(seen AS INTEGER) + 2 * CAST(answered AS INTEGER)"
    " + 4 * CAST(flagged AS INTEGER) + 8 * CAST(deleted AS INTEGER)"
    " + 16 * CAST(draft AS INTEGER), keywords"
    " FROM messages WHERE mailbox_id = ? AND uid < ? ORDER BY uid"
)


def _added(rows: Sequence[Any]) -> dict[str, int]:
    """STATUS counter deltas (allocate) for rows with seen and size copied in."""
    return {"unseen": sum(not row.seen for row in rows),
            "size": sum(int(row.size) for row in rows)}


def _gone(rows: Sequence[Any]) -> dict[str, int]:
    """STATUS counter deltas (bump_modseq) for rows with seen and size that go."""
    return {"messages": -len(rows), "unseen": -sum(not row.seen for row in rows),
            "size": -sum(int(row.size) for row in rows)}


# The stored headers are JSON [["Name", "value"], ...]; lower() first (LIKE ignores case
# on SQLite, not on PostgreSQL), so this matches every message with two Subject fields
# (and perhaps a few more: a superset).
_SUBJECT_SQL = (
    "SELECT uid, subject, lower(headers) LIKE ? FROM messages WHERE mailbox_id = ?"
)
_TWO_SUBJECTS = '%"subject", %"subject", %'


def _lock_mailboxes(conn: Connection, *mailbox_ids: int) -> dict[int, int]:
    """Lock mailbox rows in id order, the one lock order of deliver(), so writers that
    take two cannot deadlock on PostgreSQL; returns their owners by mailbox id."""
    return {
        int(row.id): int(row.account_id)
        for row in conn.execute(
            select(t.mailboxes.c.id, t.mailboxes.c.account_id)
            .where(t.mailboxes.c.id.in_(mailbox_ids))
            .order_by(t.mailboxes.c.id)
            .with_for_update()
        )
    }


def _insert_message(
    conn: Connection, mailbox_id: int, uid: int, modseq: int,
    item: tuple[BlobRef, ParsedMessage, Flags, datetime | None],
) -> None:
    """One appended message row (APPEND, MULTIAPPEND, REPLACE), saved now (RFC 8514)."""
    blob, parsed, flags, internal_date = item
    conn.execute(
        insert(t.messages).values(
            mailbox_id=mailbox_id, uid=uid, modseq=modseq,
            internal_date=internal_date or now(), saved_date=now(),
            size=blob.size, blob_sha256=blob.sha256,
            **flag_values(flags), **message_values(parsed),
        )
    )


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
