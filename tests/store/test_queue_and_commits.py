"""The outbound queue rows, and the changes a commit hands to its listeners."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

import pytest
from sqlalchemy import insert

from postel.store.errors import NotFound
from postel.store.model import Change, Flags, MessageAdded, MessagesExpunged, QueueChanged
from postel.store.sql import schema
from postel.store.sql.rows import now
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, deliver_one, mailbox_id, put_message

# -- queue --------------------------------------------------------------------------------


def test_enqueue_one_row_per_domain(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    blob, _ = put_message(store, body="queued")
    ids = store.queue.enqueue(
        queue_id="Q1abc",
        blob=blob,
        body_offset=10,
        mail_from="alice@example.test",
        recipients=["a@one.test", "B@One.TEST", "c@two.test", "ü@drei.test"],
        account_id=alice.id,
        smtputf8=True,
        body_8bit=False,
    )
    assert len(ids) == 3 and len(set(ids)) == 3
    items = store.queue.list_all()
    assert [i.id for i in items] == ids  # list_all is in id order
    by_domain = {i.domain: i for i in items}
    assert set(by_domain) == {"one.test", "two.test", "drei.test"}
    assert by_domain["one.test"].recipients == ["a@one.test", "B@One.TEST"]
    assert by_domain["drei.test"].recipients == ["ü@drei.test"]
    for item in items:
        assert item.queue_id == "Q1abc"
        assert item.blob_sha256 == blob.sha256
        assert item.body_offset == 10
        assert item.size == blob.size - 10
        assert item.mail_from == "alice@example.test"
        assert item.state == "queued"
        assert item.attempts == 0
        assert item.last_error is None
        assert isinstance(item.next_attempt_at, datetime)
        assert item.next_attempt_at.tzinfo is not None
        assert item.next_attempt_at == item.created_at  # due at once


def test_enqueue_and_retry_now_tell_the_queue_workers(store: SqlStore) -> None:
    heard: list[list[object]] = []
    store.on_commit(lambda changes: heard.append(list(changes)))
    blob, _ = put_message(store, body="queued")
    (row,) = store.queue.enqueue(
        queue_id="Q2", blob=blob, body_offset=0, mail_from="", recipients=["x@remote.test"],
        account_id=None, smtputf8=False, body_8bit=False,
    )
    assert heard == [[QueueChanged()]]
    assert len(store.queue.claim(now(), 10)) == 1
    store.queue.reschedule(row, next_attempt_at=now(), error="451 later")
    assert len(heard) == 1  # a later attempt is the poll's business
    assert store.queue.retry_now(row) == 1
    assert heard[-1] == [QueueChanged()]
    assert store.queue.retry_now(row + 1) == 0
    assert len(heard) == 2  # nothing made due, nothing said


def test_enqueue_null_sender_without_account(store: SqlStore) -> None:
    blob, _ = put_message(store)
    (row_id,) = store.queue.enqueue(
        queue_id="Q2", blob=blob, body_offset=0, mail_from="", recipients=["x@remote.test"],
        account_id=None, smtputf8=False, body_8bit=True,
    )
    (item,) = store.queue.list_all()
    assert item.id == row_id
    assert item.mail_from == ""  # the null reverse-path of a bounce
    assert item.size == blob.size


# -- commit listeners ---------------------------------------------------------------------


def test_listener_runs_after_commit(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    seen_by_listener: list[tuple[list[Change], list[int]]] = []

    def listener(changes: Sequence[Change]) -> None:
        # Another connection already sees the rows: the transaction has committed.
        seen_by_listener.append((list(changes), [m.uid for m in store.mail.list_messages(box)]))

    store.on_commit(listener)
    uid = deliver_one(store, alice)
    ((changes, visible),) = seen_by_listener
    (added,) = changes
    assert isinstance(added, MessageAdded)
    assert (added.account_id, added.mailbox_id, added.uid) == (alice.id, box, uid)
    assert visible == [uid]


def test_every_listener_gets_every_batch(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    first: list[Change] = []
    second: list[Change] = []
    store.on_commit(first.extend)
    store.on_commit(second.extend)
    deliver_one(store, alice)
    store.mail.set_flags(box, [1], Flags(deleted=True))
    store.mail.expunge(box)
    assert [type(c).__name__ for c in first] == ["MessageAdded", "FlagsChanged",
                                                 "MessagesExpunged"]
    assert first == second
    assert isinstance(first[-1], MessagesExpunged) and first[-1].uids == (1,)


def test_writes_without_changes_publish_nothing(store: SqlStore) -> None:
    calls: list[Sequence[Change]] = []
    store.on_commit(calls.append)
    store.directory.add_domain("example.test")
    store.directory.add_account("alice@example.test", "hash")
    store.directory.add_alias("info@example.test", "alice@example.test")
    store.directory.update_account("alice@example.test", display_name="A")
    assert calls == []


def test_no_listener_call_on_rollback(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    calls: list[Sequence[Change]] = []
    store.on_commit(calls.append)
    blob, parsed = put_message(store)
    with pytest.raises(NotFound):
        store.mail.deliver(blob, parsed, [(alice.id, "INBOX"), (alice.id + 99, "INBOX")])
    # A write that had already recorded a change, then failed: rolled back, not published.
    with pytest.raises(RuntimeError), store.db.write() as (conn, changes):
        conn.execute(insert(schema.domains).values(name="new.test", created_at=now()))
        changes.append(MessageAdded(alice.id, mailbox_id(store, alice), 1, 2))
        raise RuntimeError("boom")
    assert calls == []
    assert store.directory.get_domain("new.test") is None
    assert store.mail.list_messages(mailbox_id(store, alice)) == []


def test_failing_listener_does_not_fail_a_committed_write(store: SqlStore) -> None:
    # The change is committed when listeners run. A hint that cannot be delivered loses
    # nothing (subscribers re-read the store), but reporting the write as failed would
    # make SMTP answer 4xx for mail it has stored, and the sender would send it again.
    alice = add_user(store, "alice@example.test")
    received: list[Change] = []

    def broken(changes: Sequence[Change]) -> None:
        raise RuntimeError("event loop closed")

    store.on_commit(broken)
    store.on_commit(received.extend)
    uid = deliver_one(store, alice)
    assert uid == 1
    assert [m.uid for m in store.mail.list_messages(mailbox_id(store, alice))] == [1]
    assert len(received) == 1  # later listeners still hear about it


def test_claims_have_owners_and_leases(store: SqlStore) -> None:
    """Several hosts share one queue: a row one host claimed is not claimed by another
    while its lease runs, is taken over once it ran out (the host died mid-delivery), and
    a host's restart releases only its own claims at once."""
    blob, _ = put_message(store)
    store.queue.enqueue(queue_id="Q1", blob=blob, body_offset=0, mail_from="a@example.test",
                        recipients=["x@one.test"], account_id=None, smtputf8=False,
                        body_8bit=False)
    store.queue.enqueue(queue_id="Q2", blob=blob, body_offset=0, mail_from="a@example.test",
                        recipients=["x@two.test"], account_id=None, smtputf8=False,
                        body_8bit=False)
    (first,) = store.queue.claim(now(), 1, owner="host-a", lease=0.3)
    (second,) = store.queue.claim(now(), 10, owner="host-b", lease=600)
    assert first.id != second.id
    assert store.queue.claim(now(), 10, owner="host-b", lease=600) == []  # both held
    assert store.queue.release_claims("host-c") == 0  # a third host's start: not its rows
    time.sleep(0.5)  # host-a's lease runs out
    (taken,) = store.queue.claim(now(), 10, owner="host-b", lease=600)
    assert taken.id == first.id
    assert store.queue.release_claims("host-b") == 2  # host-b restarted: both due again
    assert len(store.queue.claim(now(), 10, owner="host-a", lease=600)) == 2


def test_a_renewed_claim_is_not_taken_over(store: SqlStore) -> None:
    blob, _ = put_message(store)
    store.queue.enqueue(queue_id="Q1", blob=blob, body_offset=0, mail_from="a@example.test",
                        recipients=["x@one.test"], account_id=None, smtputf8=False,
                        body_8bit=False)
    (mine,) = store.queue.claim(now(), 1, owner="host-a", lease=0.3)
    assert store.queue.renew_claims("host-b", [mine.id], 600) == 0  # not its claim
    assert store.queue.renew_claims("host-a", [mine.id], 600) == 1  # a slow delivery
    time.sleep(0.5)
    assert store.queue.claim(now(), 10, owner="host-b", lease=600) == []
