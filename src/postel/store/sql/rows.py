"""Row helpers more than one SQL part needs: records from rows, and the mailbox rules
(UIDVALIDITY, UID and MODSEQ allocation, row locks) that delivery, IMAP and account
creation share."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, and_, case, func, insert, select, update

from postel.mail.mime import ParsedMessage
from postel.store.model import Account, Flags, Mailbox, MessageMeta, Role
from postel.store.sql import schema as t


def now() -> datetime:
    return datetime.now(UTC)


def new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def domain_of(key: str) -> str:
    return key.rpartition("@")[2]


def to_account(row: Any) -> Account:
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


def to_mailbox(row: Any) -> Mailbox:
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


META_COLUMNS = (
    t.messages.c.id, t.messages.c.mailbox_id, t.messages.c.uid, t.messages.c.modseq,
    t.messages.c.seen, t.messages.c.answered, t.messages.c.flagged, t.messages.c.deleted,
    t.messages.c.draft, t.messages.c.keywords, t.messages.c.internal_date,
    t.messages.c.size, t.messages.c.blob_sha256,
)


def to_meta(row: Any) -> MessageMeta:
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


def message_fields(row: Any) -> dict[str, Any]:
    """A message row as a dict, its JSON columns (ENVELOPE, MIME tree, headers) decoded."""
    fields = dict(row._mapping)
    for key in ("envelope", "mime", "headers"):
        fields[key] = json.loads(fields[key])
    return fields


def message_values(parsed: ParsedMessage) -> dict[str, Any]:
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


def flag_values(flags: Flags) -> dict[str, Any]:
    return {
        "seen": flags.seen,
        "answered": flags.answered,
        "flagged": flags.flagged,
        "deleted": flags.deleted,
        "draft": flags.draft,
        "keywords": " ".join(sorted(set(flags.keywords))),
    }


def new_uidvalidity(conn: Connection) -> int:
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


def mailbox_id_by_name(conn: Connection, account_id: int, name: str) -> int | None:
    """The id of an account's mailbox, or None when there is no such mailbox."""
    found = conn.execute(
        select(t.mailboxes.c.id).where(
            and_(t.mailboxes.c.account_id == account_id, t.mailboxes.c.name == name)
        )
    ).scalar()
    return None if found is None else int(found)


def insert_mailbox(conn: Connection, account_id: int, name: str, special_use: str | None) -> int:
    result = conn.execute(
        insert(t.mailboxes).values(
            account_id=account_id,
            name=name,
            special_use=special_use,
            uidvalidity=new_uidvalidity(conn),
            uidnext=1,
            highestmodseq=1,
            first_recent_uid=1,
            created_at=now(),
        )
    )
    return new_id(result)


def allocate(
    conn: Connection, mailbox_id: int, count: int = 1, *, unseen: int = 0, size: int = 0
) -> tuple[int, int]:
    """Take `count` UIDs and one MODSEQ from a mailbox for `count` new messages, of
    which `unseen` lack \\Seen, of `size` bytes together; returns (first uid, modseq).

    The UPDATE ... RETURNING takes the row lock on PostgreSQL, so concurrent writers to
    one mailbox serialise here and UIDs stay strictly ascending and never reused. The
    STATUS counters change in the same UPDATE, so they are never out of step.
    """
    c = t.mailboxes.c
    row = conn.execute(
        update(t.mailboxes)
        .where(c.id == mailbox_id)
        .values(
            uidnext=c.uidnext + count,
            highestmodseq=c.highestmodseq + 1,
            message_count=c.message_count + count,
            unseen_count=c.unseen_count + unseen,
            total_size=c.total_size + size,
        )
        .returning(c.uidnext, c.highestmodseq)
    ).one()
    return int(row.uidnext) - count, int(row.highestmodseq)


def lock_mailbox(conn: Connection, mailbox_id: int) -> int:
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


def bump_modseq(
    conn: Connection, mailbox_id: int, *, messages: int = 0, unseen: int = 0, size: int = 0
) -> int:
    """A new HIGHESTMODSEQ for a change to existing messages; the STATUS counters move by
    the deltas given (an expunge removes messages, a STORE of \\Seen changes unseen)."""
    c = t.mailboxes.c
    return int(
        conn.execute(
            update(t.mailboxes)
            .where(c.id == mailbox_id)
            .values(
                highestmodseq=c.highestmodseq + 1,
                message_count=c.message_count + messages,
                unseen_count=c.unseen_count + unseen,
                total_size=c.total_size + size,
            )
            .returning(c.highestmodseq)
        ).scalar_one()
    )
