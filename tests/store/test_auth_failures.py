"""The store's failed-login counts (auth_failures) on both backends: what the shared
limiter, `postel block list` and `postel block remove` rely on."""

from __future__ import annotations

from postel.auth.limits import FailureLimiter
from postel.store.sql.store import SqlStore


def test_counts_windows_discard_clear_and_prune(store: SqlStore) -> None:
    failures = store.auth_failures
    assert failures.add("ip", "192.0.2.1", 100.0, since=0.0) == 1
    assert failures.add("ip", "192.0.2.1", 200.0, since=0.0) == 2
    assert failures.add("ip", "192.0.2.1", 300.0, since=150.0) == 2  # 100 expired, deleted
    assert failures.count("ip", "192.0.2.1", since=250.0) == 1
    failures.add("account", "alice@example.test", 310.0, since=0.0)
    failures.add("checks", "alice@example.test 192.0.2.1", 320.0, since=0.0)
    assert failures.windows(since=0.0) == [
        ("account", "alice@example.test", [310.0]),
        ("checks", "alice@example.test 192.0.2.1", [320.0]),
        ("ip", "192.0.2.1", [200.0, 300.0]),
    ]
    assert failures.windows(since=0.0)[-1] == ("ip", "192.0.2.1", [200.0, 300.0])
    assert failures.clear_prefix("checks", "alice@example.test ") == 1
    assert failures.clear("account", "alice@example.test") == 1
    assert failures.clear("account", "alice@example.test") == 0
    assert failures.prune(before=350.0) == 2
    assert failures.windows(since=0.0) == []


def test_two_limiters_on_one_store_share_their_counts(store: SqlStore) -> None:
    """Two worker processes (or hosts) see each other's failures."""
    one = FailureLimiter(3, 0, 60.0, failures=store.auth_failures)
    other = FailureLimiter(3, 0, 60.0, failures=store.auth_failures)
    for _ in range(3):
        assert not one.admit("192.0.2.7", None).refuse
        one.record_failure("192.0.2.7", None)
        one.release("192.0.2.7", None)
    assert other.assess("192.0.2.7", None).refuse
    assert other.blocked_keys() == 1
    store.auth_failures.clear("ip", "192.0.2.7")  # `postel block remove`
    assert not one.assess("192.0.2.7", None).refuse
