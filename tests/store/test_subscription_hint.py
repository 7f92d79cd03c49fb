"""SUBSCRIBE and UNSUBSCRIBE publish a hint, so other IMAP sessions' NOTIFY can report a
SubscriptionChange (RFC 5465 5.5); a missing mailbox changes nothing and says so."""

from __future__ import annotations

from postel.store.model import MailboxChanged
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, mailbox_id


def test_subscribing_publishes_the_mailbox_and_stores_the_flag(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    archive = mailbox_id(store, alice, "Archive")
    changes: list[object] = []
    store.on_commit(changes.extend)
    assert store.mail.set_subscribed(alice.id, "Archive", False)
    assert changes == [MailboxChanged(alice.id, archive)]
    box = store.mail.get_mailbox_by_id(archive)
    assert box is not None and not box.subscribed
    assert store.mail.set_subscribed(alice.id, "Archive", True)
    box = store.mail.get_mailbox_by_id(archive)
    assert box is not None and box.subscribed
    assert len(changes) == 2


def test_subscribing_a_missing_mailbox_publishes_nothing(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    changes: list[object] = []
    store.on_commit(changes.extend)
    assert not store.mail.set_subscribed(alice.id, "Nowhere", True)
    assert changes == []
