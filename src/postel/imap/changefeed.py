"""One store read per mailbox change, shared by every session that has the mailbox
selected; one \\Recent claim per delivery.

A delivery to a mailbox 1,000 sessions IDLE on wakes all of them. Each used to ask the
store for `changes_since` (and take a write transaction to claim \\Recent) by itself:
1,000 reads and 1,000 writes, one after another in the thread pool. Here the first
session's read is the one the others await, as long as it began after the hint each of
them woke for: the commit behind that hint happened before the bus dispatched it, so a
read that began after the dispatch sees it. A poll that has no hint to go by (NOOP, a
command that changed the mailbox, the periodic look for other processes' changes) always
reads afresh.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from postel.store.api import Store
from postel.store.bus import Bus
from postel.store.model import Mailbox, MailboxChanges

# Reads kept, newest first, for sessions that wake a little later than the others: a
# bound on memory whatever the number of mailboxes.
KEEP_READS = 1024


class _Read:
    def __init__(self, started: int, task: asyncio.Future[MailboxChanges]) -> None:
        self.started = started  # the bus's dispatch number when the read began
        self.task = task


class ChangeFeed:
    """Shared `changes_since` reads and \\Recent claims for one event loop's sessions."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self._store = store
        self._bus = bus
        self._reads: OrderedDict[tuple[int, int], _Read] = OrderedDict()  # (mailbox, since)
        # The uidnext up to which this process has claimed \Recent, per mailbox: a claim
        # below it would find nothing (first_recent_uid only grows), so it is skipped.
        self._claimed: dict[int, int] = {}
        self._claim_locks: dict[int, asyncio.Lock] = {}

    async def changes(
        self, mailbox_id: int, since: int, *, hint_seq: int | None
    ) -> MailboxChanges:
        """What changed in a mailbox after MODSEQ `since`. `hint_seq`: the dispatch
        number of the newest hint the caller has taken; a read that began at or after it
        is shared. None: the caller has no hint to go by and gets a read of its own."""
        key = (mailbox_id, since)
        current = self._reads.get(key)
        if hint_seq is not None and current is not None and current.started >= hint_seq:
            return await asyncio.shield(current.task)
        started = self._bus.last_dispatch
        task = asyncio.ensure_future(self._read(mailbox_id, since))
        self._reads[key] = _Read(started, task)
        self._reads.move_to_end(key)
        while len(self._reads) > KEEP_READS:
            self._reads.popitem(last=False)
        return await asyncio.shield(task)

    async def _read(self, mailbox_id: int, since: int) -> MailboxChanges:
        try:
            return await asyncio.to_thread(self._store.mail.changes_since, mailbox_id, since)
        except BaseException:
            # A failed read (the mailbox was deleted) is not kept for later callers.
            kept = self._reads.get((mailbox_id, since))
            if kept is not None and kept.task is asyncio.current_task():
                del self._reads[(mailbox_id, since)]
            raise

    async def claim_recent(self, box: Mailbox, until: int) -> range:
        """RFC 3501 2.3.2: take \\Recent for the messages below `until` nobody took yet.

        The store's claim is a write transaction; it is skipped when the mailbox row read
        says nothing is unclaimed or this process already claimed up to `until`, so a
        delivery that wakes 1,000 sessions costs one claim, made by the first of them."""
        empty = range(until, until)
        if until <= box.uidnext and box.first_recent_uid >= until:
            # first_recent_uid only grows: the store's claim would take nothing.
            return empty
        if self._claimed.get(box.id, 0) >= until:
            return empty
        lock = self._claim_locks.setdefault(box.id, asyncio.Lock())
        async with lock:
            if self._claimed.get(box.id, 0) >= until:
                return empty
            claim: Callable[[int, int], range] = self._store.mail.claim_recent
            taken = await asyncio.to_thread(claim, box.id, until)
            self._claimed[box.id] = max(self._claimed.get(box.id, 0), until)
        if not lock.locked() and self._claim_locks.get(box.id) is lock:
            del self._claim_locks[box.id]
        return taken
