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
import itertools
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
        # The bus's dispatch number of the newest batch this subscriber was handed: a
        # store read started after that dispatch has seen the commit behind it (imap's
        # ChangeFeed lets sessions share such a read).
        self.hint_seq = 0

    def _deliver(self, changes: list[Change], seq: int) -> None:
        self.hint_seq = seq
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

    @property
    def last_dispatch(self) -> int:
        """The number of the newest batch handed to this process's subscribers (a store
        read begun after it has seen that batch's commit: imap/changefeed.py)."""
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
    """Hints from the writer's thread to the subscribers' event loops.

    A commit is handed to each loop that has subscribers once (one call_soon_threadsafe),
    and the loop then hands it to its subscribers: the writer's cost does not grow with
    the number of listeners, so a delivery to a mailbox 10,000 sessions IDLE on commits
    as fast as one nobody watches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # loop -> account -> subscriptions on that loop
        self._subscribers: dict[
            asyncio.AbstractEventLoop, dict[int, set[Subscription]]
        ] = {}
        self._dispatches = itertools.count(1)  # next() is atomic under the GIL
        self.last_dispatch = 0
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
            by_account = self._subscribers.setdefault(subscription.loop, defaultdict(set))
            by_account[account_id].add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            by_account = self._subscribers.get(subscription.loop)
            if by_account is None:
                return
            subs = by_account.get(subscription.account_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del by_account[subscription.account_id]
            if not by_account:
                del self._subscribers[subscription.loop]

    def publish(self, changes: Sequence[Change]) -> None:
        """Called after a commit, from any thread: one hand-off per subscribed loop."""
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
        if not by_account and not everyone:
            return
        self._hand_off(dict(by_account), everyone)

    def resync(self) -> None:
        """Wake every subscriber with an empty batch: "re-read the store", for when hints
        may have been missed (a bus connection that dropped and came back)."""
        self._hand_off({}, [], wake_all=True)

    def _hand_off(
        self, by_account: dict[int, list[Change]], everyone: list[Change], *,
        wake_all: bool = False,
    ) -> None:
        with self._lock:
            loops = list(self._subscribers)
        for loop in loops:
            if loop.is_closed():
                continue
            # The loop may close between the check and the call (RuntimeError); its
            # subscribers are gone, and the other loops must still hear of the change.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._dispatch, loop, by_account, everyone,
                                          wake_all)

    def _dispatch(
        self, loop: asyncio.AbstractEventLoop, by_account: dict[int, list[Change]],
        everyone: list[Change], wake_all: bool,
    ) -> None:
        """On the subscribers' loop: the batch to every subscriber of its accounts (every
        subscriber for the server's shared metadata, or for a resync)."""
        seq = next(self._dispatches)
        self.last_dispatch = max(self.last_dispatch, seq)
        with self._lock:
            subscribed = self._subscribers.get(loop, {})
            accounts = (set(subscribed) if everyone or wake_all else set()) | set(by_account)
            targets = [
                (sub, by_account.get(account_id, []) + everyone)
                for account_id in accounts
                for sub in list(subscribed.get(account_id, ()))
            ]
        for sub, batch in targets:
            sub._deliver(batch, seq)
