"""SUBSCRIBE and UNSUBSCRIBE publish a hint when they change the subscription list, so
other IMAP sessions' NOTIFY can report a SubscriptionChange (RFC 5465 5.5)."""

from __future__ import annotations

from postel.store.model import MailboxChanged
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, mailbox_id


def test_subscribing_publishes_the_mailbox(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    archive = mailbox_id(store, alice, "Archive")
    store.mail.set_subscribed(alice.id, "Archive", False)
    changes: list[object] = []
    store.on_commit(changes.extend)
    assert store.mail.set_subscribed(alice.id, "Archive", True)
    assert changes == [MailboxChanged(alice.id, archive)]
    assert "Archive" in store.mail.subscriptions(alice.id)
    assert store.mail.set_subscribed(alice.id, "Archive", False)
    assert changes == [MailboxChanged(alice.id, archive)] * 2
    assert "Archive" not in store.mail.subscriptions(alice.id)


def test_what_changes_nothing_publishes_nothing(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    store.mail.set_subscribed(alice.id, "Archive", True)
    changes: list[object] = []
    store.on_commit(changes.extend)
    assert store.mail.set_subscribed(alice.id, "Archive", True)  # already subscribed
    assert not store.mail.set_subscribed(alice.id, "Nowhere", True)
    assert changes == []
