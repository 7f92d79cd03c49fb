"""Counting failed logins per IP and per account, shared by every protocol.

The server counts in the store (`api.AuthFailures`, table auth_failures), so every worker
process and host sees the same windows and `postel block list/remove` acts on a running
server; without a store (unit tests) the same counts live in memory. What stays in
memory per process is the owner's known addresses (a leniency only: a process that has
not seen the owner log in is merely stricter) and the statistics for /metrics.

An account that fails too often is locked for strangers only. A hard lock for everyone
would let anybody lock a user out of mail on every protocol just by failing on purpose;
so an address that logged in to the account successfully within `trusted_for` seconds
keeps working (it is still subject to the per-IP limit, so it cannot brute-force either).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass
from typing import Protocol

from postel.store.api import AuthFailures

log = logging.getLogger("postel.auth")

# How long a successful login from an address exempts it from its account's lock.
TRUSTED_FOR = 30 * 24 * 3600.0
# Remembered (account, address) pairs; the oldest are forgotten first.
MAX_TRUSTED_PAIRS = 100_000
# Failures counted (per scope and process) between two sweeps of expired rows.
PRUNE_EVERY = 256


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

    def at_least(self, limit: int) -> int:
        """How many keys have `limit` or more events in the window now (for /metrics)."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for key in list(self._events) if self._expire(key, now) >= limit)


class EventCounter(Protocol):
    """What FailureLimiter needs of a counter: WindowCounter or StoreWindowCounter."""

    def count(self, key: str) -> int: ...

    def add(self, key: str) -> int: ...

    def at_least(self, limit: int) -> int: ...


class StoreWindowCounter:
    """WindowCounter's sliding window over the store's auth_failures rows of one scope,
    on Unix time (the clock hosts share). Methods block: call them in a worker thread."""

    def __init__(self, failures: AuthFailures, scope: str, window: float) -> None:
        self._failures, self._scope, self.window = failures, scope, window
        self._adds = 0

    def count(self, key: str) -> int:
        return self._failures.count(self._scope, key, since=time.time() - self.window)

    def add(self, key: str) -> int:
        now = time.time()
        self._adds += 1
        if self._adds % PRUNE_EVERY == 0:
            # A key's old rows go when it fails again; these are the keys that did not.
            self._failures.prune(before=now - self.window)
        return self._failures.add(self._scope, key, now, since=now - self.window)

    def at_least(self, limit: int) -> int:
        windows = self._failures.windows(since=time.time() - self.window)
        return sum(1 for scope, _, times in windows if scope == self._scope and len(times) >= limit)


@dataclass(frozen=True)
class Verdict:
    """What to do with one login attempt before its password is checked."""

    refuse: bool  # answer "too many failures" without checking the password
    delay: float  # seconds to wait first (asynchronously: no thread is held)
    # Only checks still in flight fill the limit: ask again once one has ended (a burst of
    # right passwords must not be refused for each other, issue 12).
    busy: bool = False


