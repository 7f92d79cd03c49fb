"""`store.integrity.check` (behind `postel check`): break a store in each way, see the
check report it, and `repair` fix what is safe to fix and only that. Both backends."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, delete, insert, text, update

from postel.store.integrity import CheckReport
from postel.store.model import Flags
from postel.store.sql import schema as t
from postel.store.sql.pgblobs import PgBlobStore
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, deliver_one, mailbox_id, put_message

OLD = time.time() - 7200  # older than the default cut-off of an hour


def kinds(report: CheckReport, *, remaining: bool = False) -> list[str]:
    return sorted(p.kind for p in (report.remaining if remaining else report.problems))


@contextmanager
def unchecked(store: SqlStore) -> Iterator[Connection]:
    """A transaction with foreign keys off, to make the rows no Postel write can make."""
    sqlite = store.engine.dialect.name == "sqlite"
    with store.engine.connect() as conn:
        # Outside a transaction: SQLite ignores the pragma inside one, and the store begins
        # every SQLAlchemy transaction itself (BEGIN), so the pragma goes to the driver.
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        else:
            conn.exec_driver_sql("SET session_replication_role = replica")
            conn.commit()
        with conn.begin():
            yield conn
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
        else:
            conn.exec_driver_sql("SET session_replication_role = DEFAULT")
            conn.commit()


def lose_body(store: SqlStore, sha256: str) -> None:
    """The body is gone everywhere it is kept: the blob file, and on PostgreSQL (bodies in
    the database, the file only a cache) its rows too."""
    store.blobs.local_path(sha256).unlink()
    if isinstance(store.blobs, PgBlobStore):
        with store.engine.begin() as conn:
            conn.execute(delete(t.blob_chunks).where(t.blob_chunks.c.sha256 == sha256))
            conn.execute(delete(t.blob_objects).where(t.blob_objects.c.sha256 == sha256))


def test_a_consistent_store_is_clean(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    deliver_one(store, alice)
    report = store.integrity.check()
    assert report.clean, report.problems
    assert report.examined["blobs"] == 1
    assert report.examined["mailboxes"] >= 1


def test_missing_blob_is_an_error_repair_cannot_fix(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    deliver_one(store, alice)
    (meta,) = store.mail.list_messages(mailbox_id(store, alice))
    lose_body(store, meta.blob_sha256)
    report = store.integrity.check(repair=True)
    assert kinds(report, remaining=True) == ["missing-blob"]
    assert not report.problems[0].repairable


def test_queue_row_without_its_blob_is_an_error(store: SqlStore) -> None:
    blob, _ = put_message(store, body="outbound")
    store.queue.enqueue(queue_id="Q1", blob=blob, body_offset=0, mail_from="a@example.test",
                        recipients=["x@remote.test"], account_id=None, smtputf8=False,
                        body_8bit=False)
    lose_body(store, blob.sha256)
    assert kinds(store.integrity.check()) == ["missing-blob"]


def test_orphan_blob_is_removed_by_repair_once_old(store: SqlStore) -> None:
    blob, _ = put_message(store, body="nobody names me")
    path = store.blobs.path(blob.sha256)
    # Young: it may be a delivery between fsync and commit, so it is left alone.
    assert store.integrity.check(repair=True).clean
    assert path.exists()
    os.utime(path, (OLD, OLD))
    report = store.integrity.check()
    assert kinds(report, remaining=True) == ["orphan-blob"]
    assert report.problems[0].repairable
    repaired = store.integrity.check(repair=True)
    assert repaired.clean and repaired.problems[0].repaired
    assert not path.exists()


def test_a_shared_blob_is_not_an_orphan(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    deliver_one(store, alice, body="same")
    deliver_one(store, alice, body="same")  # the same content: one file, two rows
    (meta, _) = store.mail.list_messages(mailbox_id(store, alice))
    path = store.blobs.path(meta.blob_sha256)
    os.utime(path, (OLD, OLD))
    assert store.integrity.check(repair=True, stale_after=0).clean
    assert path.exists()


def test_uidnext_and_modseq_too_low_are_raised(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    deliver_one(store, alice)
    uid = deliver_one(store, alice)
    store.mail.set_flags(box, [uid], Flags(seen=True), mode="add")
    top = store.mail.get_mailbox_by_id(box)
    assert top is not None
    with store.engine.begin() as conn:
        conn.execute(update(t.mailboxes).where(t.mailboxes.c.id == box)
                     .values(uidnext=uid, highestmodseq=1))
    report = store.integrity.check()
    assert kinds(report) == ["modseq-too-low", "uidnext-too-low"]
    assert all(p.repairable for p in report.problems)
    assert not store.integrity.check(repair=True).remaining
    after = store.mail.get_mailbox_by_id(box)
    assert after is not None
    assert after.uidnext == uid + 1
    assert after.highestmodseq == top.highestmodseq
    assert store.integrity.check().clean


def test_expunged_uids_count_for_uidnext(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    uid = deliver_one(store, alice)
    store.mail.expunge(box, [uid])
    with store.engine.begin() as conn:
        conn.execute(update(t.mailboxes).where(t.mailboxes.c.id == box).values(uidnext=uid))
    assert kinds(store.integrity.check()) == ["uidnext-too-low"]


def test_uidvalidity_counter_below_a_mailbox_is_raised(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with store.engine.begin() as conn:
        conn.execute(update(t.counters).where(t.counters.c.name == "uidvalidity")
                     .values(value=1))
    assert kinds(store.integrity.check()) == ["uidvalidity-counter-too-low"]
    assert store.integrity.check(repair=True).clean
    assert store.integrity.check().clean


def test_rows_without_their_parent_are_reported_not_deleted(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    deliver_one(store, alice)
    box = mailbox_id(store, alice)
    with unchecked(store) as conn:
        conn.execute(insert(t.subscriptions).values(account_id=9999, name="Ghost"))
        conn.execute(insert(t.expunged).values(mailbox_id=8888, uid=1, modseq=1))
        conn.execute(update(t.messages).where(t.messages.c.mailbox_id == box)
                     .values(mailbox_id=7777))
    report = store.integrity.check(repair=True)
    subjects = sorted(p.subject for p in report.remaining if p.kind == "orphan-row")
    assert subjects == ["expunged.mailbox_id = 8888", "messages.mailbox_id = 7777",
                        "subscriptions.account_id = 9999"]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 1


def test_stale_temp_files_are_removed(store: SqlStore) -> None:
    tmp = store.blobs.tmp_dir
    stale, fresh = tmp / "blob-stale", tmp / "blob-fresh"
    stale.write_bytes(b"half a body")
    fresh.write_bytes(b"a body being written")
    os.utime(stale, (OLD, OLD))
    report = store.integrity.check()
    assert kinds(report) == ["stale-temp-file"]
    assert store.integrity.check(repair=True).clean
    assert not stale.exists() and fresh.exists()


def test_a_blob_reused_by_a_new_delivery_is_not_an_orphan(store: SqlStore) -> None:
    # Another process may be between installing this content again (a duplicate: the old
    # file is reused) and committing its row; the reuse marks the file, so repair waits.
    blob, _ = put_message(store, body="old and reused")
    path = store.blobs.path(blob.sha256)
    os.utime(path, (OLD, OLD))
    put_message(store, body="old and reused")
    assert store.integrity.check(repair=True).clean
    assert path.exists()
