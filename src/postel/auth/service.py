"""Checking a login (full email address + password) for every protocol."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from postel.auth.limits import FailureLimiter
from postel.auth.passwords import verify_password
from postel.mail.address import AddressError, parse_email
from postel.store.api import Store
from postel.store.model import Account


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
    def __init__(self, store: Store, limiter: FailureLimiter) -> None:
        self.store = store
        self.limiter = limiter

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
        if verdict.refuse:
            return LoginResult(None, throttled=True)
        try:
            if verdict.delay:
                await asyncio.sleep(verdict.delay)
            return await asyncio.to_thread(self._check, key, password, ip, protocol)
        finally:
            self.limiter.release(ip, key)

    def _check(self, key: str | None, password: str, ip: str, protocol: str) -> LoginResult:
        account = self.store.directory.get_account(key) if key else None
        ok = verify_password(account.password_hash if account else None, password)
        if not ok or account is None or account.disabled:
            # Recorded before admit's pending count is released: never counted zero times.
            self.limiter.record_failure(ip, key, protocol=protocol)
            return LoginResult(None)
        self.limiter.record_success(ip, account.email)
        return LoginResult(account)
