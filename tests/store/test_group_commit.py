"""Group commit on SQLite: concurrent deliveries share transactions, each keeps its result,
and one job's refusal or failure is contained as documented."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select, text

from postel.app import open_store
from postel.config import parse_config
from postel.mail.mime import parse_message_bytes
from postel.store.errors import NotFound
from postel.store.model import Change
from postel.store.sql import schema as t
from postel.store.sql.rows import now
from postel.store.sql.store import SqlStore


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    opened = open_store(parse_config({"data_dir": str(tmp_path)}))
    assert isinstance(opened, SqlStore)
    opened.directory.add_domain("example.test")
    opened.directory.add_account("alice@example.test", "x")
    return opened


def test_concurrent_deliveries_each_get_their_own_uid(store: SqlStore) -> None:
    account = store.directory.get_account("alice@example.test")
    assert account is not None
    blob = store.blobs.put(b"Subject: x\r\n\r\nbody\r\n")
    parsed = parse_message_bytes(b"Subject: x\r\n\r\nbody\r\n")
    published: list[Change] = []
    store.on_commit(published.extend)
    uids: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def deliver() -> None:
        start.wait()
        for _ in range(20):
            delivered = store.mail.deliver(blob, parsed, [(account.id, "INBOX")])
            with lock:
                uids.append(delivered[0].uid)

    threads = [threading.Thread(target=deliver) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(uids) == list(range(1, 321))
    assert len(published) == 320  # every delivery announced exactly once


def test_a_refusal_before_writing_does_not_spoil_the_batch(store: SqlStore) -> None:
    errors: list[BaseException] = []
    results: list[int] = []

    def refuse(conn: Connection, changes: list[Change]) -> int:
        raise NotFound("no such mailbox")

    def write(conn: Connection, changes: list[Change]) -> int:
        conn.execute(insert(t.domains).values(name="other.test", created_at=now()))
        return 7

    # Queue both jobs, then let one leader run them in a single transaction.
    with store.db._lock:
        threads = [
            threading.Thread(target=lambda: _run(store, refuse, results, errors)),
            threading.Thread(target=lambda: _run(store, write, results, errors)),
        ]
        for thread in threads:
            thread.start()
        while len(store.db._group._pending) < 2:
            pass
    for thread in threads:
        thread.join()
    assert results == [7]
    assert len(errors) == 1 and isinstance(errors[0], NotFound)
    assert store.directory.get_domain("other.test") is not None


def test_an_unexpected_error_fails_only_its_own_job(store: SqlStore) -> None:
    # The batch is rolled back, then each job runs alone (issue 15 item 4): the good
    # write is stored, the broken one fails, nothing is half-stored.
    errors: list[BaseException] = []
    results: list[int] = []

    def write(conn: Connection, changes: list[Change]) -> int:
        conn.execute(insert(t.domains).values(name="retried.test", created_at=now()))
        return 1

    def broken(conn: Connection, changes: list[Change]) -> int:
        conn.execute(text("SELECT * FROM no_such_table"))
        return 2

    with store.db._lock:
        threads = [
            threading.Thread(target=lambda: _run(store, write, results, errors)),
            threading.Thread(target=lambda: _run(store, broken, results, errors)),
        ]
        for thread in threads:
            thread.start()
        while len(store.db._group._pending) < 2:
            pass
    for thread in threads:
        thread.join()
    assert results == [1] and len(errors) == 1
    with store.engine.connect() as conn:
        names = conn.execute(select(t.domains.c.name)).scalars().all()
    assert names.count("retried.test") == 1


def _run(
    store: SqlStore,
    work: object,
    results: list[int],
    errors: list[BaseException],
) -> None:
    try:
        results.append(store.db.group_write(work))  # type: ignore[arg-type]
    except Exception as exc:
        errors.append(exc)
