"""Domains and accounts: the contract both backends share."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from postel.mail.address import parse_email
from postel.store.model import DEFAULT_MAILBOXES, OutboundItem, Role
from postel.store.sql.store import AlreadyExists, NotFound, SqlStore, StoreError
from tests.store.helpers import PASSWORD_HASH, add_user, deliver_one, mailbox_id, put_message

# -- domains ------------------------------------------------------------------------------


def test_add_list_get_domains(store: SqlStore) -> None:
    assert store.list_domains() == []
    b = store.add_domain("b.example")
    a = store.add_domain("A.Example.")  # stored lowercase, without the root dot
    assert a.name == "a.example"
    assert store.list_domains() == [a, b]  # sorted by name, round-trips exactly
    assert store.get_domain("A.EXAMPLE") == a
    assert store.get_domain("a.example.") == a
    assert store.get_domain("c.example") is None
    assert store.is_local_domain("b.example")
    assert not store.is_local_domain("c.example")
    assert a.created_at.tzinfo is not None


def test_unicode_domain(store: SqlStore) -> None:
    d = store.add_domain("bücher.example")
    assert store.get_domain("bücher.example") == d


def test_duplicate_domain_refused(store: SqlStore) -> None:
    store.add_domain("example.test")
    with pytest.raises(AlreadyExists):
        store.add_domain("EXAMPLE.test")
    assert len(store.list_domains()) == 1


def test_remove_domain(store: SqlStore) -> None:
    store.add_domain("example.test")
    store.add_domain("other.test")
    store.add_alias("@example.test", "someone@other.test")
    store.remove_domain("Example.Test.")  # same normalisation as add_domain
    assert [d.name for d in store.list_domains()] == ["other.test"]
    assert store.list_aliases() == []  # its aliases went with it
    with pytest.raises(NotFound):
        store.remove_domain("example.test")


def test_remove_domain_with_users_refused(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with pytest.raises(StoreError, match="user"):
        store.remove_domain("example.test")
    assert store.get_domain("example.test") is not None
    store.remove_account("alice@example.test")
    store.remove_domain("example.test")
    assert store.list_domains() == []


# -- accounts -----------------------------------------------------------------------------


def test_add_account_fields(store: SqlStore) -> None:
    store.add_domain("example.test")
    account = store.add_account(
        "alice@example.test",
        PASSWORD_HASH,
        role=Role.DOMAIN_ADMIN,
        backup_email="alice@elsewhere.test",
        display_name="Alice Ä",
        quota_bytes=5 * 2**40,  # needs 64 bits
    )
    assert account.email == "alice@example.test"
    assert account.domain == "example.test"
    assert account.domain_id == store.get_domain("example.test").id  # type: ignore[union-attr]
    assert account.password_hash == PASSWORD_HASH
    assert account.role is Role.DOMAIN_ADMIN
    assert account.backup_email == "alice@elsewhere.test"
    assert account.display_name == "Alice Ä"
    assert account.quota_bytes == 5 * 2**40
    assert account.disabled is False
    assert account.created_at.tzinfo is not None
    assert account.password_changed_at == account.created_at
    assert store.get_account("alice@example.test") == account
    assert store.get_account_by_id(account.id) == account


def test_default_mailboxes(store: SqlStore) -> None:
    account = add_user(store, "alice@example.test")
    boxes = store.list_mailboxes(account.id)
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
    assert store.imap_subscriptions(account.id) == {b.name for b in boxes}
    assert store.get_mailbox(account.id, "inbox") == boxes[0]  # INBOX is case-insensitive
    assert store.get_mailbox(account.id, "sent") is None  # other names are not
    assert store.get_mailbox_by_id(boxes[2].id) == boxes[2]


def test_lookup_by_key_is_case_insensitive(store: SqlStore) -> None:
    account = add_user(store, parse_email("Alice.Smith@Example.TEST").key)
    assert account.email == "alice.smith@example.test"
    for spelling in (
        "alice.smith@example.test", "ALICE.SMITH@EXAMPLE.TEST", "Alice.Smith@example.Test"
    ):
        assert store.get_account(parse_email(spelling).key) == account
    assert store.get_account("bob@example.test") is None
    assert store.get_account_by_id(account.id + 1000) is None


def test_duplicate_account_refused(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with pytest.raises(AlreadyExists):
        store.add_account("alice@example.test", PASSWORD_HASH)
    assert len(store.list_accounts()) == 1


def test_account_needs_hosted_domain(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="not hosted"):
        store.add_account("alice@nowhere.test", PASSWORD_HASH)
    assert store.list_accounts() == []


def test_account_cannot_shadow_alias(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    store.add_alias("postmaster@example.test", "alice@example.test")
    with pytest.raises(AlreadyExists, match="alias"):
        store.add_account("postmaster@example.test", PASSWORD_HASH)


def test_list_accounts(store: SqlStore) -> None:
    b = add_user(store, "bob@example.test")
    a = add_user(store, "alice@example.test")
    c = add_user(store, "carol@other.test")
    assert store.list_accounts() == [a, b, c]
    assert store.list_accounts("example.test") == [a, b]
    assert store.list_accounts("Other.Test") == [c]
    assert store.list_accounts("none.test") == []


def test_update_account(store: SqlStore) -> None:
    account = add_user(store, "alice@example.test")
    updated = store.update_account(
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
    assert store.get_account("alice@example.test") == updated


def test_password_change_moves_timestamp(store: SqlStore) -> None:
    account = add_user(store, "alice@example.test")
    updated = store.update_account("alice@example.test", password_hash="$argon2id$new")
    assert updated.password_hash == "$argon2id$new"
    assert updated.password_changed_at > account.password_changed_at
    assert updated.created_at == account.created_at
    assert store.get_account("alice@example.test") == updated


def test_update_account_errors(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with pytest.raises(NotFound):
        store.update_account("bob@example.test", display_name="Bob")
    with pytest.raises(ValueError, match="domain_id"):
        store.update_account("alice@example.test", domain_id=2)
    with pytest.raises(ValueError):
        store.update_account("alice@example.test", role="emperor")


def test_remove_account_cascades(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    blob, parsed = put_message(store)
    store.deliver(blob, parsed, [(alice.id, "INBOX"), (alice.id, "Sent"), (bob.id, "INBOX")])
    alice_inbox = mailbox_id(store, alice)
    store.expunge(mailbox_id(store, alice, "Sent"))  # nothing \Deleted: no-op
    store.expunge(mailbox_id(store, alice, "Sent"), [1])  # leaves an expunged row
    store.enqueue(
        queue_id="q1", blob=blob, body_offset=0, mail_from="alice@example.test",
        recipients=["x@remote.test"], account_id=alice.id, smtputf8=False, body_8bit=False,
    )

    store.remove_account("alice@example.test")

    assert store.get_account("alice@example.test") is None
    assert store.get_account_by_id(alice.id) is None
    assert store.list_mailboxes(alice.id) == []
    assert store.get_mailbox_by_id(alice_inbox) is None
    assert store.list_messages(alice_inbox) == []
    assert store.account_usage(alice.id) == 0
    # Bob's copy of the same body is untouched, and the queued mail still goes out.
    assert [m.uid for m in store.list_messages(mailbox_id(store, bob))] == [1]
    (queued,) = store.list_queue()
    assert isinstance(queued, OutboundItem)
    assert queued.recipients == ["x@remote.test"]
    assert store.referenced_blobs() == {blob.sha256}
    with pytest.raises(NotFound):
        store.remove_account("alice@example.test")
    # The address can be created again, empty.
    again = add_user(store, "alice@example.test")
    assert again.id != alice.id
    assert all(store.list_messages(b.id) == [] for b in store.list_mailboxes(again.id))


def test_account_usage(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    assert store.account_usage(alice.id) == 0
    blob, parsed = put_message(store, body="x" * 100)
    store.deliver(blob, parsed, [(alice.id, "INBOX"), (alice.id, "Archive"), (bob.id, "INBOX")])
    assert store.account_usage(alice.id) == 2 * blob.size
    assert store.account_usage(bob.id) == blob.size
    store.expunge(mailbox_id(store, alice), [1])
    assert store.account_usage(alice.id) == blob.size


def test_second_instance_sees_the_same_data(make_store: Callable[[], SqlStore]) -> None:
    # The CLI and the server open the same database; migrations run again harmlessly.
    first = make_store()
    alice = add_user(first, "alice@example.test")
    second = make_store()
    assert second.get_account("alice@example.test") == alice
    assert deliver_one(second, alice) == 1
    assert deliver_one(first, alice) == 2


def test_remove_account_signed_in_on_the_web(store: SqlStore) -> None:
    # `postel user remove` calls remove_account alone: rows that refer to the account
    # (web sessions, password reset tokens) must not make it fail on a foreign key.
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    for account in (alice, bob):
        store.web_session_create(f"session-{account.id}", account.id, "192.0.2.1", "test")
        store.reset_token_create(
            f"reset-{account.id}", account.id, datetime.now(UTC) + timedelta(hours=1)
        )
    store.remove_account("alice@example.test")
    assert store.get_account("alice@example.test") is None
    assert store.web_session_get(f"session-{alice.id}") is None
    assert store.reset_token_account(f"reset-{alice.id}") is None
    assert store.web_session_get(f"session-{bob.id}") is not None
    assert store.reset_token_account(f"reset-{bob.id}") == bob.id
