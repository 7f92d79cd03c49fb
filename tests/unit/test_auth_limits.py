"""The shared login failure limits: per IP, per account, and who stays trusted."""

from __future__ import annotations

from postel.auth.limits import FailureLimiter, WindowCounter


def test_an_address_is_blocked_after_its_failures() -> None:
    limiter = FailureLimiter(per_ip=3, per_account=0, window=60)
    for _ in range(3):
        assert not limiter.blocked("10.0.0.1", None)
        limiter.record_failure("10.0.0.1", None)
    assert limiter.blocked("10.0.0.1", None)
    assert not limiter.blocked("10.0.0.2", None)


def test_a_locked_account_is_locked_for_strangers() -> None:
    limiter = FailureLimiter(per_ip=0, per_account=3, window=60)
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        limiter.record_failure(ip, "alice@example.test")
    assert limiter.blocked("198.51.100.7", "alice@example.test")
    assert not limiter.blocked("198.51.100.7", "bob@example.test")


def test_the_owner_keeps_access_from_an_address_it_used_before() -> None:
    # Without this, anyone could lock a user out of every protocol by failing on purpose.
    limiter = FailureLimiter(per_ip=0, per_account=3, window=60)
    limiter.record_success("192.0.2.10", "alice@example.test")  # the owner's phone
    for _ in range(5):
        limiter.record_failure("203.0.113.66", "alice@example.test")  # the attacker
    assert limiter.blocked("203.0.113.66", "alice@example.test")
    assert not limiter.blocked("192.0.2.10", "alice@example.test")


def test_a_trusted_address_is_still_limited_per_ip() -> None:
    limiter = FailureLimiter(per_ip=2, per_account=2, window=60)
    limiter.record_success("192.0.2.10", "alice@example.test")
    limiter.record_failure("192.0.2.10", "alice@example.test")
    limiter.record_failure("192.0.2.10", "alice@example.test")
    assert limiter.blocked("192.0.2.10", "alice@example.test")


def test_trust_expires() -> None:
    limiter = FailureLimiter(per_ip=0, per_account=1, window=60, trusted_for=0.0)
    limiter.record_success("192.0.2.10", "alice@example.test")
    limiter.record_failure("203.0.113.66", "alice@example.test")
    assert limiter.blocked("192.0.2.10", "alice@example.test")


def test_zero_disables_a_limit() -> None:
    limiter = FailureLimiter(per_ip=0, per_account=0, window=60)
    for _ in range(100):
        limiter.record_failure("10.0.0.1", "alice@example.test")
    assert not limiter.blocked("10.0.0.1", "alice@example.test")


def test_the_window_counter_forgets_expired_keys() -> None:
    counter = WindowCounter(0)
    counter.add("a")
    assert counter.count("a") == 0
    assert not counter._events  # an expired key takes no memory


def test_expired_failures_unblock() -> None:
    limiter = FailureLimiter(per_ip=1, per_account=0, window=0)
    limiter.record_failure("10.0.0.1", None)
    assert not limiter.blocked("10.0.0.1", None)
