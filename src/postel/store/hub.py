"""The change-hint hub of one host: worker processes' buses joined through the supervisor.

The supervisor runs a `Hub` on a Unix-domain socket in the data directory (mode 0600, no
extra server to install). Each worker's `HubBus` is the `store/bus.py:Bus` its services
see: a publish wakes this process's subscribers at once and goes to the hub, which
forwards it to every other worker. The hub also holds the host's named locks (POP3's
maildrop lock, RFC 1939 4): a lock belongs to the connection that took it, so a worker
that dies releases its locks with its connection.

Wire format: one JSON object per line, small (an account id, a change kind, a mailbox id).
A hint only says "look again": a worker whose hub connection drops reconnects and wakes
all its subscribers with an empty batch ("re-read the store"), so nothing is missed. Several
hosts on PostgreSQL need the same interface one level up (LISTEN/NOTIFY, advisory locks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from postel.store.bus import InProcessBus, Subscription
from postel.store.model import (
    Change,
    CredentialsChanged,
    Flags,
    FlagsChanged,
    MailboxChanged,
    MessageAdded,
    MessagesExpunged,
    MetadataChanged,
    QueueChanged,
)

log = logging.getLogger("postel.hub")

# A line longer than this is not ours: the connection is dropped (the peer reconnects).
MAX_LINE = 1024 * 1024
# Bytes the hub lets pile up for one slow worker before it drops that connection; the
# worker reconnects and re-reads the store, so dropping loses no news.
MAX_BACKLOG = 4 * 1024 * 1024
# Seconds a lock request waits for the hub before the answer is "held" (the safe side).
LOCK_TIMEOUT = 5.0
# Longest path bind()/connect() take (sun_path is 108 bytes with its NUL).
_SUN_PATH_MAX = 100

_KINDS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (MessageAdded, FlagsChanged, MessagesExpunged, MailboxChanged,
                CredentialsChanged, QueueChanged, MetadataChanged)
}

Ready = Callable[[int, list[tuple[str, str]]], None]


# UIDs per MessagesExpunged on the wire: an expunge of 100,000 messages becomes several
# entries, so no line nears MAX_LINE.
UIDS_PER_ENTRY = 10_000


def encode_changes(changes: Sequence[Change]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for change in changes:
        if isinstance(change, MessagesExpunged) and len(change.uids) > UIDS_PER_ENTRY:
            for i in range(0, len(change.uids), UIDS_PER_ENTRY):
                part = MessagesExpunged(change.account_id, change.mailbox_id,
                                        change.uids[i : i + UIDS_PER_ENTRY], change.modseq)
                items.append({"k": "MessagesExpunged", **asdict(part)})
        else:
            items.append({"k": type(change).__name__, **asdict(change)})
    return items


def decode_changes(items: Any) -> list[Change]:
    """Changes from the wire; anything unknown or malformed is skipped (a hint only)."""
    changes: list[Change] = []
    if not isinstance(items, list):
        return changes
    for item in items:
        if not isinstance(item, dict):
            continue
        fields = dict(item)
        cls = _KINDS.get(str(fields.pop("k", "")))
        if cls is None:
            continue
        try:
            if cls is FlagsChanged:
                flags = dict(fields["flags"])
                flags["keywords"] = tuple(flags.get("keywords", ()))
                fields["flags"] = Flags(**flags)
            if cls is MessagesExpunged:
                fields["uids"] = tuple(fields["uids"])
            changes.append(cls(**fields))
        except (KeyError, TypeError, ValueError):
            continue
    return changes


def socket_path(data_dir: Path) -> Path:
    return data_dir / "hub.sock"


@contextlib.contextmanager
def _short_path(path: Path) -> Any:
    """`path`, or the same file through /proc/self/fd when it is too long for sun_path
    (deep test directories): an open descriptor of its folder stands in for the prefix."""
    text = str(path)
    if len(text) <= _SUN_PATH_MAX:
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _pub_lines(items: list[dict[str, Any]], budget: int = MAX_LINE // 4) -> list[bytes]:
    """"pub" lines of at most about `budget` bytes each (an entry is at most ~70 KB)."""
    lines: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for item in items:
        encoded = json.dumps(item, separators=(",", ":")).encode()
        if batch and size + len(encoded) > budget:
            lines.append(b'{"op":"pub","c":[' + b",".join(batch) + b"]}\n")
            batch, size = [], 0
        batch.append(encoded)
        size += len(encoded) + 1
    if batch:
        lines.append(b'{"op":"pub","c":[' + b",".join(batch) + b"]}\n")
    return lines


def publish_once(path: Path, changes: Sequence[Change]) -> None:
    """Blocking, for a process outside the workers (the `postel` command line): hand its
    committed changes to a running server's hub, so a password changed with `postel user
    passwd` signs the user out (and empties login caches) in every worker at once. No hub
    (one-process server, none running): nothing to do; a hint only, never an error."""
    if not changes or not path.exists():
        return
    with (
        contextlib.suppress(OSError),
        _short_path(path) as where,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
    ):
        sock.settimeout(2.0)
        sock.connect(where)
        sock.sendall(_line({"op": "hello", "worker": -1})
                     + b"".join(_pub_lines(encode_changes(changes))))


class Hub:
    """The supervisor's side: forwards hints between workers, holds named locks."""

    def __init__(self, path: Path, on_ready: Ready) -> None:
        self.path = path
        self._on_ready = on_ready
        self._server: asyncio.AbstractServer | None = None
        self._writers: dict[asyncio.StreamWriter, int] = {}
        self._locks: dict[str, asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        with _short_path(self.path) as where:
            self._server = await asyncio.start_unix_server(self._serve, where, limit=MAX_LINE)
        # Only this user's processes may join: hints name accounts and mailboxes.
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers[writer] = -1
        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self._handle(writer, message, line)
        except (ConnectionError, ValueError, asyncio.LimitOverrunError) as exc:
            log.warning("hub connection dropped", extra={"fields": {"error": str(exc)}})
        finally:
            self._writers.pop(writer, None)
            # A worker's locks die with its connection (it exited, or will re-take them).
            for key in [k for k, owner in self._locks.items() if owner is writer]:
                del self._locks[key]
            writer.close()

    def _handle(self, writer: asyncio.StreamWriter, message: dict[str, Any], line: bytes) -> None:
        op = message.get("op")
        if op == "pub":
            for other in list(self._writers):
                if other is not writer:
                    self._send(other, line)
        elif op == "lock":
            key = str(message.get("key"))
            owner = self._locks.get(key)
            ok = owner is None or (owner is writer and bool(message.get("retake")))
            if ok:
                self._locks[key] = writer
            self._send(writer, _line({"op": "lock", "id": message.get("id"), "ok": ok}))
        elif op == "unlock":
            key = str(message.get("key"))
            if self._locks.get(key) is writer:
                del self._locks[key]
        elif op == "hello":
            self._writers[writer] = int(message.get("worker", -1))
        elif op == "ready":
            started = [(str(a), str(b)) for a, b in message.get("started", [])]
            self._on_ready(self._writers.get(writer, -1), started)

    def _send(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        if writer.transport.is_closing():
            return
        if writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            log.warning("hub: a worker is not reading; dropping its connection",
                        extra={"fields": {"worker": self._writers.get(writer)}})
            writer.transport.abort()
            return
        writer.write(line)


class HubBus:
    """A worker's Bus (subscribe/publish) and Locks over the supervisor's hub."""

    def __init__(self, path: Path, worker: int) -> None:
        self.path = path
        self.worker = worker
        self.local = InProcessBus()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._remote: list[Callable[[Sequence[Change]], None]] = []
        self._held: set[str] = set()
        self._pending: dict[int, asyncio.Future[bool]] = {}
        self._next_id = 0
        self._ready: list[tuple[str, str]] | None = None
        self._rejoining: asyncio.Task[None] | None = None

    # -- Bus --------------------------------------------------------------------------

    def subscribe(self, account_id: int) -> Subscription:
        return self.local.subscribe(account_id)

    def publish(self, changes: Sequence[Change]) -> None:
        """After a commit, from any thread: this process's subscribers now, then every
        other worker's through the hub."""
        self.local.publish(changes)
        loop = self._loop
        if loop is None or loop.is_closed() or not changes:
            return
        lines = b"".join(_pub_lines(encode_changes(changes)))
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._write, lines)

    @property
    def last_dispatch(self) -> int:
        return self.local.last_dispatch

    def listen(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Every batch: this worker's commits and, through local.publish, the others'."""
        self.local.listen(listener)

    def on_remote(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Also hear other workers' changes (the queue runner wakes on QueueChanged)."""
        self._remote.append(listener)

    # -- Locks ------------------------------------------------------------------------

    async def acquire(self, key: str) -> bool:
        """Take the host-wide lock `key`; False when anyone holds it (or the hub cannot
        be asked: refusing is the safe answer, the client retries)."""
        if key in self._held or self._writer is None:
            return False
        self._held.add(key)
        if not await self._ask_lock(key, retake=False):
            self._held.discard(key)
            return False
        return True

    def release(self, key: str) -> None:
        if key in self._held:
            self._held.discard(key)
            self._write(_line({"op": "unlock", "key": key}))

    def held(self, key: str) -> bool:
        return key in self._held

    async def _ask_lock(self, key: str, *, retake: bool) -> bool:
        assert self._loop is not None
        self._next_id += 1
        request = self._next_id
        future: asyncio.Future[bool] = self._loop.create_future()
        self._pending[request] = future
        self._write(_line({"op": "lock", "id": request, "key": key, "retake": retake}))
        try:
            return await asyncio.wait_for(future, LOCK_TIMEOUT)
        except TimeoutError:
            return False
        finally:
            self._pending.pop(request, None)

    # -- connection -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (retrying while the supervisor's hub comes up) and keep connected."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="hub-bus")
        await asyncio.wait_for(self._connected.wait(), 30)

    def announce_ready(self, started: list[tuple[str, str]]) -> None:
        self._ready = started
        self._write(_line({"op": "ready", "started": started}))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, line: bytes) -> None:
        writer = self._writer
        if writer is not None and not writer.transport.is_closing():
            writer.write(line)

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while True:
            try:
                with _short_path(self.path) as where:
                    reader, writer = await asyncio.open_unix_connection(where, limit=MAX_LINE)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            self._writer = writer
            self._write(_line({"op": "hello", "worker": self.worker}))
            if not first:
                # A task: its lock requests are answered by the reads below.
                self._rejoining = asyncio.create_task(self._rejoin())
            first = False
            self._connected.set()
            try:
                await self._read(reader)
            except (ConnectionError, ValueError, asyncio.LimitOverrunError) as exc:
                log.warning("hub connection lost", extra={"fields": {"error": str(exc)}})
            self._writer = None
            writer.close()
            for future in self._pending.values():
                if not future.done():
                    future.set_result(False)
            log.info("hub connection lost; reconnecting")

    async def _rejoin(self) -> None:
        """After a reconnect: hints sent meanwhile are lost, so every session re-reads
        the store; the locks this worker's sessions hold are taken again."""
        self.local.resync()
        if self._ready is not None:
            self._write(_line({"op": "ready", "started": self._ready}))
        for key in list(self._held):
            if not await self._ask_lock(key, retake=True):
                log.warning("hub: a lock was taken by another worker while disconnected",
                            extra={"fields": {"key": key}})

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            op = message.get("op")
            if op == "pub":
                changes = decode_changes(message.get("c"))
                if changes:
                    self.local.publish(changes)
                    for listener in self._remote:
                        try:
                            listener(changes)
                        except Exception:
                            log.exception("hub: remote change listener failed")
            elif op == "lock":
                future = self._pending.get(int(message.get("id") or 0))
                if future is not None and not future.done():
                    future.set_result(bool(message.get("ok")))
