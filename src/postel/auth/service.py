"""Checking a login (full email address + password) for every protocol."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from postel.auth.cache import CredentialsCache
from postel.auth.limits import FailureLimiter
from postel.auth.passwords import hash_password, needs_rehash, verify_password
from postel.mail.address import AddressError, parse_email
from postel.store.api import Store
from postel.store.model import Account

log = logging.getLogger("postel.auth")

BUSY_POLL = 0.02  # seconds between asking the limiter again while checks are in flight
BUSY_WAIT_MAX = 30.0  # then refuse as throttled: those checks are stuck


@dataclass(frozen=True)
class LoginResult:
    account: Account | None
    throttled: bool = False


def login_key(username: str) -> str | None:
    try:
        return parse_email(username.strip()).key
    except AddressError:
        return None


class Authenticator:
    def __init__(
        self, store: Store, limiter: FailureLimiter, cache: CredentialsCache | None = None
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.cache = cache if cache is not None else CredentialsCache(0, 0)
        self.rehashed = 0  # for /metrics: stored hashes moved to the configured parameters

    async def authenticate(
        self, username: str, password: str, ip: str, *, protocol: str = "other"
    ) -> LoginResult:
        """The one login check of SMTP AUTH, IMAP, POP3 and the web: the failure limits
        decide first (refuse, or wait without holding a thread), then the password is
        checked in a worker thread (Argon2 and SQL). `protocol` labels the failures in
        /metrics."""
        key = login_key(username)
        # In a worker thread: the counts live in the store (SQL).
        verdict = await asyncio.to_thread(self.limiter.admit, ip, key)
        waited = 0.0
        while verdict.busy and waited < BUSY_WAIT_MAX:
            # Other checks of this address or account are in flight and fill the limit:
            # wait for them to end (a right password frees its slot) instead of refusing.
            await asyncio.sleep(BUSY_POLL)
            waited += BUSY_POLL
            verdict = await asyncio.to_thread(self.limiter.admit, ip, key)
        if verdict.busy or verdict.refuse:
            return LoginResult(None, throttled=True)
        try:
            if verdict.delay:
                await asyncio.sleep(verdict.delay)
            return await asyncio.to_thread(self._check, key, password, ip, protocol)
        finally:
            self.limiter.release(ip, key)

    def _check(self, key: str | None, password: str, ip: str, protocol: str) -> LoginResult:
        # The account is read on every login, cached or not: its stored hash is part of
        # the cache key and `disabled` is decided here, so the cache cannot outlive a
        # change made by another process.
        account = self.store.directory.get_account(key) if key else None
        stored = account.password_hash if account else None
        ok = account is not None and stored is not None and self.cache.check(
            account.id, stored, password)
        if not ok:
            ok = verify_password(stored, password)
            if ok and account is not None and stored is not None:
                self.cache.remember(account.id, self._rehash(account, stored, password),
                                    password)
        if not ok or account is None or account.disabled:
            # Recorded before admit's pending count is released: never counted zero times.
            self.limiter.record_failure(ip, key, protocol=protocol)
            return LoginResult(None)
        self.limiter.record_success(ip, account.email)
        return LoginResult(account)

    def _rehash(self, account: Account, stored: str, password: str) -> str:
        """After a successful Argon2 check: when the stored hash was made with other
        parameters than the configured ones, store a new hash of the same password
        without signing anyone out. Returns the hash now stored."""
        if not needs_rehash(stored):
            return stored
        try:
            new_hash = hash_password(password)
            if not self.store.directory.rehash_password(account.id, stored, new_hash):
                return stored  # the password changed meanwhile; that change wins
        except Exception:
            # Only an upgrade: the login itself succeeded, and the next one tries again.
            log.warning("rehash failed", exc_info=True, extra={"fields": {"user": account.email}})
            return stored
        self.rehashed += 1
        return new_hash
