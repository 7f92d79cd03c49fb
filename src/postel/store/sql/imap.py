"""Operations only IMAP needs: \\Recent, subscriptions, mailbox rename and delete,
COPY/MOVE and MULTIAPPEND."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from postel.mail.mime import ParsedMessage
from postel.store.model import (
    BlobRef,
    DeliveredMessage,
    Flags,
    MailboxChanged,
    MessageAdded,
    MessagesExpunged,
)
from postel.store.sql import schema as t
from postel.store.sql.base import (
    AlreadyExists,
    NotFound,
    StoreError,
    now,
)
from postel.store.sql.web import WebStore


class ImapStore(WebStore):
    """Operations only IMAP needs: \\Recent, subscriptions, rename, delete, COPY/MOVE."""

    # -- imap -------------------------------------------------------------------------
    # Mailbox tree operations, \Recent, COPY/MOVE, MULTIAPPEND and batch reads for IMAP.

    def imap_claim_recent(self, mailbox_id: int, until: int) -> range:
        """RFC 3501 2.3.2 \\Recent: the caller takes the messages below `until` that no
        session has taken yet, and gets their UIDs back as a range. `until` is the
        uidnext the caller read its messages under, so it claims only what it lists: a
        claim reaching past its listing would leave messages recent for nobody."""
        with self._write() as (conn, _):
            row = conn.execute(
                select(t.mailboxes.c.first_recent_uid, t.mailboxes.c.uidnext)
                .where(t.mailboxes.c.id == mailbox_id)
                .with_for_update()
            ).one()
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

    def imap_subscriptions(self, account_id: int) -> set[str]:
        """The subscription list: names, some perhaps of mailboxes deleted since."""
        with self._read() as conn:
            return set(conn.execute(
                select(t.subscriptions.c.name)
                .where(t.subscriptions.c.account_id == account_id)
            ).scalars())

    def imap_set_subscribed(self, account_id: int, name: str, subscribed: bool) -> bool:
        """SUBSCRIBE / UNSUBSCRIBE. False when there is nothing to act on: SUBSCRIBE of a
        mailbox that does not exist, UNSUBSCRIBE of a name neither subscribed nor
        existing. A deleted mailbox's subscription can be removed (RFC 3501 6.3.7)."""
        where = and_(t.subscriptions.c.account_id == account_id,
                     t.subscriptions.c.name == name)
        with self._write() as (conn, _):
            exists = conn.execute(
                select(t.mailboxes.c.id).where(
                    and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name))
            ).first() is not None
            listed = conn.execute(select(t.subscriptions.c.name).where(where)).first()
            if subscribed:
                if exists and listed is None:
                    conn.execute(insert(t.subscriptions).values(account_id=account_id,
                                                                name=name))
                return exists
            conn.execute(delete(t.subscriptions).where(where))
            return exists or listed is not None

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
                    self._move_subscription(conn, account_id, name, renamed)
                    changes.append(MailboxChanged(account_id, mailbox_id))

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
