"""The in-process change bus: writes in worker threads wake asyncio subscribers (IDLE)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from postel.store.bus import InProcessBus, Subscription
from postel.store.model import (
    Change,
    FlagsChanged,
    MessageAdded,
    MessagesExpunged,
    MetadataChanged,
    QueueChanged,
)
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, deliver_one, mailbox_id

WAIT = 5.0  # seconds; only reached when a wake-up is lost


def in_thread(work: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_publish_from_another_thread_wakes_the_subscriber() -> None:
    bus = InProcessBus()
    mine = [MessageAdded(1, 10, 1, 2), MessagesExpunged(1, 10, (1,), 3)]
    others = [MessageAdded(2, 20, 1, 2)]

    async def main() -> list[Change]:
        async with bus.subscribe(1) as sub:
            # Interleaved with another account's changes: only ours arrive, in order.
            in_thread(lambda: bus.publish([others[0], mine[0], mine[1]])).join()
            got = await asyncio.wait_for(sub.get(), WAIT)
            assert sub.queue.empty()
            return got

    assert asyncio.run(main()) == mine


def test_server_shared_metadata_reaches_every_account() -> None:
    # MetadataChanged without an account is the server's /shared entries, which every
    # account sees (NOTIFY ServerMetadataChange, RFC 5465 5.7); QueueChanged reaches none.
    bus = InProcessBus()
    shared, own = MetadataChanged(None, None), MetadataChanged(1, 10)

    async def main() -> tuple[list[Change], list[Change]]:
        async with bus.subscribe(1) as first, bus.subscribe(2) as second:
            bus.publish([QueueChanged(), own, shared])
            got = await asyncio.wait_for(first.get(), WAIT), await asyncio.wait_for(
                second.get(), WAIT)
            assert first.queue.empty() and second.queue.empty()
            return got

    assert asyncio.run(main()) == ([own, shared], [shared])


def test_subscriber_waiting_before_publish_wakes() -> None:
    bus = InProcessBus()
    change = MessageAdded(7, 70, 5, 9)

    async def main() -> list[Change]:
        async with bus.subscribe(7) as sub:
            waiter = asyncio.ensure_future(sub.get())
            await asyncio.sleep(0)  # the subscriber is now blocked in get()
            thread = in_thread(lambda: bus.publish([change]))
            got = await asyncio.wait_for(waiter, WAIT)
            thread.join()
            return got

    assert asyncio.run(main()) == [change]


def test_every_subscriber_of_an_account_gets_the_batch() -> None:
    bus = InProcessBus()
    change = MessageAdded(1, 10, 1, 2)

    async def main() -> None:
        async with bus.subscribe(1) as a, bus.subscribe(1) as b, bus.subscribe(2) as c:
            in_thread(lambda: bus.publish([change])).join()
            assert await asyncio.wait_for(a.get(), WAIT) == [change]
            assert await asyncio.wait_for(b.get(), WAIT) == [change]
            await asyncio.sleep(0.01)
            assert c.queue.empty()

    asyncio.run(main())


def test_closed_subscription_gets_nothing_and_is_forgotten() -> None:
    bus = InProcessBus()

    async def main() -> Subscription:
        async with bus.subscribe(1) as sub:
            pass
        bus.publish([MessageAdded(1, 10, 1, 2)])
        await asyncio.sleep(0.01)
        assert sub.queue.empty()
        return sub

    asyncio.run(main())
    assert bus._subscribers == {}


def test_publish_after_the_subscribers_loop_ended_is_harmless() -> None:
    # A session whose event loop is gone (shutdown, crash) without unsubscribing.
    bus = InProcessBus()

    async def main() -> None:
        bus.subscribe(1)

    asyncio.run(main())
    bus.publish([MessageAdded(1, 10, 1, 2)])


def test_one_dead_subscriber_does_not_silence_the_others() -> None:
    bus = InProcessBus()
    change = MessageAdded(1, 10, 1, 2)

    class ClosingLoop:
        """A loop closed between the bus's is_closed() check and its call (a race)."""

        def is_closed(self) -> bool:
            return False

        def call_soon_threadsafe(self, *args: object) -> None:
            raise RuntimeError("Event loop is closed")

    async def main() -> list[Change]:
        async with bus.subscribe(1) as live:
            for _ in range(3):
                dead = bus.subscribe(1)
                dead.loop = ClosingLoop()  # type: ignore[assignment]
            in_thread(lambda: bus.publish([change])).join()
            return await asyncio.wait_for(live.get(), WAIT)

    assert asyncio.run(main()) == [change]


def test_a_stuck_subscriber_is_bounded() -> None:
    bus = InProcessBus()

    async def main() -> None:
        async with bus.subscribe(1) as sub:
            for uid in range(1, 1001):
                bus.publish([MessageAdded(1, 10, uid, uid + 1)])
            await asyncio.sleep(0.05)
            maxsize = sub.queue.maxsize
            assert 0 < maxsize < 1000
            assert sub.queue.qsize() == maxsize  # the rest dropped: it re-reads the store
            first = await sub.get()
            assert first == [MessageAdded(1, 10, 1, 2)]

    asyncio.run(main())


def test_store_commit_wakes_a_subscriber(store: SqlStore) -> None:
    # As the app wires it: store.on_commit(bus.publish); SMTP delivers in a worker thread,
    # an IMAP session in IDLE waits on the bus and then re-reads the store.
    bus = InProcessBus()
    store.on_commit(bus.publish)
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    box = mailbox_id(store, alice)

    async def idle() -> None:
        async with bus.subscribe(alice.id) as sub:
            start = store.mail.changes_since(box, 0).mailbox.highestmodseq
            thread = in_thread(lambda: (deliver_one(store, bob), deliver_one(store, alice)))
            (added,) = await asyncio.wait_for(sub.get(), WAIT)
            thread.join()
            assert isinstance(added, MessageAdded)
            assert (added.account_id, added.mailbox_id, added.uid) == (alice.id, box, 1)
            changes = await asyncio.to_thread(store.mail.changes_since, box, start)
            assert [m.uid for m in changes.changed] == [1]

            await asyncio.to_thread(store.mail.set_flags, box, [1], changes.changed[0].flags)
            assert sub.queue.empty()  # nothing changed, nothing published
            thread = in_thread(lambda: store.mail.expunge(box, [1]))
            (gone,) = await asyncio.wait_for(sub.get(), WAIT)
            thread.join()
            assert gone == MessagesExpunged(alice.id, box, (1,), gone.modseq)
            assert not isinstance(gone, FlagsChanged)

    asyncio.run(idle())
