"""Domains and accounts: the contract both backends share."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from postel.mail.address import parse_email
from postel.store.errors import AlreadyExists, NotFound, StoreError
from postel.store.model import DEFAULT_MAILBOXES, OutboundItem, Role
from postel.store.sql.store import SqlStore
from tests.store.helpers import PASSWORD_HASH, add_user, deliver_one, mailbox_id, put_message

# -- domains ------------------------------------------------------------------------------


def test_add_list_get_domains(store: SqlStore) -> None:
    assert store.directory.list_domains() == []
    b = store.directory.add_domain("b.example")
    a = store.directory.add_domain("A.Example.")  # stored lowercase, without the root dot
    assert a.name == "a.example"
    assert store.directory.list_domains() == [a, b]  # sorted by name, round-trips exactly
    assert store.directory.get_domain("A.EXAMPLE") == a
    assert store.directory.get_domain("a.example.") == a
    assert store.directory.get_domain("c.example") is None
    assert store.directory.is_local_domain("b.example")
    assert not store.directory.is_local_domain("c.example")
    assert a.created_at.tzinfo is not None


def test_unicode_domain(store: SqlStore) -> None:
    d = store.directory.add_domain("bücher.example")
    assert store.directory.get_domain("bücher.example") == d


def test_duplicate_domain_refused(store: SqlStore) -> None:
    store.directory.add_domain("example.test")
    with pytest.raises(AlreadyExists):
        store.directory.add_domain("EXAMPLE.test")
    assert len(store.directory.list_domains()) == 1


def test_remove_domain(store: SqlStore) -> None:
    store.directory.add_domain("example.test")
    store.directory.add_domain("other.test")
    store.directory.add_alias("@example.test", "someone@other.test")
    store.directory.remove_domain("Example.Test.")  # same normalisation as add_domain
    assert [d.name for d in store.directory.list_domains()] == ["other.test"]
    assert store.directory.list_aliases() == []  # its aliases went with it
    with pytest.raises(NotFound):
        store.directory.remove_domain("example.test")


def test_remove_domain_with_users_refused(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with pytest.raises(StoreError, match="user"):
        store.directory.remove_domain("example.test")
    assert store.directory.get_domain("example.test") is not None
    store.directory.remove_account("alice@example.test")
    store.directory.remove_domain("example.test")
    assert store.directory.list_domains() == []


# -- accounts -----------------------------------------------------------------------------


def test_add_account_fields(store: SqlStore) -> None:
    store.directory.add_domain("example.test")
    account = store.directory.add_account(
        "alice@example.test",
        PASSWORD_HASH,
        role=Role.DOMAIN_ADMIN,
        backup_email="alice@elsewhere.test",
        display_name="Alice Ä",
        quota_bytes=5 * 2**40,  # needs 64 bits
    )
    assert account.email == "alice@example.test"
    assert account.domain == "example.test"
    assert account.domain_id == store.directory.get_domain("example.test").id  # type: ignore[union-attr]
    assert account.password_hash == PASSWORD_HASH
    assert account.role is Role.DOMAIN_ADMIN
    assert account.backup_email == "alice@elsewhere.test"
    assert account.display_name == "Alice Ä"
    assert account.quota_bytes == 5 * 2**40
    assert account.disabled is False
    assert account.created_at.tzinfo is not None
    assert account.password_changed_at == account.created_at
    assert store.directory.get_account("alice@example.test") == account
    assert store.directory.get_account_by_id(account.id) == account


def test_default_mailboxes(store: SqlStore) -> None:
    account = add_user(store, "alice@example.test")
    boxes = store.mail.list_mailboxes(account.id)
    assert [(b.name, b.special_use) for b in boxes] == list(DEFAULT_MAILBOXES)
    assert [name for name, _ in DEFAULT_MAILBOXES] == [
        "INBOX", "Drafts", "Sent", "Junk", "Trash", "Archive"
    ]
    for box in boxes:
        assert box.account_id == account.id
        assert box.uidnext == 1
        assert box.highestmodseq >= 1
        assert box.first_recent_uid == 1
        assert 0 < box.uidvalidity < 2**32  # RFC 3501: a non-zero 32-bit number
    assert store.mail.subscriptions(account.id) == {b.name for b in boxes}
    assert store.mail.get_mailbox(account.id, "inbox") == boxes[0]  # INBOX is case-insensitive
    assert store.mail.get_mailbox(account.id, "sent") is None  # other names are not
    assert store.mail.get_mailbox_by_id(boxes[2].id) == boxes[2]


def test_lookup_by_key_is_case_insensitive(store: SqlStore) -> None:
    account = add_user(store, parse_email("Alice.Smith@Example.TEST").key)
    assert account.email == "alice.smith@example.test"
    for spelling in (
        "alice.smith@example.test", "ALICE.SMITH@EXAMPLE.TEST", "Alice.Smith@example.Test"
    ):
        assert store.directory.get_account(parse_email(spelling).key) == account
    assert store.directory.get_account("bob@example.test") is None
    assert store.directory.get_account_by_id(account.id + 1000) is None


def test_duplicate_account_refused(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with pytest.raises(AlreadyExists):
        store.directory.add_account("alice@example.test", PASSWORD_HASH)
    assert len(store.directory.list_accounts()) == 1


def test_account_needs_hosted_domain(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="not hosted"):
        store.directory.add_account("alice@nowhere.test", PASSWORD_HASH)
    assert store.directory.list_accounts() == []


def test_account_cannot_shadow_alias(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    store.directory.add_alias("postmaster@example.test", "alice@example.test")
    with pytest.raises(AlreadyExists, match="alias"):
        store.directory.add_account("postmaster@example.test", PASSWORD_HASH)


def test_list_accounts(store: SqlStore) -> None:
    b = add_user(store, "bob@example.test")
    a = add_user(store, "alice@example.test")
    c = add_user(store, "carol@other.test")
    assert store.directory.list_accounts() == [a, b, c]
    assert store.directory.list_accounts("example.test") == [a, b]
    assert store.directory.list_accounts("Other.Test") == [c]
    assert store.directory.list_accounts("none.test") == []


def test_update_account(store: SqlStore) -> None:
    account = add_user(store, "alice@example.test")
    updated = store.directory.update_account(
        "alice@example.test", display_name="Alice", role="admin", quota_bytes=1000,
        disabled=True, backup_email="a@elsewhere.test",
    )
    assert updated.display_name == "Alice"
    assert updated.role is Role.ADMIN
    assert updated.quota_bytes == 1000
    assert updated.disabled is True
    assert updated.backup_email == "a@elsewhere.test"
    # No new password: the password timestamp stays.
    assert updated.password_changed_at == account.password_changed_at
    assert store.directory.get_account("alice@example.test") == updated


def test_password_change_moves_timestamp(store: SqlStore) -> None:
    account = add_user(store, "alice@example.test")
    updated = store.directory.update_account("alice@example.test", password_hash="$argon2id$new")
    assert updated.password_hash == "$argon2id$new"
    assert updated.password_changed_at > account.password_changed_at
    assert updated.created_at == account.created_at
    assert store.directory.get_account("alice@example.test") == updated


def test_update_account_errors(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with pytest.raises(NotFound):
        store.directory.update_account("bob@example.test", display_name="Bob")
    with pytest.raises(ValueError, match="domain_id"):
        store.directory.update_account("alice@example.test", domain_id=2)
    with pytest.raises(ValueError):
        store.directory.update_account("alice@example.test", role="emperor")


def test_remove_account_cascades(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    blob, parsed = put_message(store)
    store.mail.deliver(blob, parsed, [(alice.id, "INBOX"), (alice.id, "Sent"), (bob.id, "INBOX")])
    alice_inbox = mailbox_id(store, alice)
    store.mail.expunge(mailbox_id(store, alice, "Sent"))  # nothing \Deleted: no-op
    store.mail.expunge(mailbox_id(store, alice, "Sent"), [1])  # leaves an expunged row
    store.queue.enqueue(
        queue_id="q1", blob=blob, body_offset=0, mail_from="alice@example.test",
        recipients=["x@remote.test"], account_id=alice.id, smtputf8=False, body_8bit=False,
    )

    store.directory.remove_account("alice@example.test")

    assert store.directory.get_account("alice@example.test") is None
    assert store.directory.get_account_by_id(alice.id) is None
    assert store.mail.list_mailboxes(alice.id) == []
    assert store.mail.get_mailbox_by_id(alice_inbox) is None
    assert store.mail.list_messages(alice_inbox) == []
    assert store.directory.account_usage(alice.id) == 0
    # Bob's copy of the same body is untouched, and the queued mail still goes out.
    assert [m.uid for m in store.mail.list_messages(mailbox_id(store, bob))] == [1]
    (queued,) = store.queue.list_all()
    assert isinstance(queued, OutboundItem)
    assert queued.recipients == ["x@remote.test"]
    assert store.blobs.exists(blob.sha256)  # still named by Bob's copy and the queue
    with pytest.raises(NotFound):
        store.directory.remove_account("alice@example.test")
    # The address can be created again, empty.
    again = add_user(store, "alice@example.test")
    assert again.id != alice.id
    assert all(store.mail.list_messages(b.id) == [] for b in store.mail.list_mailboxes(again.id))


def test_account_usage(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    assert store.directory.account_usage(alice.id) == 0
    blob, parsed = put_message(store, body="x" * 100)
    store.mail.deliver(
        blob, parsed, [(alice.id, "INBOX"), (alice.id, "Archive"), (bob.id, "INBOX")]
    )
    assert store.directory.account_usage(alice.id) == 2 * blob.size
    assert store.directory.account_usage(bob.id) == blob.size
    store.mail.expunge(mailbox_id(store, alice), [1])
    assert store.directory.account_usage(alice.id) == blob.size


def test_second_instance_sees_the_same_data(make_store: Callable[[], SqlStore]) -> None:
    # The CLI and the server open the same database; migrations run again harmlessly.
    first = make_store()
    alice = add_user(first, "alice@example.test")
    second = make_store()
    assert second.directory.get_account("alice@example.test") == alice
    assert deliver_one(second, alice) == 1
    assert deliver_one(first, alice) == 2


def test_remove_account_signed_in_on_the_web(store: SqlStore) -> None:
    # `postel user remove` calls remove_account alone: rows that refer to the account
    # (web sessions, password reset tokens) must not make it fail on a foreign key.
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    for account in (alice, bob):
        store.web.session_create(f"session-{account.id}", account.id, "192.0.2.1", "test")
        store.web.reset_token_create(
            f"reset-{account.id}", account.id, datetime.now(UTC) + timedelta(hours=1)
        )
    store.directory.remove_account("alice@example.test")
    assert store.directory.get_account("alice@example.test") is None
    assert store.web.session_get(f"session-{alice.id}") is None
    assert store.web.reset_token_account(f"reset-{alice.id}") is None
    assert store.web.session_get(f"session-{bob.id}") is not None
    assert store.web.reset_token_account(f"reset-{bob.id}") == bob.id
