"""The shared login failure limits: per IP (per /64), per account, and who stays trusted.

Issue 15 item 12 changed what they do: a full IP no longer refuses an account whose
owner used that IP, and a full account only slows strangers down (with a budget of real
password checks) instead of refusing them outright.
"""

from __future__ import annotations

from postel.auth.limits import FailureLimiter, WindowCounter, ip_key

ALICE = "alice@example.test"


def refused(limiter: FailureLimiter, ip: str, account: str | None) -> bool:
    return limiter.assess(ip, account).refuse


def test_an_address_is_refused_after_its_failures_with_growing_delays() -> None:
    limiter = FailureLimiter(per_ip=6, per_account=0, window=60)
    delays = []
    for _ in range(6):
        verdict = limiter.assess("10.0.0.1", None)
        assert not verdict.refuse
        delays.append(verdict.delay)
        limiter.record_failure("10.0.0.1", None)
    assert delays == sorted(delays) and delays[0] == 0 and delays[-1] > delays[2] > 0
    assert refused(limiter, "10.0.0.1", None)
    assert limiter.assess("10.0.0.2", None) == limiter.assess("10.0.0.3", None)
    assert not refused(limiter, "10.0.0.2", None)


def test_ipv6_is_counted_per_64() -> None:
    limiter = FailureLimiter(per_ip=2, per_account=0, window=60)
    limiter.record_failure("2001:db8:1:2::1", None)
    limiter.record_failure("2001:db8:1:2:ffff::9", None)
    assert refused(limiter, "2001:db8:1:2::77", None)
    assert not refused(limiter, "2001:db8:1:3::1", None)
    assert ip_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_a_full_ip_spares_accounts_whose_owner_uses_it() -> None:
    # A webmail or proxy: every user behind one address.
    limiter = FailureLimiter(per_ip=3, per_account=5, window=60)
    limiter.record_success("192.0.2.10", "bob@example.test")
    for _ in range(10):
        limiter.record_failure("192.0.2.10", ALICE)
    assert refused(limiter, "192.0.2.10", "carol@example.test")
    verdict = limiter.assess("192.0.2.10", "bob@example.test")
    assert not verdict.refuse and verdict.delay > 0  # slowed down, not refused


def test_a_locked_account_slows_strangers_and_caps_real_checks() -> None:
    limiter = FailureLimiter(per_ip=0, per_account=3, window=60, max_delay=8)
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        limiter.record_failure(ip, ALICE)
    verdicts = [limiter.assess(f"198.51.100.{n}", ALICE) for n in range(4)]
    assert [v.refuse for v in verdicts] == [False, False, False, True]
    assert all(v.delay == 8 for v in verdicts[:3])
    assert not refused(limiter, "198.51.100.7", "bob@example.test")


def test_the_owner_keeps_a_budget_of_its_own_from_an_address_it_used_before() -> None:
    # Without this, anyone could lock a user out of every protocol by failing on purpose.
    limiter = FailureLimiter(per_ip=0, per_account=3, window=60)
    limiter.record_success("192.0.2.10", ALICE)  # the owner's phone
    for _ in range(10):
        limiter.record_failure("203.0.113.66", ALICE)  # the attacker
        limiter.assess("203.0.113.66", ALICE)  # spends the strangers' budget
    assert refused(limiter, "203.0.113.66", ALICE)
    assert not refused(limiter, "192.0.2.10", ALICE)


def test_trust_expires() -> None:
    limiter = FailureLimiter(per_ip=1, per_account=0, window=60, trusted_for=0.0)
    limiter.record_success("192.0.2.10", ALICE)
    limiter.record_failure("192.0.2.10", "mallory@example.test")
    assert refused(limiter, "192.0.2.10", ALICE)


def test_zero_disables_a_limit() -> None:
    limiter = FailureLimiter(per_ip=0, per_account=0, window=60)
    for _ in range(100):
        limiter.record_failure("10.0.0.1", ALICE)
    assert limiter.assess("10.0.0.1", ALICE).refuse is False


def test_the_window_counter_forgets_expired_keys() -> None:
    counter = WindowCounter(0)
    counter.add("a")
    assert counter.count("a") == 0
    assert not counter._events  # an expired key takes no memory


def test_expired_failures_unblock() -> None:
    limiter = FailureLimiter(per_ip=1, per_account=0, window=0)
    limiter.record_failure("10.0.0.1", None)
    assert not limiter.assess("10.0.0.1", None).refuse


def test_passwords_still_being_checked_neither_delay_nor_refuse() -> None:
    """Issue 12: right passwords checked at once from one address (a webmail, a NAT)
    made each other wait up to max_delay, or were refused once ten were in flight. A
    check in flight still fills the limit (issue 15: never more real checks than the
    limit), but the next attempt waits for it (busy) instead of being refused, and it
    lengthens the delay only once it has turned out wrong."""
    limiter = FailureLimiter(per_ip=6, per_account=0, window=60)
    ip = "10.0.0.9"

    def wrong(user: str) -> None:
        limiter.record_failure(ip, user)
        limiter.release(ip, user)

    def right(user: str) -> None:
        limiter.record_success(ip, user)
        limiter.release(ip, user)

    users = [f"u{k}@example.test" for k in range(5)]
    verdicts = [limiter.admit(ip, user) for user in users]
    assert [v.delay for v in verdicts] == [0.0] * 5 and not any(v.refuse for v in verdicts)
    right(users[0])
    for user in users[1:]:
        wrong(user)  # four wrong passwords
    assert limiter.admit(ip, "late@example.test").delay > 0
    assert not limiter.admit(ip, "later@example.test").refuse
    busy = limiter.admit(ip, "other@example.test")  # 4 wrong + 2 in flight
    assert busy.busy and not busy.refuse
    right("late@example.test")
    assert not limiter.admit(ip, "other@example.test").busy  # a slot came free
    wrong("later@example.test")
    wrong("other@example.test")
    assert refused(limiter, ip, "third@example.test")  # 6 wrong: refused


def test_an_account_with_checks_in_flight_is_busy_not_locked() -> None:
    limiter = FailureLimiter(per_ip=0, per_account=3, window=60)
    for _ in range(3):
        assert not limiter.admit("10.0.0.1", ALICE).busy
    assert limiter.admit("10.0.0.2", ALICE).busy  # three of her checks still running
    for _ in range(3):
        limiter.record_failure("10.0.0.1", ALICE)  # all wrong: now she is locked as before
        limiter.release("10.0.0.1", ALICE)
    verdict = limiter.admit("10.0.0.2", ALICE)
    assert not verdict.busy and verdict.delay == limiter.max_delay
