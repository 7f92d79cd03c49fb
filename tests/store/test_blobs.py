"""Message bodies on disk: content addressed, durable before the row commits, no debris.

The blob store is the same for both SQL backends, so these tests run once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from postel.store import blobs as blobs_module
from postel.store.blobs import BlobStore, clean_tmp


@pytest.fixture
def blob_store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", tmp_path / "tmp")


def stored_files(store: BlobStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def test_put_is_content_addressed(blob_store: BlobStore) -> None:
    data = b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n"
    ref = blob_store.put(data)
    digest = hashlib.sha256(data).hexdigest()
    assert ref.sha256 == digest
    assert ref.size == len(data)
    assert blob_store.path(digest) == blob_store.root / digest[:2] / digest
    assert blob_store.path(digest).read_bytes() == data
    assert blob_store.exists(digest)
    with blob_store.open(digest) as f:
        assert f.read() == data
    assert list(blob_store.tmp_dir.iterdir()) == []  # the temp file was renamed away


def test_streamed_writes_hash_the_whole_body(blob_store: BlobStore) -> None:
    chunks = [b"a" * 70000, b"", b"b" * 3, b"\r\n.\r\n"]
    with blob_store.writer() as writer:
        for chunk in chunks:
            writer.write(chunk)
        assert writer.size == sum(map(len, chunks))
        ref = writer.commit()
    assert ref == blob_store.put(b"".join(chunks))
    assert blob_store.path(ref.sha256).read_bytes() == b"".join(chunks)
    empty = blob_store.put(b"")
    assert empty.sha256 == hashlib.sha256(b"").hexdigest() and empty.size == 0


def test_same_content_is_stored_once(blob_store: BlobStore) -> None:
    first = blob_store.put(b"same")
    mtime = blob_store.path(first.sha256).stat().st_mtime_ns
    second = blob_store.put(b"same")
    assert first == second
    assert stored_files(blob_store) == [blob_store.path(first.sha256)]
    assert blob_store.path(first.sha256).stat().st_mtime_ns == mtime  # not rewritten
    assert list(blob_store.tmp_dir.iterdir()) == []
    other = blob_store.put(b"other")
    assert other.sha256 != first.sha256
    assert len(stored_files(blob_store)) == 2


def test_bad_names_are_refused(blob_store: BlobStore) -> None:
    for name in ("", "../../etc/passwd", "A" * 64, "g" * 64, "a" * 63, "a" * 65):
        with pytest.raises(ValueError):
            blob_store.path(name)
    assert not blob_store.exists("0" * 64)


def test_commit_fsyncs_file_then_directories(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(blobs_module.os, "fsync", fsync)
    monkeypatch.setattr(blobs_module.os, "replace", replace)
    root = str(blob_store.root.resolve())
    tmp = str(blob_store.tmp_dir.resolve())

    ref = blob_store.put(b"durable")
    final = str(blob_store.path(ref.sha256).resolve())
    shard = os.path.dirname(final)
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "fsync", "rename", "fsync"], events
    # The data before the name; a new shard's entry in the root; then the new name.
    assert os.path.dirname(events[0][1]) == tmp
    assert os.path.basename(events[0][1]).startswith("blob-")
    assert events[1] == ("fsync", root)
    assert events[2] == ("rename", str(blob_store.path(ref.sha256)))
    assert events[3] == ("fsync", shard)

    # A second blob in an existing shard: file, rename, shard (the root did not change).
    events.clear()
    same_shard = _data_in_shard(ref.sha256[:2])
    blob_store.put(same_shard)
    assert [kind for kind, _ in events] == ["fsync", "rename", "fsync"], events
    assert events[2] == ("fsync", shard)

    # Content already stored: its file is durable already; nothing is renamed over it.
    events.clear()
    blob_store.put(b"durable")
    assert [kind for kind, _ in events] == ["fsync"], events


def _data_in_shard(prefix: str) -> bytes:
    for i in range(100000):
        data = b"x%d" % i
        if hashlib.sha256(data).hexdigest().startswith(prefix):
            return data
    raise AssertionError(f"no data found for shard {prefix}")  # pragma: no cover


def test_abort_leaves_nothing(blob_store: BlobStore) -> None:
    writer = blob_store.writer()
    writer.write(b"half a message")
    assert len(list(blob_store.tmp_dir.iterdir())) == 1
    writer.abort()
    writer.abort()  # twice is harmless
    assert list(blob_store.tmp_dir.iterdir()) == []
    assert stored_files(blob_store) == []

    # Leaving the with block without commit (the client went away) aborts too.
    with pytest.raises(ConnectionResetError), blob_store.writer() as writer:
        writer.write(b"partial")
        raise ConnectionResetError
    assert list(blob_store.tmp_dir.iterdir()) == []
    assert stored_files(blob_store) == []


def test_failed_commit_leaves_nothing(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobs_module.os, "fsync", full_disk)
    with pytest.raises(OSError), blob_store.writer() as writer:
        writer.write(b"body")
        writer.commit()
    assert list(blob_store.tmp_dir.iterdir()) == []
    assert stored_files(blob_store) == []


def test_commit_then_exit_keeps_the_blob(blob_store: BlobStore) -> None:
    with blob_store.writer() as writer:
        writer.write(b"kept")
        ref = writer.commit()
    assert blob_store.exists(ref.sha256)  # __exit__ after commit does not undo it


def test_clean_tmp(blob_store: BlobStore) -> None:
    # What a crash leaves: writers that never committed nor aborted.
    for _ in range(3):
        blob_store.writer().write(b"interrupted")
    kept = blob_store.put(b"committed")
    other = blob_store.tmp_dir / "not-ours"
    other.write_bytes(b"x")
    assert clean_tmp(blob_store.tmp_dir) == 3
    assert sorted(p.name for p in blob_store.tmp_dir.iterdir()) == ["not-ours"]
    assert blob_store.exists(kept.sha256)
    assert clean_tmp(blob_store.tmp_dir) == 0


def test_app_store_keeps_blobs_under_data_dir(tmp_path: Path) -> None:
    from postel.app import open_store
    from postel.config import parse_config

    config = parse_config({"data_dir": str(tmp_path / "data")})
    store = open_store(config)
    try:
        ref = store.blobs.put(b"hello")
        assert store.blobs.path(ref.sha256).is_relative_to(config.blob_dir)
        assert store.blobs.tmp_dir == config.tmp_dir
        # Same file system, so the rename into place is atomic.
        assert os.stat(config.tmp_dir).st_dev == os.stat(config.blob_dir).st_dev
    finally:
        store.close()
