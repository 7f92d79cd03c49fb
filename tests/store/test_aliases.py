"""Aliases, catch-alls and recipient resolution: the contract both backends share."""

from __future__ import annotations

import pytest

from postel.store.errors import AlreadyExists, NotFound
from postel.store.model import Account, Alias
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user


def emails(accounts: list[Account]) -> list[str]:
    return sorted(a.email for a in accounts)


def test_add_list_remove_aliases(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    add_user(store, "carol@other.test")
    store.directory.add_alias("info@example.test", "alice@example.test")
    store.directory.add_alias("info@example.test", "carol@other.test")  # one source, two targets
    store.directory.add_alias("@other.test", "carol@other.test")
    assert store.directory.list_aliases() == [
        Alias("@other.test", "carol@other.test"),
        Alias("info@example.test", "alice@example.test"),
        Alias("info@example.test", "carol@other.test"),
    ]
    assert store.directory.list_aliases("Example.Test") == [
        Alias("info@example.test", "alice@example.test"),
        Alias("info@example.test", "carol@other.test"),
    ]
    store.directory.remove_alias("info@example.test", "carol@other.test")
    assert store.directory.list_aliases("example.test") == [
        Alias("info@example.test", "alice@example.test")
    ]
    with pytest.raises(NotFound):
        store.directory.remove_alias("info@example.test", "carol@other.test")


def test_duplicate_alias_refused(store: SqlStore) -> None:
    store.directory.add_domain("example.test")
    store.directory.add_alias("info@example.test", "x@remote.test")
    with pytest.raises(AlreadyExists):
        store.directory.add_alias("info@example.test", "x@remote.test")
    # The failed insert rolled back cleanly: the store goes on working.
    store.directory.add_alias("info@example.test", "y@remote.test")
    assert store.directory.list_aliases() == [
        Alias("info@example.test", "x@remote.test"),
        Alias("info@example.test", "y@remote.test"),
    ]


def test_alias_needs_local_domain_and_cannot_shadow_user(store: SqlStore) -> None:
    add_user(store, "alice@example.test")
    with pytest.raises(NotFound, match="not hosted"):
        store.directory.add_alias("info@nowhere.test", "alice@example.test")
    with pytest.raises(NotFound, match="not hosted"):
        store.directory.add_alias("@nowhere.test", "alice@example.test")
    with pytest.raises(AlreadyExists, match="user"):
        store.directory.add_alias("alice@example.test", "x@remote.test")
    assert store.directory.list_aliases() == []


def test_resolve_user(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    assert store.directory.resolve("alice@example.test") == ([alice], [])
    assert store.directory.resolve("nobody@example.test") is None
    assert store.directory.resolve("alice@remote.test") is None


def test_user_beats_catch_all(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    store.directory.add_alias("@example.test", "bob@example.test")
    assert store.directory.resolve("alice@example.test") == ([alice], [])
    assert store.directory.resolve("anything@example.test") == ([bob], [])
    assert store.directory.resolve("anything@other.test") is None


def test_alias_beats_catch_all(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    store.directory.add_alias("@example.test", "bob@example.test")
    store.directory.add_alias("sales@example.test", "alice@example.test")
    assert store.directory.resolve("sales@example.test") == ([alice], [])
    assert store.directory.resolve("other@example.test") == ([bob], [])


def test_alias_fan_out_and_chain(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    carol = add_user(store, "carol@other.test")
    store.directory.add_alias("team@example.test", "alice@example.test")
    store.directory.add_alias("team@example.test", "devs@example.test")
    store.directory.add_alias("devs@example.test", "bob@example.test")
    store.directory.add_alias("devs@example.test", "carol@other.test")
    # reached twice, stored once
    store.directory.add_alias("devs@example.test", "alice@example.test")
    resolved = store.directory.resolve("team@example.test")
    assert resolved is not None
    accounts, remote = resolved
    assert emails(accounts) == emails([alice, bob, carol])
    assert remote == []


def test_long_chain_ends_at_max_depth(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    for i in range(10):
        store.directory.add_alias(f"a{i}@example.test", f"a{i + 1}@example.test")
    store.directory.add_alias("a10@example.test", "alice@example.test")
    # a0 -> a1 -> ... -> a10 -> alice is 11 hops: deeper than the default of 8.
    assert store.directory.resolve("a0@example.test") == ([], [])
    assert store.directory.resolve("a0@example.test", max_depth=11) == ([alice], [])
    assert store.directory.resolve("a5@example.test") == ([alice], [])


@pytest.mark.timeout(10)
def test_alias_loops_end(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    store.directory.add_alias("a@example.test", "b@example.test")
    store.directory.add_alias("b@example.test", "a@example.test")
    assert store.directory.resolve("a@example.test") == ([], [])
    store.directory.add_alias("b@example.test", "alice@example.test")
    assert store.directory.resolve("a@example.test") == ([alice], [])
    store.directory.add_alias("self@example.test", "self@example.test")
    assert store.directory.resolve("self@example.test") == ([], [])


def test_remote_forwards(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    store.directory.add_alias("fwd@example.test", "someone@remote.test")
    store.directory.add_alias("fwd@example.test", "alice@example.test")
    store.directory.add_alias("fwd@example.test", "another@remote.test")
    store.directory.add_alias("fwd@example.test", "list@example.test")
    # reached twice: listed once
    store.directory.add_alias("list@example.test", "someone@remote.test")
    store.directory.add_alias("@example.test", "catch@remote.test")
    assert store.directory.resolve("fwd@example.test") == (
        [alice], ["another@remote.test", "someone@remote.test"]
    )
    assert store.directory.resolve("random@example.test") == ([], ["catch@remote.test"])


def test_alias_to_missing_local_address_is_dropped(store: SqlStore) -> None:
    store.directory.add_domain("example.test")
    store.directory.add_alias("old@example.test", "gone@example.test")
    # The source exists (so no "unknown user"), but there is nobody to deliver to.
    assert store.directory.resolve("old@example.test") == ([], [])


def test_disabled_accounts_receive_nothing(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    add_user(store, "bob@example.test")
    store.directory.update_account("bob@example.test", disabled=True)
    store.directory.add_alias("both@example.test", "alice@example.test")
    store.directory.add_alias("both@example.test", "bob@example.test")
    # A disabled user exists (no catch-all takes over) but gets no mail.
    store.directory.add_alias("@example.test", "alice@example.test")
    assert store.directory.resolve("bob@example.test") == ([], [])
    assert store.directory.resolve("both@example.test") == ([alice], [])


def test_addresses_of(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    store.directory.add_alias("info@example.test", "alice@example.test")
    store.directory.add_alias("info@example.test", "bob@example.test")
    store.directory.add_alias("a.smith@example.test", "alice@example.test")
    store.directory.add_alias("@example.test", "alice@example.test")  # a catch-all grants nothing
    store.directory.add_alias("team@example.test", "info@example.test")  # indirect: not a send-as
    assert store.directory.addresses_of(alice) == {
        "alice@example.test", "info@example.test", "a.smith@example.test"
    }
    assert store.directory.addresses_of(bob) == {"bob@example.test", "info@example.test"}
