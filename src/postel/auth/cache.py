"""Verified credentials, remembered for a while so a reconnecting client skips Argon2.

One Argon2id verification costs a sizeable part of a second of CPU (auth/passwords.py);
mail clients reconnect all day with the same password. After a successful check we keep
HMAC-SHA-256(process key, account id, stored hash, password): the next login computes
the same digest in microseconds and compares. What this gives someone who reads the
process's memory is written down in docs/security.md.

Forgetting, two ways, so that neither alone has to be perfect:
- the stored hash is part of the digest, and every login reads the account first, so a
  password changed by any process (CLI, another worker, another host) no longer matches;
- `forget_changes` listens to the bus for CredentialsChanged (password change, disable,
  removal) and drops the account's entries at once, so they do not linger for the TTL.
A wrong password is never remembered, so it always pays the full Argon2 cost.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

from postel.store.model import Change, CredentialsChanged


class CredentialsCache:
    """A bounded LRU of verified (account, stored hash, password) digests with a TTL.

    Thread-safe: logins check it in worker threads, and the bus calls `forget_changes`
    from whichever thread committed the change."""

    def __init__(
        self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        # Per process, never stored or logged: a digest is useless without it, and a
        # restart forgets everything.
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[int, float]] = OrderedDict()  # → (id, expiry)
        self._by_account: dict[int, set[bytes]] = {}
        self.stats: Counter[str] = Counter()  # for /metrics: hits, misses, stored, forgotten

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _digest(self, account_id: int, stored_hash: str, password: str) -> bytes:
        # Length-prefixed fields, so no two different triples share an input.
        parts = (str(account_id).encode(), stored_hash.encode(), password.encode())
        message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def check(self, account_id: int, stored_hash: str, password: str) -> bool:
        """True when this password was verified against this very stored hash lately."""
        if not self.enabled:
            return False
        digest = self._digest(account_id, stored_hash, password)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[1] <= now:
                if entry is not None:
                    self._drop(digest)
                self.stats["misses"] += 1
                return False
            self._entries.move_to_end(digest)
            self.stats["hits"] += 1
            return True

    def remember(self, account_id: int, stored_hash: str, password: str) -> None:
        """Called only after Argon2 said yes for exactly this stored hash."""
        if not self.enabled:
            return
        digest = self._digest(account_id, stored_hash, password)
        with self._lock:
            self._drop(digest)
            self._entries[digest] = (account_id, self._clock() + self.ttl)
            self._by_account.setdefault(account_id, set()).add(digest)
            self.stats["stored"] += 1
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))

    def forget_account(self, account_id: int) -> None:
        with self._lock:
            for digest in self._by_account.pop(account_id, set()):
                self._entries.pop(digest, None)
                self.stats["forgotten"] += 1

    def forget_changes(self, changes: Sequence[Change]) -> None:
        """Bus listener: every account whose credentials changed, anywhere on the bus."""
        for change in changes:
            if isinstance(change, CredentialsChanged):
                self.forget_account(change.account_id)

    def _drop(self, digest: bytes) -> None:
        """Remove one entry and its back-reference; the lock is held."""
        entry = self._entries.pop(digest, None)
        if entry is None:
            return
        digests = self._by_account.get(entry[0])
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_account[entry[0]]
