"""Copy every row of one store into another: `postel migrate --to postgresql://...`.

Why our own copy rather than pgloader or a dump: the source is SQLite, every id must be
kept exactly (UIDs, UIDVALIDITY and MODSEQs are the clients' synchronisation state, so a
changed one means every client downloads the mailbox again), the copy must resume after an
interruption, and the result is verified table by table. The schema's own metadata already
knows every table and the order foreign keys need, so the copy is generic: a table added by
a later migration is copied without changes here.

Resuming: rows are copied in primary-key order, a batch per transaction, and inserted with
ON CONFLICT DO NOTHING (for rows keyed by name, such as counters, DO UPDATE: the source
wins), so a batch that committed before the interruption is skipped, not duplicated; for a
single integer key the copy starts after the target's largest key.
Bodies are copied into the database too (`[storage] bodies = "database"`, the default, so
every host of a cluster can read them) from the data directory's blob files, which stay as
this host's cache; the copy checks that every body a row names is there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Engine, Integer, Table, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from postel.store.sql.pgblobs import PgBlobStore
from postel.store.sql.schema import metadata, row_tables

# Progress: (table, rows done, rows in all).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TableCopy:
    name: str
    source_rows: int
    target_rows: int
    source_digest: str
    target_digest: str

    @property
    def matches(self) -> bool:
        return (self.source_rows == self.target_rows
                and self.source_digest == self.target_digest)


class CopyRefused(Exception):
    """The target cannot take this copy (not PostgreSQL, or holds other data)."""


def tables() -> list[Table]:
    """Every table of rows, parents before children (the bodies' tables are filled from
    the blob files by copy_bodies)."""
    return row_tables()


def _key(table: Table) -> list[Column[Any]]:
    return list(table.primary_key.columns)


def _int_key(table: Table) -> Column[Any] | None:
    key = _key(table)
    if len(key) == 1 and isinstance(key[0].type, Integer):
        return key[0]
    return None


def row_count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def target_is_empty(target: Engine) -> bool:
    """No domain and no account: a new database (migrations seed rows of their own, such
    as the UIDVALIDITY counter, so "every table empty" would never hold)."""
    return all(row_count(target, metadata.tables[name]) == 0
               for name in ("domains", "accounts"))


def copy_table(
    source: Engine, target: Engine, table: Table, *, batch: int, progress: Progress
) -> None:
    """Copy `table`'s rows that the target lacks, `batch` rows per target transaction."""
    if target.dialect.name != "postgresql":
        raise CopyRefused("the target must be PostgreSQL")
    total = row_count(source, table)
    int_key = _int_key(table)
    done = row_count(target, table)
    progress(table.name, done, total)
    query = select(table).order_by(*_key(table))
    if int_key is not None:
        with target.connect() as conn:
            last = conn.execute(select(func.max(int_key))).scalar()
        if last is not None:
            query = query.where(int_key > last)
    with source.connect() as src:
        # Streamed: a mailbox of 100,000 messages is never in memory at once.
        result = src.execution_options(yield_per=batch).execute(query)
        for rows in result.partitions(batch):
            values = [dict(row._mapping) for row in rows]
            with target.begin() as dst:
                dst.execute(_insert(table, int_key is not None), values)
            done += len(values)
            progress(table.name, min(done, total), total)


def _insert(table: Table, ordered_by_int_key: bool) -> Any:
    statement = pg_insert(table)
    others = [c for c in table.c if not c.primary_key]
    if ordered_by_int_key or not others:
        # A row already there came from an earlier batch of this copy: the same row.
        return statement.on_conflict_do_nothing()
    # Keyed by name (counters, preferences): a migration may have seeded the row with its
    # own value (the UIDVALIDITY counter starts at 0), and the source's value must win, or
    # a new mailbox could be given a UIDVALIDITY already handed out.
    return statement.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={c.name: statement.excluded[c.name] for c in others},
    )


def reset_sequences(target: Engine) -> None:
    """PostgreSQL hands out ids from sequences that the copy bypassed: move each past the
    largest copied id, or the first new row would collide with a copied one."""
    with target.begin() as conn:
        for table in tables():
            key = _int_key(table)
            if key is None or not key.autoincrement:
                continue
            sequence = conn.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": key.name},
            ).scalar()
            if sequence is None:
                continue
            conn.execute(
                text(f'SELECT setval(:sequence, COALESCE((SELECT MAX("{key.name}") '
                     f'FROM "{table.name}"), 1), '
                     f'(SELECT MAX("{key.name}") FROM "{table.name}") IS NOT NULL)'),
                {"sequence": sequence},
            )


def _canonical(value: Any) -> Any:
    # The same row read from SQLite and from PostgreSQL through the same schema types gives
    # the same Python values, except for these representations.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def _rows(engine: Engine, table: Table) -> Iterator[list[Any]]:
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(
            select(table).order_by(*_key(table)))
        for row in result:
            yield [_canonical(value) for value in row]


def digest(engine: Engine, table: Table) -> tuple[int, str]:
    """Row count and SHA-256 of every row in key order."""
    hasher = hashlib.sha256()
    count = 0
    for row in _rows(engine, table):
        hasher.update(json.dumps(row, default=str, ensure_ascii=False).encode())
        hasher.update(b"\n")
        count += 1
    return count, hasher.hexdigest()


def verify(source: Engine, target: Engine, progress: Progress) -> list[TableCopy]:
    reports = []
    all_tables = tables()
    for index, table in enumerate(all_tables):
        source_rows, source_digest = digest(source, table)
        target_rows, target_digest = digest(target, table)
        reports.append(TableCopy(table.name, source_rows, target_rows, source_digest,
                                 target_digest))
        progress("verify", index + 1, len(all_tables))
    return reports


def referenced_blobs(engine: Engine) -> set[str]:
    """The sha256 of every body a row names, for checking that the blob files are there."""
    names: set[str] = set()
    with engine.connect() as conn:
        for name in ("messages", "outbound_queue"):
            column = metadata.tables[name].c.blob_sha256
            names.update(sha for (sha,) in conn.execute(select(column).distinct()))
    return names


def copy_bodies(names: set[str], blobs: PgBlobStore, progress: Progress) -> list[str]:
    """Put every named body into the target's database (`[storage] bodies = "database"`),
    from the blob directory the installation keeps; returns the names found in neither."""
    missing = []
    for done, sha in enumerate(sorted(names), 1):
        if blobs.local_path(sha).is_file():
            blobs.upload(sha)  # stamps and returns at once if the body is there already
        elif not blobs.exists(sha):
            missing.append(sha)
        progress("message bodies", done, len(names))
    return missing
