"""Counting failed logins per IP and per account, shared by every protocol.

In memory and per process: enough for one host; a shared table comes with multi-host.

An account that fails too often is locked for strangers only. A hard lock for everyone
would let anybody lock a user out of mail on every protocol just by failing on purpose;
so an address that logged in to the account successfully within `trusted_for` seconds
keeps working (it is still subject to the per-IP limit, so it cannot brute-force either).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict, deque

# How long a successful login from an address exempts it from its account's lock.
TRUSTED_FOR = 30 * 24 * 3600.0
# Remembered (account, address) pairs; the oldest are forgotten first.
MAX_TRUSTED_PAIRS = 100_000


class WindowCounter:
    """Events per key within a sliding window of seconds (in memory, per process).

    The one counter behind every rate limit: failed logins here, password-reset requests
    and CAPTCHA challenges in the web. A key whose events have all expired is forgotten.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def _expire(self, key: str, now: float) -> int:
        events = self._events.get(key)
        if events is None:
            return 0
        while events and events[0] < now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
        return len(events)

    def count(self, key: str) -> int:
        with self._lock:
            return self._expire(key, time.monotonic())

    def add(self, key: str) -> int:
        """Record one event and return how many the key has in the window now."""
        now = time.monotonic()
        with self._lock:
            self._expire(key, now)
            events = self._events[key]
            events.append(now)
            return len(events)

    def stamp(self, key: str) -> float:
        """Record one event and return its time, which `discard` can take back."""
        now = time.monotonic()
        with self._lock:
            self._expire(key, now)
            self._events[key].append(now)
        return now

    def discard(self, key: str, stamp: float) -> None:
        """Take back one event recorded by `stamp`."""
        with self._lock:
            events = self._events.get(key)
            if events is not None and stamp in events:
                events.remove(stamp)
                if not events:
                    del self._events[key]

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)


class FailureLimiter:
    def __init__(
        self, per_ip: int, per_account: int, window: float, *, trusted_for: float = TRUSTED_FOR
    ) -> None:
        self.per_ip = per_ip
        self.per_account = per_account
        self.window = window
        self.trusted_for = trusted_for
        self._lock = threading.Lock()
        # Held across "blocked?" and "count it" so concurrent logins cannot all pass the
        # check before any of them is counted.
        self._attempts = threading.Lock()
        self._by_ip = WindowCounter(window)
        self._by_account = WindowCounter(window)
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _is_trusted(self, ip: str, account: str) -> bool:
        with self._lock:
            since = self._trusted.get((account, ip))
        return since is not None and time.monotonic() - since < self.trusted_for

    def blocked(self, ip: str, account: str | None) -> bool:
        """True when this IP has failed too often lately, or this account has and the IP
        is not one the account's owner recently logged in from."""
        if self.per_ip and self._by_ip.count(ip) >= self.per_ip:
            return True
        if not account or not self.per_account:
            return False
        if self._by_account.count(account) < self.per_account:
            return False
        return not self._is_trusted(ip, account)

    def begin_attempt(self, ip: str, account: str | None) -> tuple[float, float] | None:
        """Reserve a login attempt before the (slow) password check: None when blocked;
        otherwise it is counted as a failure at once, and the stamps returned let
        `attempt_succeeded` take it back. Checking and counting in one step keeps
        concurrent logins from all passing (issue 15: a limit of 5 ran 10 real checks)."""
        with self._attempts:
            if self.blocked(ip, account):
                return None
            ip_stamp = self._by_ip.stamp(ip)
            account_stamp = self._by_account.stamp(account) if account else 0.0
        return ip_stamp, account_stamp

    def attempt_succeeded(self, ip: str, account: str | None, stamps: tuple[float, float]
                          ) -> None:
        """The reserved attempt had the right password: it is not a failure after all."""
        self._by_ip.discard(ip, stamps[0])
        if account:
            self._by_account.discard(account, stamps[1])

    def record_failure(self, ip: str, account: str | None) -> None:
        self._by_ip.add(ip)
        if account:
            self._by_account.add(account)

    def record_success(self, ip: str, account: str) -> None:
        with self._lock:
            self._trusted[(account, ip)] = time.monotonic()
            self._trusted.move_to_end((account, ip))
            while len(self._trusted) > MAX_TRUSTED_PAIRS:
                self._trusted.popitem(last=False)
