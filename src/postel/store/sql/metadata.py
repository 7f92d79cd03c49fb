"""IMAP METADATA entries (RFC 5464) on mailboxes and on the server, one row per entry.

Entry names arrive lowercase with their /private or /shared prefix (the IMAP layer checks
the syntax). A server entry has no mailbox: "/private/..." rows belong to the account,
"/shared/..." rows to no account (the whole server's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, false, func, insert, or_, select

from postel.store.errors import LimitReached, NotFound
from postel.store.model import MetadataChanged
from postel.store.sql import schema as t
from postel.store.sql.database import Database

SHARED = "/shared"
m = t.metadata_entries


def _named(names: Sequence[str], descendants: bool) -> ColumnElement[bool]:
    """Rows whose name is one of `names` or, with `descendants`, below one of them."""
    clauses: list[ColumnElement[bool]] = [m.c.name.in_(list(names))] if names else []
    if descendants:
        # autoescape: "_" is a legal entry name character but a LIKE wildcard.
        clauses += [m.c.name.startswith(n + "/", autoescape=True) for n in names]
    return or_(*clauses) if clauses else false()


def _server_owner(account_id: int, name: str) -> int | None:
    return None if name.startswith(SHARED + "/") else account_id


def _target(account_id: int | None, mailbox_id: int | None) -> ColumnElement[bool]:
    owner = m.c.account_id.is_(None) if account_id is None else m.c.account_id == account_id
    if mailbox_id is not None:
        return m.c.mailbox_id == mailbox_id
    return and_(m.c.mailbox_id.is_(None), owner)


class SqlMetadata:
    """`api.MetadataEntries` on SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_entries(
        self, account_id: int, mailbox_id: int | None, names: Sequence[str], *,
        descendants: bool = False,
    ) -> dict[str, bytes]:
        """The stored entries named, and with `descendants` every entry below them.
        `mailbox_id` None: the server's entries as the account sees them."""
        if mailbox_id is not None:
            return self.entries_of_mailboxes([mailbox_id], names,
                                             descendants=descendants).get(mailbox_id, {})
        visible = or_(_target(account_id, None), _target(None, None))
        with self._db.read() as conn:
            rows = conn.execute(
                select(m.c.name, m.c.value)
                .where(and_(visible, _named(names, descendants)))
                .order_by(m.c.id)
            ).all()
        return {row.name: bytes(row.value) for row in rows}

    def entries_of_mailboxes(
        self, mailbox_ids: Sequence[int], names: Sequence[str], *, descendants: bool = False
    ) -> dict[int, dict[str, bytes]]:
        """get_entries for many mailboxes in one query (LIST RETURN (METADATA ...))."""
        out: dict[int, dict[str, bytes]] = {}
        with self._db.read() as conn:
            for start in range(0, len(mailbox_ids), 500):
                batch = list(mailbox_ids[start : start + 500])
                rows = conn.execute(
                    select(m.c.mailbox_id, m.c.name, m.c.value)
                    .where(and_(m.c.mailbox_id.in_(batch), _named(names, descendants)))
                    .order_by(m.c.id)
                ).all()
                for row in rows:
                    out.setdefault(int(row.mailbox_id), {})[row.name] = bytes(row.value)
        return out

    def set_entries(
        self, account_id: int, mailbox_id: int | None, values: Mapping[str, bytes | None], *,
        max_entries: int,
    ) -> None:
        """SETMETADATA: set every entry (None removes it) or none (RFC 5464 4.3).

        Raises NotFound when the mailbox is not the account's (any more), LimitReached
        when a target would hold more than `max_entries` entries.
        """
        with self._db.write() as (conn, changes):
            # The row lock serialises writers of one target on PostgreSQL, so an entry is
            # never stored twice (SQLite's write lock already does).
            self._lock_target(conn, account_id, mailbox_id)
            targets: set[tuple[int | None, int | None]] = set()
            for name, value in values.items():
                owner = account_id if mailbox_id is not None else _server_owner(account_id, name)
                targets.add((owner, mailbox_id))
                where = and_(_target(owner, mailbox_id), m.c.name == name)
                conn.execute(delete(m).where(where))
                if value is not None:
                    conn.execute(insert(m).values(account_id=owner, mailbox_id=mailbox_id,
                                                  name=name, value=value))
            for owner, box in targets:
                count = conn.execute(
                    select(func.count()).select_from(m).where(_target(owner, box))
                ).scalar_one()
                if count > max_entries:
                    # Raising rolls the whole command back: none of its entries are set.
                    raise LimitReached(f"more than {max_entries} metadata entries")
                # A hint for NOTIFY sessions (RFC 5465 5.6, 5.7), published after commit.
                changes.append(MetadataChanged(owner, box))

    @staticmethod
    def _lock_target(conn: Connection, account_id: int, mailbox_id: int | None) -> None:
        query: Any
        if mailbox_id is None:
            query = select(t.accounts.c.id).where(t.accounts.c.id == account_id)
        else:
            query = select(t.mailboxes.c.id).where(
                and_(t.mailboxes.c.id == mailbox_id, t.mailboxes.c.account_id == account_id)
            )
        if conn.execute(query.with_for_update()).first() is None:
            raise NotFound("no such mailbox" if mailbox_id is not None else "no such account")