def ip_key(ip: str) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 by its /64, since one host
    usually has a whole /64 to hop around in."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailureLimiter:
    """Failures per IP (per /64 for IPv6) and per account, within `window` seconds.

    - Below the limits, each failure makes the next attempt wait longer (`base_delay`
      doubled per failure past the first few, up to `max_delay`).
    - An IP at `per_ip` failures is refused, except for an account whose owner logged in
      from it before (a webmail or proxy puts every user behind one IP: one user's typos
      or an attacker there must not lock the others out; they are only slowed down).
    - An account at `per_account` failures is never refused outright to an address it
      was not used from (a new phone network, a hotel): the attempt waits `max_delay`,
      and at most `per_account` passwords a window are really checked for that account
      from such addresses (the owner's own addresses have a budget each of their own).
    """

    def __init__(
        self, per_ip: int, per_account: int, window: float, *, trusted_for: float = TRUSTED_FOR,
        base_delay: float = 0.5, max_delay: float = 8.0, failures: AuthFailures | None = None,
    ) -> None:
        self.per_ip = per_ip
        self.per_account = per_account
        self.window = window
        self.trusted_for = trusted_for
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._lock = threading.Lock()
        self._deciding = threading.Lock()  # held across "may it try?" and counting it
        self._by_ip: EventCounter
        self._by_account: EventCounter
        self._locked_checks: EventCounter
        if failures is not None:
            self._by_ip = StoreWindowCounter(failures, "ip", window)
            self._by_account = StoreWindowCounter(failures, "account", window)
            self._locked_checks = StoreWindowCounter(failures, "checks", window)
        else:
            self._by_ip = WindowCounter(window)
            self._by_account = WindowCounter(window)
            self._locked_checks = WindowCounter(window)
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.stats: Counter[str] = Counter()  # for /metrics: failures, delayed, refused
        self.failures_by_protocol: Counter[str] = Counter()  # /metrics, per protocol
        # Attempts let through by `admit` whose password is being checked, until `release`:
        # in memory, so a right password costs no store write. They fill a limit (never
        # more real checks than it, issue 15), but neither delay nor refuse the attempts
        # after them, which wait instead (`Verdict.busy`): otherwise a few right passwords
        # checked at once from one address (a webmail, a NAT, a client's parallel
        # connections) made each other wait or be refused (issue 12).
        self._pending: Counter[tuple[str, str]] = Counter()

    def _is_trusted(self, ip: str, account: str) -> bool:
        with self._lock:
            since = self._trusted.get((account, ip))
        return since is not None and time.monotonic() - since < self.trusted_for

    def _delay(self, failures: int, limit: int) -> float:
        free = max(1, limit // 3)  # a few typos cost nothing
        if not limit or failures < free:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2 ** (failures - free)))

    def admit(self, ip: str, account: str | None) -> Verdict:
        """`assess` one login attempt and, when it may go ahead, count it as pending in
        the same step, so concurrent logins cannot all pass before any of them is
        recorded (issue 15: a limit of 5 ran 10 real checks). The caller then reports a
        wrong password to `record_failure`, and `release`s the attempt either way."""
        with self._deciding:
            verdict = self.assess(ip, account)
            if not verdict.refuse and not verdict.busy:
                with self._lock:
                    self._pending["ip", ip_key(ip)] += 1
                    if account:
                        self._pending["account", account] += 1
        return verdict

    def release(self, ip: str, account: str | None) -> None:
        """An attempt `admit` let through is over (its failure, if any, is recorded)."""
        with self._lock:
            for key in (("ip", ip_key(ip)), ("account", account or "")):
                if self._pending.get(key, 0) > 1:
                    self._pending[key] -= 1
                else:
                    self._pending.pop(key, None)

    def _pending_of(self, scope: str, key: str) -> int:
        with self._lock:
            return self._pending.get((scope, key), 0)

    def assess(self, ip: str, account: str | None) -> Verdict:
        """Decide about one attempt; a checked attempt is then reported to
        `record_failure` or `record_success` (`admit` also holds its place meanwhile)."""
        ip_failures = self._by_ip.count(ip_key(ip)) if self.per_ip else 0
        ip_in_flight = self._pending_of("ip", ip_key(ip)) if self.per_ip else 0
        trusted = bool(account) and self._is_trusted(ip, account or "")
        delay = self._delay(ip_failures, self.per_ip)  # recorded failures only
        if self.per_ip and ip_failures + ip_in_flight >= self.per_ip and not trusted:
            if ip_failures >= self.per_ip:
                return self._refused(ip, account, "ip")
            return Verdict(False, 0.0, busy=True)  # wait for the checks in flight
        if account and self.per_account:
            account_failures = self._by_account.count(account)
            in_flight = self._pending_of("account", account)
            delay = max(delay, self._delay(account_failures, self.per_account))
            if account_failures + in_flight >= self.per_account > account_failures:
                return Verdict(False, 0.0, busy=True)
            if account_failures >= self.per_account:
                budget = f"{account} {ip_key(ip)}" if trusted else account
                if self._locked_checks.add(budget) > self.per_account:
                    return self._refused(ip, account, "account")
                delay = self.max_delay
        if delay:
            self.stats["delayed"] += 1
            log.info("login delayed: recent failures", extra={"fields": {
                "ip": ip, "user": account, "delay": delay}})
        return Verdict(False, delay)

    def _refused(self, ip: str, account: str | None, by: str) -> Verdict:
        self.stats["refused"] += 1
        log.warning("login refused: too many failures", extra={"fields": {
            "ip": ip, "user": account, "by": by}})
        return Verdict(True, 0.0)

    def record_failure(
        self, ip: str, account: str | None, *, protocol: str = "other"
    ) -> None:
        self.stats["failures"] += 1
        self.failures_by_protocol[protocol] += 1
        self._by_ip.add(ip_key(ip))
        if account:
            self._by_account.add(account)

    def record_success(self, ip: str, account: str) -> None:
        """A right password: the address is the owner's from now on."""
        with self._lock:
            self._trusted[(account, ip)] = time.monotonic()
            self._trusted.move_to_end((account, ip))
            while len(self._trusted) > MAX_TRUSTED_PAIRS:
                self._trusted.popitem(last=False)

    def blocked_keys(self) -> int:
        """Addresses (or /64s) and accounts at their limit now: refused or held back."""
        ips = self._by_ip.at_least(self.per_ip) if self.per_ip else 0
        accounts = self._by_account.at_least(self.per_account) if self.per_account else 0
        return ips + accounts
