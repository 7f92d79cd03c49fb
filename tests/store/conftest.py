"""Fixtures for the store contract suite: every test runs against SQLite and PostgreSQL.

Stores are built the way the app builds them (``postel.app.open_store``, which runs the
Alembic migrations). PostgreSQL gets one fresh database per pytest run, created on the
server at 127.0.0.1:5432 and dropped at the end; tables are emptied between tests.
If that server cannot be reached the PostgreSQL variants fail: CI has it, and a contract
checked on one backend only is not checked.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from postel.app import open_store
from postel.config import parse_config
from postel.store.sql.pgblobs import PgBlobStore
from postel.store.sql.schema import metadata
from postel.store.sql.store import SqlStore

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DB = "test"
PG_USERS = ("root", "postgres")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _admin_connection() -> tuple[psycopg.Connection[tuple[object, ...]], str]:
    errors = []
    for user in PG_USERS:
        try:
            conn = psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname=PG_ADMIN_DB,
                autocommit=True, connect_timeout=5,
            )
        except psycopg.Error as exc:
            errors.append(f"user {user}: {str(exc).strip()}")
            continue
        return conn, user
    pytest.fail(
        f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (database {PG_ADMIN_DB!r}, "
        f"trust auth) — the store contract must hold on PostgreSQL too. Start the server, "
        f"or deselect these tests with -m 'not postgres'. Errors: {'; '.join(errors)}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this pytest run, dropped at the end."""
    admin, user = _admin_connection()
    name = f"postel_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _empty_pg(url: str) -> None:
    """Empty every table the schema knows, children first (DELETE is much faster than
    TRUNCATE on tables this small)."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:  # one transaction
        for table in reversed(metadata.sorted_tables):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], SqlStore]]:
    """Open stores on this test's backend; each call is another instance on the same data
    (like the CLI and the server sharing one database). All are closed after the test."""
    backend: str = request.param
    url = request.getfixturevalue("pg_url") if backend == "postgres" else ""
    stores: list[SqlStore] = []
    config = parse_config({"data_dir": str(tmp_path / "data"), "storage": {"url": url}})

    def make() -> SqlStore:
        store = open_store(config)
        if isinstance(store.blobs, PgBlobStore):
            # The grace period guards writers on other hosts, whose pins this process
            # cannot see; these tests are one host, whose writers the pins guard exactly
            # (tests/store/test_pg_blobs.py checks the grace on its own).
            store.blobs.grace = 0.0
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    if backend == "postgres":
        _empty_pg(url)


@pytest.fixture
def store(make_store: Callable[[], SqlStore]) -> SqlStore:
    return make_store()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that uses a store runs once per backend.
    if "make_store" in metafunc.fixturenames:
        metafunc.parametrize("make_store", BACKENDS, indirect=True)
