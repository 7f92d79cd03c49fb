"""Change hints: a write publishes the changes it committed; sessions subscribe per account.

A hint only says "look again": subscribers re-read the store (changes_since) for the
truth, so a hint lost to a full queue or a restart loses nothing. The in-process bus serves
one host; several hosts on PostgreSQL need a LISTEN/NOTIFY bus with the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence

from postel.store.model import Change, CredentialsChanged


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
        for change in changes:
            if change.account_id is not None:  # QueueChanged is for the queue workers
                by_account[change.account_id].append(change)
        with self._lock:
            targets = [
                (sub, batch)
                for account_id, batch in by_account.items()
                for sub in self._subscribers.get(account_id, ())
            ]
        for sub, batch in targets:
            if sub.loop.is_closed():
                continue
            # The loop may close between the check and the call (RuntimeError); that
            # subscriber is gone, and the others must still hear about the change.
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub._deliver, batch)
