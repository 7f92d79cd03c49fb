"""Message bodies as content-addressed files: blobs/ab/abcdef....(sha256).

A body is written to a temp file in data_dir/tmp (same file system), fsynced, renamed to
its sha256 name and the directory fsynced; only then does the row that refers to it commit.
A crash before the commit leaves at worst an unreferenced blob, never a row without a body.

Blobs are shared by content, so deleting one that no row names is safe only if no writer
is between "the file is in place" and "my row has committed". Every install (a new file or
a duplicate of an existing one) therefore pins the blob in this process until the store
commits a row naming it (`release`), or for PIN_SECONDS when no row ever comes (rejected
mail); `collect` deletes only unpinned blobs, under the same lock that installs take.

Pins live in one process; worker processes write the same blob folder. A store opened
`shared` (several workers) therefore also leaves each pin as a file, blobs/.pins/<sha>-<pid>-<n>,
removed at release; `collect` skips a blob with such a file younger than PIN_SECONDS
(older ones are a crashed process's, and are removed). The look and the unlink run under
an exclusive flock of blobs/.lock that every shared install takes shared, so no install
can pin a file between the collector's look and its delete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from postel.store.model import BlobRef

# How long a blob written but not yet named by a committed row is kept from the collector:
# far longer than any spool-to-commit window (SMTP's DATA timeout is 10 minutes).
PIN_SECONDS = 3600.0


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path, tmp_dir: Path, *, shared: bool = False) -> None:
        self.root = root
        # Other processes (sibling workers) install and collect in the same folder.
        self.shared = shared
        self._pin_dir = root / ".pins"
        # sha256 -> the pin files of this process's uncommitted installs (shared only).
        self._pin_files: dict[str, list[Path]] = {}
        self._pin_serial = 0
        self.tmp_dir = tmp_dir
        root.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        # sha256 -> [writers not yet committed, expiry (monotonic)], oldest first.
        self._pins: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._lock_path = root / ".lock"
        if shared:
            self._pin_dir.mkdir(exist_ok=True)

    @contextlib.contextmanager
    def _host_lock(self, mode: int) -> Iterator[None]:
        """flock of blobs/.lock against other processes' collectors (LOCK_SH: installs,
        LOCK_EX: the collector). Called under self._lock; nothing to do unshared."""
        if not self.shared:
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # releases the flock

    def local_path(self, sha256: str) -> Path:
        """Where the blob's file is (or would be) on this host."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a blob name: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def path(self, sha256: str) -> Path:
        """A readable file with the blob's bytes (a store that keeps bodies elsewhere
        fetches the file first)."""
        return self.local_path(sha256)

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.local_path(sha256).exists()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put(self, data: bytes) -> BlobRef:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit()

    def release(self, sha256: str) -> None:
        """A row naming the blob has committed (or the write failed): unpin it once."""
        with self._lock:
            pin = self._pins.get(sha256)
            if pin is not None:
                pin[0] -= 1
                if pin[0] <= 0:
                    del self._pins[sha256]
            files = self._pin_files.get(sha256)
            if files:
                files.pop().unlink(missing_ok=True)
                if not files:
                    del self._pin_files[sha256]

    def collect(
        self, candidates: Collection[str], referenced: Callable[[list[str]], set[str]]
    ) -> list[str]:
        """Delete the candidates that are unpinned and that `referenced` (a query of every
        row that may name a blob) does not return; returns the deleted names.

        Pins are checked before the query, and both under the install lock: a writer that
        installed before holds a pin (released only after its row committed, which the
        query then sees), and one that installs after finds the file gone and writes it.
        """
        with self._lock, self._host_lock(fcntl.LOCK_EX):
            self._expire_pins()
            elsewhere = self._pinned_elsewhere()
            unpinned = [sha for sha in candidates
                        if sha not in self._pins and sha not in elsewhere]
            if not unpinned:
                return []
            kept = referenced(unpinned)
            deleted = []
            for sha in unpinned:
                if sha not in kept:
                    self.local_path(sha).unlink(missing_ok=True)
                    deleted.append(sha)
            return deleted

    def _pinned_elsewhere(self) -> set[str]:
        """Blobs another process installed and has not committed a row for (shared only;
        under the exclusive host lock). Stale pin files of crashed processes go."""
        if not self.shared:
            return set()
        pinned: set[str] = set()
        now = time.time()
        with os.scandir(self._pin_dir) as entries:
            for entry in entries:
                try:
                    fresh = now - entry.stat().st_mtime < PIN_SECONDS
                except FileNotFoundError:
                    continue
                if fresh:
                    pinned.add(entry.name.partition("-")[0])
                else:
                    Path(entry.path).unlink(missing_ok=True)
        return pinned

    def _pin_file(self, sha256: str) -> None:
        # Under self._lock and the shared host lock.
        self._pin_serial += 1
        path = self._pin_dir / f"{sha256}-{os.getpid()}-{self._pin_serial}"
        path.touch()
        self._pin_files.setdefault(sha256, []).append(path)

    def _pin(self, sha256: str) -> None:
        # Under self._lock.
        self._expire_pins()
        pin = self._pins.pop(sha256, None) or [0.0, 0.0]
        pin[0] += 1
        pin[1] = time.monotonic() + PIN_SECONDS
        self._pins[sha256] = pin

    def _expire_pins(self) -> None:
        # Under self._lock. Insertion order is expiry order (a re-pin moves to the end).
        clock = time.monotonic()
        while self._pins:
            sha, pin = next(iter(self._pins.items()))
            if pin[1] > clock:
                break
            del self._pins[sha]
            for path in self._pin_files.pop(sha, []):
                path.unlink(missing_ok=True)

    def _install(self, tmp_path: Path, sha256: str) -> None:
        final = self.local_path(sha256)
        shard = final.parent
        # Against collect(), this process's and the others': pin, then find or place.
        with self._lock, self._host_lock(fcntl.LOCK_SH):
            self._pin(sha256)
            if self.shared:
                self._pin_file(sha256)
            if final.exists():
                # Same content already stored: the existing file is complete (it was
                # renamed into place only after fsync), so drop the duplicate. Mark it
                # as just used (the access time; the content and its mtime stay):
                # `postel check --repair`, which may run in another process where this
                # pin is invisible, removes only orphans unused for its cut-off.
                tmp_path.unlink()
                os.utime(final, ns=(time.time_ns(), final.stat().st_mtime_ns))
                return
            if not shard.exists():  # one of 256, made once: fsync under the lock is fine
                shard.mkdir(exist_ok=True)
                fsync_dir(self.root)
            os.replace(tmp_path, final)
        # No lock needed: the pin keeps the collector away until the row commits.
        fsync_dir(shard)


class BlobWriter:
    """Streams a body to disk while hashing it; nothing is held in memory."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self.tmp_path = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def commit(self) -> BlobRef:
        """Make the blob durable under its content name and return its reference."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha256 = self._hash.hexdigest()
        self._store._install(self.tmp_path, sha256)
        self._done = True
        return BlobRef(sha256, self.size)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


def clean_tmp(tmp_dir: Path) -> int:
    """Remove half-written files left by a crash (nothing refers to them). Returns the count."""
    removed = 0
    for entry in tmp_dir.glob("blob-*"):
        entry.unlink(missing_ok=True)
        removed += 1
    return removed
