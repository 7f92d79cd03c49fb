"""The Alembic migrations build exactly the schema the code queries (schema.py)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from postel.store.sql.migrate import upgrade
from postel.store.sql.schema import metadata
from postel.store.sql.store import SqlStore


def test_migrations_match_schema(store: SqlStore) -> None:
    # A table, column, index or type in schema.py without a migration (or the reverse)
    # shows up here. SQLite reflects server defaults too loosely to compare them.
    compare_defaults = store.engine.dialect.name == "postgresql"
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": compare_defaults}
        )
        differences = compare_metadata(context, metadata)
    # The webmail's full-text index is backend-specific and made by migration 0005 only:
    # SQLite's FTS5 table with its shadow tables, PostgreSQL's GIN expression index.
    assert [d for d in differences if not _is_search_index(d)] == []


def _is_search_index(difference: object) -> bool:
    if not isinstance(difference, tuple):
        return False
    kind, item = difference[0], difference[1]
    return ((kind == "remove_table" and item.name.startswith("webmail_fts"))
            or (kind == "remove_index" and item.name == "ix_webmail_text_document"))


def test_migrations_are_idempotent(store: SqlStore) -> None:
    # Every start runs them; a second run on an up-to-date database changes nothing.
    store.directory.add_domain("example.test")
    upgrade(store.engine)
    upgrade(store.engine)
    assert [d.name for d in store.directory.list_domains()] == ["example.test"]
