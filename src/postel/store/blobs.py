"""Message bodies as content-addressed files: blobs/ab/abcdef....(sha256).

A body is written to a temp file in data_dir/tmp (same file system), fsynced, renamed to
its sha256 name and the directory fsynced; only then does the row that refers to it commit.
A crash before the commit leaves at worst an unreferenced blob, never a row without a body.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from postel.store.model import BlobRef


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        root.mkdir(parents=True, exist_ok=True)
        tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a blob name: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put(self, data: bytes) -> BlobRef:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit()

    def _install(self, tmp_path: Path, sha256: str) -> None:
        final = self.path(sha256)
        if final.exists():
            # Same content already stored: the existing file is complete (it was renamed
            # into place only after fsync), so drop the duplicate.
            tmp_path.unlink()
            return
        shard = final.parent
        if not shard.exists():
            shard.mkdir(exist_ok=True)
            fsync_dir(self.root)
        os.replace(tmp_path, final)
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
