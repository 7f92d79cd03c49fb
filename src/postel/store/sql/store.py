"""The store on SQLAlchemy Core: one implementation of the mail rules for both backends.

Backend differences are confined to engine set-up (``SqliteStore``: WAL, one writer at a
time; ``PostgresStore``: row locks) and are small on purpose: every rule about UIDs,
MODSEQs, delivery and expunge lives once, here.

Methods block (SQL and fsync); asyncio callers run them in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import (
    Connection,
    create_engine,
    event,
)

from postel.store.blobs import BlobStore
from postel.store.model import (
    Change,
)
from postel.store.sql.base import (
    NO_FLAGS,
    AlreadyExists,
    NotFound,
    StoreError,
    T,
    now,
)
from postel.store.sql.groupcommit import GroupCommitter
from postel.store.sql.imap import ImapStore


class SqlStore(ImapStore):
    """Every store operation, in one class the protocol servers use; the parts live in
    base, mail, directory, queue, web and imap (one module per concern)."""


class SqliteStore(SqlStore):
    """The embedded default: one SQLite file in WAL mode, one writer at a time.

    SQLite allows one writer; taking a process-wide lock before BEGIN avoids the
    "database is locked" errors that deferred transactions upgrading to write locks cause,
    while readers proceed in parallel under WAL.
    """

    def __init__(self, url: str, blobs: BlobStore) -> None:
        engine = create_engine(url, pool_size=8, max_overflow=32, pool_timeout=60)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a 250 after DATA survives a
            # power cut, not only a process crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        super().__init__(engine, blobs)
        self._lock = threading.Lock()
        self._group = GroupCommitter(engine, self._lock, (StoreError,), self._publish)

    def _write_lock(self) -> AbstractContextManager[Any]:
        return self._lock

    def _group_write(self, work: Callable[[Connection, list[Change]], T]) -> T:
        # Concurrent deliveries share one transaction and one WAL fsync (group commit).
        return self._group.run(work)


class PostgresStore(SqlStore):
    """PostgreSQL: concurrent writers, serialised per mailbox by row locks."""

    def __init__(self, url: str, blobs: BlobStore) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        engine = create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True)
        super().__init__(engine, blobs)


__all__ = [
    "NO_FLAGS",
    "AlreadyExists",
    "NotFound",
    "PostgresStore",
    "SqlStore",
    "SqliteStore",
    "StoreError",
    "now",
]
