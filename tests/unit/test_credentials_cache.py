"""CredentialsCache: TTL, the LRU bound, forgetting by account and by bus hint."""

from __future__ import annotations

from postel.auth.cache import CredentialsCache
from postel.store.model import CredentialsChanged, MailboxChanged


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_only_the_same_account_hash_and_password_match() -> None:
    cache = CredentialsCache(600, 10)
    cache.remember(1, "$hash-a", "secret")
    assert cache.check(1, "$hash-a", "secret")
    assert not cache.check(1, "$hash-a", "Secret")
    assert not cache.check(1, "$hash-b", "secret")  # the stored hash changed
    assert not cache.check(2, "$hash-a", "secret")
    assert cache.stats["hits"] == 1 and cache.stats["misses"] == 3


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = CredentialsCache(60, 10, clock)
    cache.remember(1, "$h", "secret")
    clock.now += 59
    assert cache.check(1, "$h", "secret")
    clock.now += 2
    assert not cache.check(1, "$h", "secret")
    assert len(cache) == 0


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = CredentialsCache(600, 2)
    cache.remember(1, "$h", "one")
    cache.remember(2, "$h", "two")
    assert cache.check(1, "$h", "one")  # 1 is now the most recent
    cache.remember(3, "$h", "three")
    assert len(cache) == 2
    assert cache.check(1, "$h", "one") and cache.check(3, "$h", "three")
    assert not cache.check(2, "$h", "two")


def test_a_credentials_hint_forgets_every_entry_of_the_account() -> None:
    cache = CredentialsCache(600, 10)
    cache.remember(1, "$h", "old")
    cache.remember(1, "$h", "other")
    cache.remember(2, "$h", "kept")
    cache.forget_changes([MailboxChanged(1, 5), CredentialsChanged(1)])
    assert not cache.check(1, "$h", "old") and not cache.check(1, "$h", "other")
    assert cache.check(2, "$h", "kept")
    assert cache.stats["forgotten"] == 2


def test_a_zero_ttl_or_size_turns_it_off() -> None:
    for cache in (CredentialsCache(0, 10), CredentialsCache(600, 0)):
        cache.remember(1, "$h", "secret")
        assert not cache.check(1, "$h", "secret") and len(cache) == 0
