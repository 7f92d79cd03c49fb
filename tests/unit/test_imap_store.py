"""The store operations the IMAP server added (``# -- imap --`` in SqlStore), on SQLite and
PostgreSQL like the store contract suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postel.app import open_store
from postel.config import parse_config
from postel.store.errors import AlreadyExists, NotFound, StoreError
from postel.store.model import Change, Flags, MessageAdded, MessagesExpunged
from postel.store.sql.store import SqlStore
from tests.store.conftest import _empty_pg, pg_url  # noqa: F401 - pg_url is a fixture
from tests.store.helpers import add_user, mailbox_id, put_message


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    config = parse_config({"data_dir": str(tmp_path / "data"), "storage": {"url": url}})
    opened = open_store(config)
    yield opened
    opened.close()
    if request.param == "postgres":
        _empty_pg(url)


def deliver(store: SqlStore, account_id: int, box: str = "INBOX", n: int = 1) -> None:
    for i in range(n):
        blob, parsed = put_message(store, f"m{i}")
        store.mail.deliver(blob, parsed, [(account_id, box)])


def test_claim_recent(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    inbox = mailbox_id(store, alice)
    deliver(store, alice.id, n=2)
    assert store.mail.claim_recent(inbox, 3) == range(1, 3)
    assert not store.mail.claim_recent(inbox, 3), "the second session gets nothing recent"
    deliver(store, alice.id)
    # Only what the caller listed (below `until`) is claimed; the rest stays for later.
    assert not store.mail.claim_recent(inbox, 3)
    assert store.mail.claim_recent(inbox, 10) == range(3, 4)


def test_rename_with_children_and_inbox(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    for name in ("Work", "Work/A", "Work/A/B", "Workshop"):
        store.mail.create_mailbox(alice.id, name)
    uidvalidity = store.mail.get_mailbox(alice.id, "Work/A")
    store.mail.rename_mailbox(alice.id, "Work", "Job")
    names = {b.name for b in store.mail.list_mailboxes(alice.id)}
    assert {"Job", "Job/A", "Job/A/B", "Workshop"} <= names and "Work" not in names
    renamed = store.mail.get_mailbox(alice.id, "Job/A")
    assert renamed is not None and uidvalidity is not None
    assert renamed.uidvalidity == uidvalidity.uidvalidity
    with pytest.raises(AlreadyExists):
        store.mail.rename_mailbox(alice.id, "Job", "Workshop")
    with pytest.raises(NotFound):
        store.mail.rename_mailbox(alice.id, "Nope", "Other")

    deliver(store, alice.id, n=3)
    inbox = mailbox_id(store, alice)
    changes: list[Change] = []
    store.on_commit(changes.extend)
    store.mail.rename_mailbox(alice.id, "INBOX", "Old")
    assert store.mail.list_messages(inbox) == []
    old = store.mail.get_mailbox(alice.id, "Old")
    assert old is not None and [m.uid for m in store.mail.list_messages(old.id)] == [1, 2, 3]
    assert store.mail.changes_since(inbox, 0).expunged_uids == [1, 2, 3]
    assert any(isinstance(c, MessagesExpunged) for c in changes)
    deliver(store, alice.id)
    assert [m.uid for m in store.mail.list_messages(inbox)] == [4], "UIDs are never reused"


def test_delete_and_subscribe(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    store.mail.create_mailbox(alice.id, "Tmp")
    deliver(store, alice.id, "Tmp", 2)
    box = store.mail.get_mailbox(alice.id, "Tmp")
    assert box is not None
    assert "Tmp" not in store.mail.subscriptions(alice.id)  # CREATE does not subscribe
    assert store.mail.set_subscribed(alice.id, "Tmp", True)
    assert "Tmp" in store.mail.subscriptions(alice.id)
    assert not store.mail.set_subscribed(alice.id, "Nope", True)
    store.mail.delete_mailbox(alice.id, "Tmp")
    assert store.mail.get_mailbox(alice.id, "Tmp") is None
    # RFC 3501 6.3.6: the subscription outlives the mailbox, until UNSUBSCRIBE.
    assert "Tmp" in store.mail.subscriptions(alice.id)
    assert store.mail.set_subscribed(alice.id, "Tmp", False)
    assert "Tmp" not in store.mail.subscriptions(alice.id)
    assert not store.mail.set_subscribed(alice.id, "Tmp", False)
    with pytest.raises(StoreError):
        store.mail.delete_mailbox(alice.id, "INBOX")
    recreated = store.mail.create_mailbox(alice.id, "Tmp")
    assert recreated.uidvalidity != box.uidvalidity


def test_copy_and_move(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    deliver(store, alice.id, n=3)
    inbox = mailbox_id(store, alice)
    archive = mailbox_id(store, alice, "Archive")
    store.mail.set_flags(inbox, [2], Flags(flagged=True), mode="add")
    changes: list[Change] = []
    store.on_commit(changes.extend)
    assert store.mail.copy(inbox, [2, 3, 99], archive) == [(2, 1), (3, 2)]
    copied = store.mail.list_messages(archive)
    assert [m.flags.flagged for m in copied] == [True, False]
    assert sum(isinstance(c, MessageAdded) for c in changes) == 2
    assert store.mail.copy(inbox, [1, 2], archive, move=True) == [(1, 3), (2, 4)]
    assert [m.uid for m in store.mail.list_messages(inbox)] == [3]
    assert store.mail.changes_since(inbox, 0).expunged_uids == [1, 2]
    assert store.mail.copy(inbox, [42], archive) == []


def test_append_many_is_atomic_and_fields(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    drafts = mailbox_id(store, alice, "Drafts")
    items = [(*put_message(store, f"d{i}"), Flags(draft=True), None) for i in range(3)]
    delivered = store.mail.append_many(alice.id, drafts, items)
    assert [d.uid for d in delivered] == [1, 2, 3]
    assert len({d.modseq for d in delivered}) == 1
    with pytest.raises(NotFound):
        store.mail.append_many(bob.id, drafts, items)
    fields = store.mail.message_fields(drafts, [1, 3], ["size", "envelope", "mime"])
    assert set(fields) == {1, 3}
    assert fields[3]["envelope"][1] == "d2" and fields[1]["mime"]["type"] == "text"
    assert set(store.mail.message_fields(drafts, None, ["uid"])) == {1, 2, 3}
