"""The store's plumbing: errors, transactions, commit listeners and group commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
)
from sqlalchemy.exc import IntegrityError

from postel.store.blobs import BlobStore
from postel.store.model import (
    Change,
    Flags,
)

log = logging.getLogger("postel.store")


class StoreError(Exception):
    """A request the store refuses, with a message fit for an operator or a user."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


NO_FLAGS = Flags()
T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _domain_of(key: str) -> str:
    return key.rpartition("@")[2]


class StoreBase:
    """Plumbing every part of the store shares: transactions, commit listeners."""

    def __init__(self, engine: Engine, blobs: BlobStore) -> None:
        self.engine = engine
        self.blobs = blobs
        self._listeners: list[Callable[[Sequence[Change]], None]] = []

    # -- plumbing ---------------------------------------------------------------------

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Register a callback that receives the changes of every committed write."""
        self._listeners.append(listener)

    def _write_lock(self) -> AbstractContextManager[Any]:
        return nullcontext()

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, list[Change]]]:
        """A write transaction; the changes appended to the list are published after commit."""
        changes: list[Change] = []
        with self._write_lock(), self.engine.begin() as conn:
            yield conn, changes
        if changes:
            self._publish(changes)

    def _group_write(self, work: Callable[[Connection, list[Change]], T]) -> T:
        """A write that may share its transaction with concurrent ones (see SqliteStore).
        `work` may raise StoreError only before it writes anything."""
        with self._write() as (conn, changes):
            return work(conn, changes)

    def _publish(self, changes: list[Change]) -> None:
        for listener in self._listeners:
            # Committed already: a listener's failure must not turn the write into an
            # error (SMTP would answer 4xx for stored mail and get it sent again), and a
            # lost hint loses nothing because subscribers re-read the store.
            try:
                listener(changes)
            except Exception:
                log.exception("commit listener %r failed", listener)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def _insert_new(conn: Connection, statement: Any, exists: str) -> CursorResult[Any]:
        """Insert a row whose unique key was just checked to be free. Without a store-wide
        write lock (PostgreSQL) a concurrent writer may have taken it since: that is the
        same AlreadyExists, not a raw SQL error."""
        try:
            return conn.execute(statement)
        except IntegrityError:
            raise AlreadyExists(exists) from None
