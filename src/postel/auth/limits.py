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


class FailureLimiter:
    def __init__(
        self, per_ip: int, per_account: int, window: float, *, trusted_for: float = TRUSTED_FOR
    ) -> None:
        self.per_ip = per_ip
        self.per_account = per_account
        self.window = window
        self.trusted_for = trusted_for
        self._lock = threading.Lock()
        self._by_ip: dict[str, deque[float]] = defaultdict(deque)
        self._by_account: dict[str, deque[float]] = defaultdict(deque)
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _recent(self, entries: deque[float], now: float) -> int:
        while entries and entries[0] < now - self.window:
            entries.popleft()
        return len(entries)

    def _is_trusted(self, ip: str, account: str, now: float) -> bool:
        since = self._trusted.get((account, ip))
        return since is not None and now - since < self.trusted_for

    def blocked(self, ip: str, account: str | None) -> bool:
        """True when this IP has failed too often lately, or this account has and the IP
        is not one the account's owner recently logged in from."""
        with self._lock:
            return self._blocked(ip, account, time.monotonic())

    def begin_attempt(self, ip: str, account: str | None) -> float | None:
        """Reserve a login attempt: None when blocked; otherwise it is counted as a failure
        at once (returned: its stamp, for `attempt_succeeded`). Checking and counting in
        one step keeps concurrent logins from all passing the check before any of them is
        recorded (issue 15 item 10: a limit of 5 ran 10 password checks)."""
        now = time.monotonic()
        with self._lock:
            if self._blocked(ip, account, now):
                return None
            self._by_ip[ip].append(now)
            if account:
                self._by_account[account].append(now)
            return now

    def attempt_succeeded(self, ip: str, account: str | None, stamp: float) -> None:
        """The reserved attempt was the right password: it is not a failure after all."""
        with self._lock:
            for entries in (self._by_ip.get(ip), self._by_account.get(account or "")):
                if entries is not None and stamp in entries:
                    entries.remove(stamp)

    def _blocked(self, ip: str, account: str | None, now: float) -> bool:
        if self.per_ip and self._recent(self._by_ip[ip], now) >= self.per_ip:
            return True
        if not account or not self.per_account:
            return False
        if self._recent(self._by_account[account], now) < self.per_account:
            return False
        return not self._is_trusted(ip, account, now)

    def record_failure(self, ip: str, account: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._by_ip[ip].append(now)
            if account:
                self._by_account[account].append(now)

    def record_success(self, ip: str, account: str) -> None:
        with self._lock:
            self._trusted[(account, ip)] = time.monotonic()
            self._trusted.move_to_end((account, ip))
            while len(self._trusted) > MAX_TRUSTED_PAIRS:
                self._trusted.popitem(last=False)
