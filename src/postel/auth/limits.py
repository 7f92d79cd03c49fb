"""Counting failed logins per IP and per account, shared by every protocol.

In memory and per process: enough for one host; a shared table comes with multi-host.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class FailureLimiter:
    def __init__(self, per_ip: int, per_account: int, window: float) -> None:
        self.per_ip = per_ip
        self.per_account = per_account
        self.window = window
        self._lock = threading.Lock()
        self._by_ip: dict[str, deque[float]] = defaultdict(deque)
        self._by_account: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, entries: deque[float], now: float) -> int:
        while entries and entries[0] < now - self.window:
            entries.popleft()
        return len(entries)

    def blocked(self, ip: str, account: str | None) -> bool:
        """True when this IP, or this account, has failed too often lately."""
        now = time.monotonic()
        with self._lock:
            if self.per_ip and self._recent(self._by_ip[ip], now) >= self.per_ip:
                return True
            return bool(
                account
                and self.per_account
                and self._recent(self._by_account[account], now) >= self.per_account
            )

    def record_failure(self, ip: str, account: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._by_ip[ip].append(now)
            if account:
                self._by_account[account].append(now)

    def record_success(self, ip: str, account: str) -> None:
        with self._lock:
            self._by_account.pop(account, None)
