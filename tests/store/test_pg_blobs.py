"""Bodies in PostgreSQL (store/sql/pgblobs.py): two hosts with their own data directories
on one database read each other's bodies; a body is in the database before the row naming
it commits; duplicates are stored once; a body another host may be naming is spared for the
grace period; a body that does not match its name is never served."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Table, func, select, update

from postel.app import open_store
from postel.config import parse_config
from postel.store.sql import schema as t
from postel.store.sql.pgblobs import CHUNK, PgBlobStore
from postel.store.sql.store import SqlStore
from tests.store.conftest import _empty_pg
from tests.store.helpers import add_user, mailbox_id, message

pytestmark = pytest.mark.postgres


@pytest.fixture
def hosts(pg_url: str, tmp_path: Path) -> Iterator[Callable[[str], SqlStore]]:
    """Stores on one PostgreSQL database, each with its own data directory (a host)."""
    opened: list[SqlStore] = []

    def host(name: str) -> SqlStore:
        config = parse_config({"data_dir": str(tmp_path / name), "storage": {"url": pg_url}})
        store = open_store(config)
        opened.append(store)
        return store

    yield host
    for store in opened:
        store.close()
    _empty_pg(pg_url)


def rows(store: SqlStore, table: Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_body_written_on_one_host_is_read_on_another(
    hosts: Callable[[str], SqlStore],
) -> None:
    a, b = hosts("a"), hosts("b")
    assert isinstance(a.blobs, PgBlobStore)
    alice = add_user(a, "alice@example.test")
    raw, parsed = message(body="x" * (3 * CHUNK + 17))  # several chunks
    blob = a.blobs.put(raw)
    # Durable in the database before any row names it.
    assert rows(a, t.blob_objects) == 1
    assert rows(a, t.blob_chunks) == 4
    a.mail.deliver(blob, parsed, [(alice.id, "INBOX")])

    (meta,) = b.mail.list_messages(mailbox_id(b, alice))
    assert not b.blobs.local_path(meta.blob_sha256).exists()
    assert b.blobs.path(meta.blob_sha256).read_bytes() == raw  # fetched into B's cache
    with b.blobs.open(meta.blob_sha256) as cached:
        assert cached.read() == raw


def test_the_same_content_is_stored_once(hosts: Callable[[str], SqlStore]) -> None:
    a, b = hosts("a"), hosts("b")
    raw, _ = message(body="same")
    assert a.blobs.put(raw) == b.blobs.put(raw)
    assert rows(a, t.blob_objects) == 1
    assert rows(a, t.blob_chunks) == 1


def test_a_recently_installed_body_is_spared_for_the_grace_period(
    hosts: Callable[[str], SqlStore],
) -> None:
    a = hosts("a")
    assert isinstance(a.blobs, PgBlobStore)
    alice = add_user(a, "alice@example.test")
    raw, parsed = message(body="only alice")
    blob = a.blobs.put(raw)
    a.mail.deliver(blob, parsed, [(alice.id, "INBOX")])
    a.directory.remove_account("alice@example.test")
    # Another host may have installed the same body and not committed its row yet.
    assert not a.blobs.local_path(blob.sha256).exists()
    assert rows(a, t.blob_objects) == 1

    bob = add_user(a, "bob@example.test")
    blob = a.blobs.put(raw)
    a.mail.deliver(blob, parsed, [(bob.id, "INBOX")])
    with a.engine.begin() as conn:  # the stamp is older than the grace period now
        conn.execute(update(t.blob_objects).values(
            used_at=func.now() - func.make_interval(0, 0, 0, 0, 1)))
    a.directory.remove_account("bob@example.test")
    assert rows(a, t.blob_objects) == 0
    assert rows(a, t.blob_chunks) == 0


def test_a_body_that_does_not_match_its_name_is_refused(
    hosts: Callable[[str], SqlStore], pg_url: str,
) -> None:
    a, b = hosts("a"), hosts("b")
    raw, _ = message(body="genuine")
    blob = a.blobs.put(raw)
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("UPDATE blob_chunks SET data = %s", (b"forged",))
    with pytest.raises(OSError, match="does not match"):
        b.blobs.path(blob.sha256)
    assert not b.blobs.local_path(blob.sha256).exists()
    assert list(b.blobs.tmp_dir.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        b.blobs.path("0" * 64)
