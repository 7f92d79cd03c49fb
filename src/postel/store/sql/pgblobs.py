"""Message bodies in PostgreSQL, so every host of a cluster reads them without a shared
file system (issue 14).

The database is the truth and each host's blob directory a cache of it. A writer streams
the body to a local file as on the embedded default (fsync, rename), then copies the file
into `blob_chunks` a chunk at a time in one transaction and adds its `blob_objects` row,
all before the row that names the blob commits: a 250 or an OK means the body is in the
database, so another host can serve it even if this one's disk is lost. A reader on a host
without the file fetches the chunks into the cache, checks the SHA-256, and renames it into
place; nothing is ever whole in memory.

Across hosts the collector cannot see another host's pins (a body it just installed whose
row has not committed yet). A writer therefore stamps `blob_objects.used_at` whenever it
installs a body, even a duplicate, and the collector deletes only rows not stamped within
`grace` seconds, in the same statement that checks that no row names the blob. (A body
whose row a collector spared for that reason stays until `postel check --repair`.)

Why not large objects (lo_*): they need their own permission and cleanup story and are not
copied by logical replication; chunks in a plain table are ordinary rows.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Collection
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from postel.store.blobs import BlobStore, fsync_dir
from postel.store.sql import schema as t
from postel.store.sql.rows import now as utcnow

CHUNK = 256 * 1024
# How long a stamp protects a body from the collectors of other hosts: far longer than the
# moment between a writer's install (which stamps) and the commit of the row naming it.
# This host's own writers are protected exactly, by the pins of BlobStore.
GRACE_SECONDS = 600.0


class PgBlobStore(BlobStore):
    def __init__(
        self, root: Path, tmp_dir: Path, engine: Engine, *, grace: float = GRACE_SECONDS,
        shared: bool = False,
    ) -> None:
        super().__init__(root, tmp_dir, shared=shared)
        self.engine = engine
        self.grace = grace

    # -- writing ------------------------------------------------------------------------

    def _install(self, tmp_path: Path, sha256: str) -> None:
        super()._install(tmp_path, sha256)  # pinned locally from here on
        self.upload(sha256)

    def upload(self, sha256: str) -> None:
        """Put the local file's bytes in the database (stamp them if they are there)."""
        final = self.local_path(sha256)
        with self.engine.begin() as conn:
            stamped = conn.execute(
                update(t.blob_objects).where(t.blob_objects.c.sha256 == sha256)
                .values(used_at=utcnow())
            ).rowcount
            if stamped:
                return  # the same content is stored already: its use is stamped
            size = 0
            with final.open("rb") as body:
                seq = 0
                while chunk := body.read(CHUNK):
                    # DO NOTHING: another host may be uploading the same content now; its
                    # chunks are these bytes, and our insert waits for its commit.
                    conn.execute(pg_insert(t.blob_chunks).values(
                        sha256=sha256, seq=seq, data=chunk).on_conflict_do_nothing())
                    size += len(chunk)
                    seq += 1
            conn.execute(pg_insert(t.blob_objects).values(
                sha256=sha256, size=size, used_at=utcnow()).on_conflict_do_nothing())

    # -- reading ------------------------------------------------------------------------

    def path(self, sha256: str) -> Path:
        final = self.local_path(sha256)
        if not final.exists():
            self._fetch(sha256, final)
        return final

    def exists(self, sha256: str) -> bool:
        if self.local_path(sha256).exists():
            return True
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.blob_objects.c.sha256).where(t.blob_objects.c.sha256 == sha256)
            ).first() is not None

    def _fetch(self, sha256: str, final: Path) -> None:
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="blob-")
        tmp = Path(name)
        try:
            hasher = hashlib.sha256()
            found = False
            with os.fdopen(fd, "wb") as out, self.engine.connect() as conn:
                rows = conn.execution_options(stream_results=True, yield_per=8).execute(
                    select(t.blob_chunks.c.data).where(t.blob_chunks.c.sha256 == sha256)
                    .order_by(t.blob_chunks.c.seq))
                for (data,) in rows:
                    found = True
                    hasher.update(data)
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if not found and sha256 != hashlib.sha256(b"").hexdigest():
                raise FileNotFoundError(f"blob {sha256} is in neither the cache nor the "
                                        "database")
            if hasher.hexdigest() != sha256:
                raise OSError(f"blob {sha256} read from the database does not match its "
                              "name: refusing to serve it")
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        finally:
            tmp.unlink(missing_ok=True)

    # -- collecting ---------------------------------------------------------------------

    def collect(
        self, candidates: Collection[str], referenced: Callable[[list[str]], set[str]]
    ) -> list[str]:
        """The local cache files as BlobStore.collect does, then the database's rows of
        those no row names and no host has installed within the grace period."""
        deleted = super().collect(candidates, referenced)
        if not deleted:
            return deleted
        cutoff = utcnow() - timedelta(seconds=self.grace)
        with self.engine.begin() as conn:
            for sha in deleted:
                unnamed = and_(
                    t.blob_objects.c.sha256 == sha,
                    t.blob_objects.c.used_at < cutoff,
                    ~exists().where(t.messages.c.blob_sha256 == sha),
                    ~exists().where(t.outbound_queue.c.blob_sha256 == sha),
                )
                if conn.execute(delete(t.blob_objects).where(unnamed)).rowcount:
                    conn.execute(delete(t.blob_chunks).where(t.blob_chunks.c.sha256 == sha))
        return deleted
