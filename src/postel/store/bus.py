"""Change hints: a write publishes the changes it committed; sessions subscribe per account.

A hint only says "look again": subscribers re-read the store (changes_since) for the
truth, so a hint lost to a full queue or a restart loses nothing.

`Bus` is the interface every service sees. `InProcessBus` serves one process;
`store/hub.py:HubBus` serves the worker processes of one host (it delivers locally and
forwards through the supervisor's hub to the siblings). Several hosts on PostgreSQL need a
LISTEN/NOTIFY bus with the same interface, one level up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

from postel.store.model import Change, CredentialsChanged, MetadataChanged


class Subscription:
    """Receives change batches for one account. Use as an async context manager."""

    def __init__(self, bus: InProcessBus, account_id: int) -> None:
        self._bus = bus
        self.account_id = account_id
        self.loop = asyncio.get_running_loop()
        # Bounded: a session that stops reading (stuck client) gets one overflow marker
        # instead of growing without limit; it then re-reads the store anyway.
        self.queue: asyncio.Queue[list[Change]] = asyncio.Queue(maxsize=256)
        # Set once the account's password changed or it was disabled or removed: the
        # session must sign out. A flag, not a queued item, so a full queue cannot lose it.
        self.revoked = False

    def _deliver(self, changes: list[Change]) -> None:
        if any(isinstance(change, CredentialsChanged) for change in changes):
            self.revoked = True
        # A full queue means the subscriber is behind; it still wakes on what is queued
        # and re-reads the store, so dropping this batch loses nothing.
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(changes)

    async def get(self) -> list[Change]:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Bus(Protocol):
    """Change hints between the writers and the sessions of an account."""

    def subscribe(self, account_id: int) -> Subscription:
        """A bounded queue of the account's change batches; close it when done."""
        ...

    def publish(self, changes: Sequence[Change]) -> None:
        """After a commit, from any thread: wake the account's subscribers (every
        process's, for a bus that spans processes). Never raises for a lost hint."""
        ...

    def listen(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Hear every batch, this process's and (for a bus that spans processes) the
        others' (the credentials cache forgets changed passwords with it)."""
        ...


class Locks(Protocol):
    """Named exclusive locks shared by every process of the host (POP3's maildrop lock)."""

    async def acquire(self, key: str) -> bool:
        """Take `key`; False (nothing taken) when someone holds it."""
        ...

    def release(self, key: str) -> None:
        """Give back a lock this process took; a key it does not hold is ignored."""
        ...

    def held(self, key: str) -> bool:
        """Whether this process holds `key`."""
        ...


class LocalLocks:
    """Locks for one process: all its sessions run on one event loop."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def acquire(self, key: str) -> bool:
        if key in self._held:
            return False
        self._held.add(key)
        return True

    def release(self, key: str) -> None:
        self._held.discard(key)

    def held(self, key: str) -> bool:
        return key in self._held


class InProcessBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, set[Subscription]] = defaultdict(set)
        self._listeners: list[Callable[[Sequence[Change]], None]] = []

    def listen(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Hear every published batch, whatever the account (the credentials cache). The
        listener runs in the publishing thread before subscribers are woken, so it must be
        quick and must not block; a bus that spans processes calls it for their batches
        too."""
        with self._lock:
            self._listeners.append(listener)

    def subscribe(self, account_id: int) -> Subscription:
        subscription = Subscription(self, account_id)
        with self._lock:
            self._subscribers[account_id].add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(subscription.account_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._subscribers[subscription.account_id]

    def publish(self, changes: Sequence[Change]) -> None:
        """Called after a commit, from any thread."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(changes)
        by_account: dict[int, list[Change]] = defaultdict(list)
        everyone: list[Change] = []  # the server's shared metadata: every account sees it
        for change in changes:
            if change.account_id is not None:  # QueueChanged is for the queue workers
                by_account[change.account_id].append(change)
            elif isinstance(change, MetadataChanged):
                everyone.append(change)
        with self._lock:
            accounts = set(by_account) | (set(self._subscribers) if everyone else set())
            targets = [
                (sub, by_account.get(account_id, []) + everyone)
                for account_id in accounts
                for sub in self._subscribers.get(account_id, ())
            ]
        for sub, batch in targets:
            if sub.loop.is_closed():
                continue
            # The loop may close between the check and the call (RuntimeError); that
            # subscriber is gone, and the others must still hear about the change.
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub._deliver, batch)

    def resync(self) -> None:
        """Wake every subscriber with an empty batch: "re-read the store", for when hints
        may have been missed (a bus connection that dropped and came back)."""
        with self._lock:
            targets = [sub for subs in self._subscribers.values() for sub in subs]
        for sub in targets:
            if not sub.loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    sub.loop.call_soon_threadsafe(sub._deliver, [])
