"""Group commit: concurrent writes share one SQLite transaction and one WAL fsync.

SQLite has one writer, and with synchronous=FULL every commit waits for an fsync. Twenty
SMTP clients delivering at once would queue on the write lock and pay twenty fsyncs in a
row. Instead, each writer queues a job; whoever holds the lock runs every job queued so
far in one transaction and commits once, and the others find their job done when they get
the lock. No thread is added, and a caller still returns only after its job is committed.

A job may raise StoreError (an expected refusal, such as a missing mailbox) only before it
writes anything: the transaction goes on for the others. Any other error rolls the batch
back; then each of its jobs runs again alone, so only the job that fails gets its error
and nothing is half-stored (issue 15 item 4: one poison message failed its neighbours).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from postel.store.model import Change

T = TypeVar("T")

Work = Callable[[Connection, list[Change]], T]


@dataclass
class _Job(Generic[T]):
    work: Work[T]
    changes: list[Change] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None
    done: bool = False


class GroupCommitter:
    def __init__(
        self,
        engine: Engine,
        write_lock: AbstractContextManager[Any],
        expected: tuple[type[BaseException], ...],
        publish: Callable[[list[Change]], None],
    ) -> None:
        self._engine = engine
        self._write_lock = write_lock
        self._expected = expected
        self._publish = publish
        self._mutex = threading.Lock()
        self._pending: list[_Job[Any]] = []

    def run(self, work: Work[T]) -> T:
        job: _Job[T] = _Job(work)
        with self._mutex:
            self._pending.append(job)
        batch: list[_Job[Any]] = []
        with self._write_lock:
            if not job.done:
                with self._mutex:
                    batch, self._pending = self._pending, []
                self._commit(batch)
        # Publish outside the lock; the leader publishes for its whole batch.
        committed = [change for done in batch if done.error is None for change in done.changes]
        if committed:
            self._publish(committed)
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def _commit(self, batch: list[_Job[Any]]) -> None:
        if not self._transaction(batch) and len(batch) > 1:
            for job in batch:
                job.error, job.result = None, None
                self._transaction([job])
        for job in batch:
            job.done = True

    def _transaction(self, batch: list[_Job[Any]]) -> bool:
        """Run `batch` in one transaction; False (every job failed) if it rolled back."""
        try:
            with self._engine.begin() as conn:
                for job in batch:
                    try:
                        job.result = job.work(conn, job.changes)
                    except self._expected as exc:
                        job.error = exc
        except BaseException as exc:  # the batch is rolled back: every job failed
            for job in batch:
                if job.error is None:
                    job.error = exc
                job.changes.clear()
            return False
        return True
