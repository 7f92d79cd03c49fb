"""Every Alembic revision upgrades a populated database without losing anything.

Walking the chain from the base, the database is upgraded one revision at a time; right
after each upgrade the revision's fixture (tests/fixtures/migrations/<revision>.py) adds
representative rows of that schema. Each upgrade must keep every row and every value the
database held before it, and give the new columns their documented defaults (the
fixture's EXPECT). Revisions are discovered from the Alembic script directory, so one
appended later is tested too; without a fixture it is upgraded over the earlier ones and
the test says so. SQLite and PostgreSQL.
"""

from __future__ import annotations

import importlib.util
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Connection, Engine, MetaData, create_engine, insert, inspect, select
from sqlalchemy.exc import SAWarning

from postel.store.sql.migrate import MIGRATIONS
from tests.store.conftest import PG_HOST, PG_PORT, _admin_connection

FIXTURES = Path(__file__).parent.parent / "fixtures" / "migrations"
Snapshot = dict[str, list[dict[str, Any]]]


def alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def revisions() -> list[str]:
    """Base first, head last (a single chain: the lead merges branches into one)."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, f"migrations have several heads {heads}: renumber into one chain"
    return [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]


def fixture(revision: str) -> ModuleType | None:
    path = FIXTURES / f"{revision}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"migration_fixture_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def reflect(conn: Connection) -> MetaData:
    meta = MetaData()
    # Alembic's own table and SQLite's FTS5 shadow tables are not data we keep.
    names = [n for n in inspect(conn).get_table_names()
             if n != "alembic_version" and not n.startswith("webmail_fts")]
    with warnings.catch_warnings():  # expression indexes (webmail sorting) do not reflect
        warnings.simplefilter("ignore", SAWarning)
        meta.reflect(conn, only=names)
    return meta


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as conn:
        meta = reflect(conn)
        return {name: [dict(row._mapping) for row in conn.execute(select(table))]
                for name, table in meta.tables.items()}


def populate(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    with engine.begin() as conn:
        meta = reflect(conn)
        for name in [t.name for t in meta.sorted_tables]:  # parents first
            if rows.get(name):
                conn.execute(insert(meta.tables[name]), rows[name])


def matches(row: dict[str, Any], partial: dict[str, Any]) -> bool:
    return all(row.get(key) == value for key, value in partial.items())


def key(row: dict[str, Any]) -> str:
    return repr(sorted(row.items()))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no tables at all (not even Alembic's)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'upgrade.db'}")
        yield engine
        engine.dispose()
        return
    admin, user = _admin_connection()
    name = f"postel_mig_{secrets.token_hex(6)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        engine = create_engine(f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}")
        try:
            yield engine
        finally:
            engine.dispose()
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))


def test_every_revision_upgrades_a_populated_database(empty_engine: Engine) -> None:
    chain = revisions()
    without = [r for r in chain if fixture(r) is None]
    if without:
        # Not a failure, so merging a new revision never blocks on this file; but say it.
        message = (f"migration revisions without a fixture in {FIXTURES}: {', '.join(without)}"
                   " (upgraded over the earlier fixtures only; add one)")
        print(message)
        warnings.warn(message, stacklevel=1)
    before: Snapshot = {}
    for revision in chain:
        upgrade(empty_engine, revision)
        after = snapshot(empty_engine)
        for table, rows in before.items():
            assert table in after, f"revision {revision} dropped table {table}"
            kept = {key({c: r[c] for c in rows[0]}) for r in after[table]} if rows else set()
            for row in rows:
                assert key(row) in kept, f"revision {revision} lost or changed {table} row {row}"
        module = fixture(revision)
        if module is not None:
            for table, partials in getattr(module, "EXPECT", {}).items():
                for partial in partials:
                    assert any(matches(r, partial) for r in after.get(table, [])), (
                        f"after revision {revision}, {table} has no row like {partial}: "
                        f"{after.get(table)}")
            for table, partials in getattr(module, "ABSENT", {}).items():
                for partial in partials:
                    assert not any(matches(r, partial) for r in after.get(table, [])), (
                        f"after revision {revision}, {table} should have no row {partial}")
            populate(empty_engine, module.ROWS)
            after = snapshot(empty_engine)
            for table, rows in module.ROWS.items():
                assert len(after[table]) >= len(rows), table
        before = after
