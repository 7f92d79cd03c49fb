"""Checking a login (full email address + password) for every protocol."""

from __future__ import annotations

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


class Authenticator:
    def __init__(self, store: Store, limiter: FailureLimiter) -> None:
        self.store = store
        self.limiter = limiter

    def login(self, username: str, password: str, ip: str) -> LoginResult:
        """Blocking (Argon2 and SQL): run it in a worker thread from asyncio code."""
        try:
            key = parse_email(username.strip()).key
        except AddressError:
            key = None
        # Reserve before the (slow) hash check, so concurrent attempts cannot all pass it.
        stamp = self.limiter.begin_attempt(ip, key)
        if stamp is None:
            return LoginResult(None, throttled=True)
        account = self.store.directory.get_account(key) if key else None
        ok = verify_password(account.password_hash if account else None, password)
        if not ok or account is None or account.disabled:
            return LoginResult(None)  # the reserved attempt stands as a failure
        self.limiter.attempt_succeeded(ip, key, stamp)
        self.limiter.record_success(ip, account.email)
        return LoginResult(account)
