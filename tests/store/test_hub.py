"""The workers' hub over a real Unix-domain socket: hints forwarded, locks held per
connection, a dropped worker reconnects and re-reads, the wire format round-trips."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from postel.store.hub import Hub, HubBus, decode_changes, encode_changes
from postel.store.model import (
    Change,
    CredentialsChanged,
    Flags,
    FlagsChanged,
    MailboxChanged,
    MessageAdded,
    MessagesExpunged,
    QueueChanged,
)

WAIT = 10.0  # seconds; only reached when something is lost

ALL_KINDS: list[Change] = [
    MessageAdded(1, 2, 3, 4),
    FlagsChanged(1, 2, 3, 5, Flags(seen=True, keywords=("$Junk",))),
    MessagesExpunged(1, 2, (3, 4), 6),
    MailboxChanged(1, 2),
    CredentialsChanged(1),
    QueueChanged(),
]


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async def loop() -> None:
        while not await check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), WAIT)


def run(path: Path, body: Callable[[Hub, HubBus, HubBus], Awaitable[None]]) -> None:
    async def main() -> None:
        hub = Hub(path, lambda index, started: None)
        await hub.start()
        a, b = HubBus(path, 0), HubBus(path, 1)
        await a.start()
        await b.start()
        try:
            await body(hub, a, b)
        finally:
            await a.close()
            await b.close()
            await hub.close()

    asyncio.run(main())


def test_every_change_kind_survives_the_wire() -> None:
    assert decode_changes(encode_changes(ALL_KINDS)) == ALL_KINDS
    assert decode_changes([{"k": "Nope"}, {"k": "MessageAdded"}, 7, "x"]) == []
    assert decode_changes("not a list") == []


def test_a_huge_expunge_crosses_in_lines_the_hub_accepts(tmp_path: Path) -> None:
    huge = MessagesExpunged(1, 2, tuple(range(1, 250_001)), 9)

    async def body(hub: Hub, a: HubBus, b: HubBus) -> None:
        async with b.subscribe(1) as sub:
            a.publish([huge])
            got: list[int] = []
            while len(got) < len(huge.uids):
                batch = await asyncio.wait_for(sub.get(), WAIT)
                assert batch, "the hub dropped the publisher (a resync) instead"
                got += [uid for c in batch if isinstance(c, MessagesExpunged) for uid in c.uids]
            assert tuple(got) == huge.uids

    run(tmp_path / "hub.sock", body)


def test_a_publish_reaches_the_other_workers_subscribers(tmp_path: Path) -> None:
    async def body(hub: Hub, a: HubBus, b: HubBus) -> None:
        heard: list[Sequence[Change]] = []
        b.on_remote(heard.append)
        async with a.subscribe(1) as mine, b.subscribe(1) as theirs, b.subscribe(2) as other:
            a.publish([MessageAdded(1, 10, 1, 2), QueueChanged()])
            assert await asyncio.wait_for(mine.get(), WAIT) == [MessageAdded(1, 10, 1, 2)]
            assert await asyncio.wait_for(theirs.get(), WAIT) == [MessageAdded(1, 10, 1, 2)]
            assert other.queue.empty()
            assert any(isinstance(c, QueueChanged) for batch in heard for c in batch)

    run(tmp_path / "hub.sock", body)


def test_a_lock_is_held_host_wide_and_dies_with_its_connection(tmp_path: Path) -> None:
    async def body(hub: Hub, a: HubBus, b: HubBus) -> None:
        assert await a.acquire("pop3:1")
        assert not await a.acquire("pop3:1")  # another session on the same worker
        assert not await b.acquire("pop3:1")
        assert await b.acquire("pop3:2")
        a.release("pop3:1")

        async def b_takes_it() -> bool:
            return await b.acquire("pop3:1")

        await eventually(b_takes_it)  # the release travels on a's connection
        await b.close()  # a worker that goes away gives its locks back

        async def a_takes_both() -> bool:
            return await a.acquire("pop3:2")

        await eventually(a_takes_both)

    run(tmp_path / "hub.sock", body)


def test_a_dropped_worker_reconnects_and_its_sessions_re_read(tmp_path: Path) -> None:
    async def body(hub: Hub, a: HubBus, b: HubBus) -> None:
        assert await b.acquire("pop3:7")
        async with b.subscribe(5) as sub:
            for writer, index in list(hub._writers.items()):
                if index == 1:
                    writer.transport.abort()  # as the hub does to a worker that lags
            # Hints may have been lost meanwhile: an empty batch says "re-read the store".
            assert await asyncio.wait_for(sub.get(), WAIT) == []

            async def forwarded() -> bool:
                a.publish([MessageAdded(5, 1, 1, 1)])
                try:
                    return await asyncio.wait_for(sub.get(), 0.2) != []
                except TimeoutError:
                    return False

            await eventually(forwarded)

        async def retaken() -> bool:
            return "pop3:7" in hub._locks

        await eventually(retaken)  # b's session still holds it: taken again on reconnect
        assert not await a.acquire("pop3:7")

    run(tmp_path / "hub.sock", body)


def test_a_data_dir_path_too_long_for_a_unix_socket_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)

    async def body(hub: Hub, a: HubBus, b: HubBus) -> None:
        async with b.subscribe(1) as sub:
            a.publish([MailboxChanged(1, 2)])
            assert await asyncio.wait_for(sub.get(), WAIT) == [MailboxChanged(1, 2)]

    run(deep / "hub.sock", body)
