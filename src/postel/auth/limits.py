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
