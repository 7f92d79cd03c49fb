"""The one database object every SQL part shares: engine, write lock, group commit, and
the publication of committed changes.

SQLite and PostgreSQL differ only here, in how the database is set up (`open_database`):
SQLite gets WAL, a process-wide write lock and group commit; PostgreSQL gets concurrent
writers serialised per mailbox by row locks. The parts (mail, directory, queue, web, ...)
hold a Database and never know which backend it is.

Methods block (SQL and fsync); asyncio callers run them in a worker thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, make_url
from sqlalchemy.exc import IntegrityError

from postel.store.blobs import BlobStore
from postel.store.errors import AlreadyExists, StoreError
from postel.store.model import Change
from postel.store.sql.groupcommit import GroupCommitter
from postel.store.sql.pgblobs import PgBlobStore
from postel.store.sql.pgbus import send_hints

log = logging.getLogger("postel.store")

T = TypeVar("T")
Listener = Callable[[Sequence[Change]], None]


class WriteLock:
    """SQLite's one writer, for the threads of this process and for other processes.

    A thread lock first (one waiter per process), then an flock of `<db>.lock`: a process
    waiting for another's write sleeps in the kernel and wakes the moment it is released,
    where SQLite's own busy handler would poll with growing sleeps (with two workers
    writing, that tripled the time per delivery). BEGIN IMMEDIATE still guards against
    writers that do not take the file lock.
    """

    def __init__(self, path: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path else None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    """Transactions and commit listeners over one engine."""

    def __init__(
        self, engine: Engine, blobs: BlobStore, write_lock: WriteLock | None = None
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self._listeners: list[Listener] = []
        # Called inside each write transaction that has changes, just before COMMIT (the
        # PostgreSQL hint relay sends its NOTIFY there, so it is delivered with the commit).
        self._before_commit: list[Callable[[Connection, list[Change]], None]] = []
        self._lock = write_lock
        # Writes begin with BEGIN IMMEDIATE on SQLite (see _sqlite): the option marks them.
        self.writer = engine.execution_options(postel_write=True)
        # Concurrent deliveries share one transaction and one WAL fsync (SQLite only:
        # PostgreSQL writers run in parallel anyway).
        self._group = (
            None if write_lock is None
            else GroupCommitter(self.writer, write_lock, (StoreError,), self.publish)
        )

    def on_commit(self, listener: Listener) -> None:
        """Register a callback that receives the changes of every committed write."""
        self._listeners.append(listener)

    def before_commit(self, hook: Callable[[Connection, list[Change]], None]) -> None:
        self._before_commit.append(hook)

    def _write_lock(self) -> AbstractContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def write(self) -> Iterator[tuple[Connection, list[Change]]]:
        """A write transaction; the changes appended to the list are published after commit."""
        changes: list[Change] = []
        with self._write_lock(), self.writer.begin() as conn:
            yield conn, changes
            if changes:
                for hook in self._before_commit:
                    hook(conn, changes)
        if changes:
            self.publish(changes)

    def group_write(self, work: Callable[[Connection, list[Change]], T]) -> T:
        """A write that may share its transaction with concurrent ones (SQLite).
        `work` may raise StoreError only before it writes anything."""
        if self._group is not None:
            return self._group.run(work)
        with self.write() as (conn, changes):
            return work(conn, changes)

    def publish(self, changes: list[Change]) -> None:
        for listener in self._listeners:
            # Committed already: a listener's failure must not turn the write into an
            # error (SMTP would answer 4xx for stored mail and get it sent again), and a
            # lost hint loses nothing because subscribers re-read the store.
            try:
                listener(changes)
            except Exception:
                log.exception("commit listener %r failed", listener)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
        if self._lock is not None:
            self._lock.close()

    @staticmethod
    def insert_new(conn: Connection, statement: Any, exists: str) -> CursorResult[Any]:
        """Insert a row whose unique key was just checked to be free. Without a store-wide
        write lock (PostgreSQL) a concurrent writer may have taken it since: that is the
        same AlreadyExists, not a raw SQL error."""
        try:
            return conn.execute(statement)
        except IntegrityError:
            raise AlreadyExists(exists) from None


def open_database(url: str, blobs: BlobStore, *, bodies_in_database: bool = True) -> Database:
    """The database for a storage URL: sqlite:///... or postgresql://... (which keeps the
    message bodies too unless `bodies_in_database` is false)."""
    if url.startswith("sqlite"):
        return _sqlite(url, blobs)
    return _postgres(url, blobs, bodies_in_database)


def _sqlite(url: str, blobs: BlobStore) -> Database:
    """The embedded default: one SQLite file in WAL mode, one writer at a time.

    SQLite allows one writer; taking a process-wide lock before BEGIN avoids the
    "database is locked" errors that deferred transactions upgrading to write locks cause,
    while readers proceed in parallel under WAL.

    Several worker processes write the same file, and the process lock does not reach
    across them. So transactions are begun by us, not by the driver (which would begin
    only at the first INSERT, leaving a write's SELECT ... FOR UPDATE outside it, and
    FOR UPDATE means nothing to SQLite): a write begins with BEGIN IMMEDIATE, taking the
    database's write lock first (waiting up to busy_timeout for another process's), so
    what it reads cannot change before it commits (no two processes give out one UID).
    """
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
        dbapi_connection.isolation_level = None  # we send BEGIN ourselves (below)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("postel_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    database = make_url(url).database
    in_memory = not database or database == ":memory:"
    return Database(engine, blobs, WriteLock(None if in_memory else f"{database}.lock"))


def _postgres(url: str, blobs: BlobStore, bodies_in_database: bool) -> Database:
    """PostgreSQL: concurrent writers, serialised per mailbox by row locks."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    engine = create_engine(url, pool_size=10, max_overflow=40, pool_pre_ping=True)
    if bodies_in_database:
        blobs = PgBlobStore(blobs.root, blobs.tmp_dir, engine, shared=blobs.shared)
    database = Database(engine, blobs)
    database.before_commit(send_hints)  # other hosts learn of the commit with it
    return database
