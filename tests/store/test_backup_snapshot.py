"""The backup reads every table at one snapshot: a delivery committed while it reads is
not half in it (its message row without its mailbox's new UIDNEXT). Both backends."""

from __future__ import annotations

from sqlalchemy import func, select

from postel.store.sql import schema as t
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, deliver_one


def test_backup_reads_one_snapshot(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    deliver_one(store, alice)
    count = select(func.count()).select_from(t.messages)
    uidnext = select(func.max(t.mailboxes.c.uidnext))
    with store.backups._snapshot() as conn:
        before = conn.execute(count).scalar(), conn.execute(uidnext).scalar()
        deliver_one(store, alice, body="committed while the backup reads")
        assert (conn.execute(count).scalar(), conn.execute(uidnext).scalar()) == before
    with store.engine.connect() as conn:
        assert conn.execute(count).scalar() == before[0] + 1  # type: ignore[operator]
