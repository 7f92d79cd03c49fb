"""Many clients at once, and a crash in the middle: nothing acknowledged is ever lost."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import Callable

import aiosmtplib
import pytest

from postel.mail.mime import parse_message_bytes
from tests.harness import PostelServer

MANY = "[smtp]\nmax_connections_per_ip = 500\n"


def make_message(number: int, size: int = 10_000) -> bytes:
    filler = (f"line {number} ".encode() * 20)[:70] + b"\r\n"
    body = filler * (size // len(filler))
    return (
        (
            f"From: load{number}@remote.test\r\nTo: alice@example.test\r\n"
            f"Message-ID: <load-{number}@remote.test>\r\nSubject: load {number}\r\n\r\n"
        ).encode()
        + body
        + f"END-{number}\r\n".encode()
    )


async def send_one(port: int, number: int, message: bytes) -> bool:
    try:
        await aiosmtplib.send(
            message,
            sender=f"load{number}@remote.test",
            recipients=["alice@example.test"],
            hostname="127.0.0.1",
            port=port,
            start_tls=False,
            timeout=60,
        )
        return True
    except (aiosmtplib.SMTPException, OSError):
        return False


def stored_bodies(server: PostelServer) -> dict[str, bytes]:
    """Message-ID -> stored bytes, checking every stored blob is whole and content-named."""
    found: dict[str, bytes] = {}
    for data in server.inbox("alice@example.test"):
        parsed = parse_message_bytes(data)
        assert parsed.message_id is not None
        found[parsed.message_id] = data
    return found


def test_200_concurrent_deliveries_lose_nothing(make_postel: Callable[..., PostelServer]) -> None:
    server = make_postel(extra_config=MANY)
    server.add_user("alice@example.test")
    server.start()
    messages = {n: make_message(n) for n in range(200)}

    async def run() -> list[bool]:
        port = server.port("smtp")
        return await asyncio.gather(*(send_one(port, n, m) for n, m in messages.items()))

    results = asyncio.run(run())
    assert all(results)
    stored = stored_bodies(server)
    assert len(stored) == 200
    for number, message in messages.items():
        data = stored[f"<load-{number}@remote.test>"]
        assert hashlib.sha256(data[data.index(b"From: load") :]).digest() == (
            hashlib.sha256(message).digest()
        )
    account = server.store.directory.get_account("alice@example.test")
    assert account is not None
    box = server.store.mail.get_mailbox(account.id, "INBOX")
    assert box is not None
    assert [m.uid for m in server.store.mail.list_messages(box.id)] == list(range(1, 201))


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_during_delivery_loses_nothing_acknowledged(
    make_postel: Callable[..., PostelServer], workers: int,
) -> None:
    # workers=2: SIGKILL of the supervisor takes its workers with it (and frees the ports).
    server = make_postel(extra_config=MANY, workers=workers)
    server.add_user("alice@example.test")
    server.start()
    acknowledged: set[int] = set()
    attempted: set[int] = set()

    async def client(worker: int, stop: asyncio.Event) -> None:
        port = server.port("smtp")
        number = worker * 1000
        while not stop.is_set():
            attempted.add(number)
            if await send_one(port, number, make_message(number, 20_000)):
                acknowledged.add(number)
            else:
                return  # the server is gone
            number += 1

    async def run() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client(w, stop)) for w in range(50)]
        # Kill once plenty of deliveries are acknowledged and many are in flight.
        while len(acknowledged) < 150:
            await asyncio.sleep(0.01)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    server.stop()
    assert len(acknowledged) >= 150
    assert len(attempted) > len(acknowledged), "the kill should hit deliveries in flight"

    server.start()  # recovery: the server comes back and cleans half-written spool files
    stored = stored_bodies(server)
    for number in acknowledged:
        data = stored[f"<load-{number}@remote.test>"]
        assert data.endswith(make_message(number, 20_000))
    for message_id, data in stored.items():
        number = int(message_id.split("-")[1].split("@")[0])
        assert data.endswith(make_message(number, 20_000)), f"partial message {message_id}"
    assert not list((server.data_dir / "tmp").glob("blob-*"))
    # Every row's blob is present and whole.
    account = server.store.directory.get_account("alice@example.test")
    assert account is not None
    box = server.store.mail.get_mailbox(account.id, "INBOX")
    assert box is not None
    for meta in server.store.mail.list_messages(box.id):
        blob = server.store.blobs.path(meta.blob_sha256).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == meta.blob_sha256
        assert len(blob) == meta.size
