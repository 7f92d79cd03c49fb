"""REPLACE (RFC 8508): the store's append-and-expunge in one transaction, on both
backends."""

from __future__ import annotations

import pytest

from postel.store.errors import NotFound
from postel.store.model import Flags, MessageAdded, MessagesExpunged
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, deliver_one, mailbox_id, put_message


def test_replace_appends_and_expunges_together(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    drafts = mailbox_id(store, alice, "Drafts")
    old = deliver_one(store, alice, "Drafts", body="first draft")
    changes: list[object] = []
    store.on_commit(changes.extend)
    blob, parsed = put_message(store, body="second draft")
    done = store.mail.replace_message(alice.id, drafts, old, drafts,
                                      (blob, parsed, Flags(draft=True), None))
    assert (done.mailbox_id, done.uid) == (drafts, old + 1)
    (meta,) = store.mail.list_messages(drafts)
    assert meta.uid == done.uid and meta.flags.draft and meta.blob_sha256 == blob.sha256
    assert store.mail.changes_since(drafts, 0).expunged_uids == [old]
    assert any(isinstance(c, MessageAdded) and c.uid == done.uid for c in changes)
    assert any(isinstance(c, MessagesExpunged) and c.uids == (old,) for c in changes)


def test_replace_into_another_mailbox(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    inbox, sent = mailbox_id(store, alice), mailbox_id(store, alice, "Sent")
    old = deliver_one(store, alice)
    blob, parsed = put_message(store, body="new")
    done = store.mail.replace_message(alice.id, inbox, old, sent,
                                      (blob, parsed, Flags(), None))
    assert store.mail.list_messages(inbox) == []
    assert [m.uid for m in store.mail.list_messages(sent)] == [done.uid]


def test_replace_of_a_missing_message_changes_nothing(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    inbox = mailbox_id(store, alice)
    kept = deliver_one(store, alice)
    blob, parsed = put_message(store, body="new")
    with pytest.raises(NotFound):
        store.mail.replace_message(alice.id, inbox, kept + 5, inbox,
                                   (blob, parsed, Flags(), None))
    with pytest.raises(NotFound):  # another account's mailbox is not a target
        store.mail.replace_message(alice.id, inbox, kept, mailbox_id(store, bob),
                                   (blob, parsed, Flags(), None))
    assert [m.uid for m in store.mail.list_messages(inbox)] == [kept]
