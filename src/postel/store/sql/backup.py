"""`api.Backups` on SQL: `postel backup DIR` and `postel restore DIR`.

A backup is a logical copy of every table at one snapshot, plus the blob files those rows
name, plus a manifest with the SHA-256 of every file. One code path for both backends:
the rows are read inside one transaction that sees a single snapshot (PostgreSQL:
REPEATABLE READ; SQLite: an explicit BEGIN, after which WAL readers see the database as of
their first read), so the copy is consistent while the server keeps writing. Blobs are
immutable and fsynced before any row names them, so every blob a snapshot row names is
on disk in full; they are copied after the rows and checked against their names.

Layout of DIR:
    manifest.json        format, schema revision, row counts, {path: sha256} of every file
    tables/<name>.jsonl  one JSON array per row, columns in schema order
    blobs/ab/<sha256>    the message bodies

The manifest is written last and fsynced: a directory without one is not a backup.
Restore checks every hash first and refuses on any difference, then installs the blobs
(fsynced, as delivery does), then inserts every row in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Integer, func, insert, select, text
from sqlalchemy.sql.schema import Table

from postel.store.blobs import fsync_dir
from postel.store.integrity import BackupError, BackupSummary, Progress, no_progress
from postel.store.sql import schema as t
from postel.store.sql.database import Database

FORMAT = 1
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_BATCH = 500  # rows per INSERT on restore


def _encode(value: Any) -> Any:
    # JSON has no timestamps or octets: tag them (no column holds a JSON object itself).
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, bytes | memoryview):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        return base64.b64decode(value["b"])
    return value


def _fsynced_write(path: Path, data: bytes) -> str:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class SqlBackups:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- backup -------------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        engine = self._db.engine
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            ) as conn, conn.begin():
                yield conn
            return
        with engine.connect() as conn, conn.begin() as transaction:
            # The store sends BEGIN itself for every transaction on SQLite (the driver
            # would start one only before a write: store/sql/database.py), so every
            # SELECT below reads the one WAL snapshot taken at the first of them.
            yield conn
            transaction.rollback()

    def backup(self, target: Path, progress: Progress = no_progress) -> BackupSummary:
        if target.exists() and any(target.iterdir()):
            raise BackupError(f"{target} is not empty")
        (target / "tables").mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        counts: dict[str, int] = {}
        blobs: set[str] = set()
        with self._snapshot() as conn:
            revision = _revision(conn)
            tables = t.row_tables()  # bodies travel as blob files
            for done, table in enumerate(tables, 1):
                progress("tables", done, len(tables))
                lines = []
                for row in conn.execute(select(table)):
                    lines.append(json.dumps([_encode(v) for v in row], ensure_ascii=False))
                    if table is t.messages or table is t.outbound_queue:
                        blobs.add(row.blob_sha256)
                counts[table.name] = len(lines)
                name = f"tables/{table.name}.jsonl"
                data = ("\n".join(lines) + "\n" if lines else "").encode()
                files[name] = _fsynced_write(target / name, data)
        fsync_dir(target / "tables")
        size = self._copy_blobs(sorted(blobs), target, files, progress)
        manifest = {"format": FORMAT, "revision": revision, "tables": counts,
                    "columns": {tb.name: [c.name for c in tb.columns] for tb in tables},
                    "files": files}
        _fsynced_write(target / MANIFEST, json.dumps(manifest, indent=1).encode())
        fsync_dir(target)
        return BackupSummary(counts, len(blobs), size, revision)

    def _copy_blobs(self, names: list[str], target: Path, files: dict[str, str],
                    progress: Progress) -> int:
        size = 0
        shards: set[Path] = set()
        for done, name in enumerate(names, 1):
            progress("blobs", done, len(names))
            rel = f"blobs/{name[:2]}/{name}"
            out_path = target / rel
            out_path.parent.mkdir(parents=True, exist_ok=True)
            shards.add(out_path.parent)
            digest = hashlib.sha256()
            try:
                source = self._db.blobs.open(name)
            except FileNotFoundError:
                raise BackupError(f"blob {name} is named by a row but missing "
                                  "(run `postel check`)") from None
            with source, out_path.open("wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != name:
                raise BackupError(f"blob {name} does not match its name (damaged on disk)")
            files[rel] = name
        for shard in shards:
            fsync_dir(shard)
        if shards:
            fsync_dir(target / "blobs")
        return size

    # -- restore ------------------------------------------------------------------------

    def restore(self, source: Path, progress: Progress = no_progress) -> BackupSummary:
        manifest = _verified_manifest(source, progress)
        with self._db.read() as conn:
            revision = _revision(conn)
            used = [tb.name for tb in (t.domains, t.accounts, t.messages, t.outbound_queue)
                    if conn.execute(select(func.count()).select_from(tb)).scalar()]
        if manifest["revision"] != revision:
            raise BackupError(f"the backup is of schema revision {manifest['revision']}, "
                              f"this store is at {revision}: restore with the same version")
        if used:
            raise BackupError(f"the target store is not empty ({', '.join(used)}): "
                              "restore onto a new data directory and database")
        # Bodies first, durable, then the rows that name them (as delivery does).
        blob_files = sorted(p for p in manifest["files"] if p.startswith("blobs/"))
        size = 0
        for done, rel in enumerate(blob_files, 1):
            progress("blobs", done, len(blob_files))
            with (source / rel).open("rb") as blob, self._db.blobs.writer() as writer:
                while chunk := blob.read(_CHUNK):
                    writer.write(chunk)
                writer.commit()
                size += writer.size
        tables = t.row_tables()  # bodies travel as blob files
        with self._db.write() as (conn, _changes):
            for table in reversed(tables):  # whatever the migrations seeded (counters)
                conn.execute(table.delete())
            for done, table in enumerate(tables, 1):
                progress("tables", done, len(tables))
                self._insert_rows(conn, table, source, manifest)
            if conn.dialect.name == "postgresql":
                _reset_sequences(conn, tables)
        for rel in blob_files:
            self._db.blobs.release(Path(rel).name)
        return BackupSummary(manifest["tables"], len(blob_files), size, revision)

    def _insert_rows(self, conn: Connection, table: Table, source: Path,
                     manifest: dict[str, Any]) -> None:
        columns: list[str] = manifest["columns"].get(table.name, [])
        path = source / f"tables/{table.name}.jsonl"
        if not columns or not path.exists():
            return  # a table newer than the backup: the migration's defaults stand
        known = {c.name for c in table.columns}
        batch: list[dict[str, Any]] = []
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                values = json.loads(line)
                batch.append({c: _decode(v) for c, v in zip(columns, values, strict=True)
                              if c in known})
                if len(batch) >= _BATCH:
                    conn.execute(insert(table), batch)
                    batch = []
        if batch:
            conn.execute(insert(table), batch)


def _revision(conn: Connection) -> str:
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(str(r) for r in rows))


def _verified_manifest(source: Path, progress: Progress) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{source} has no {MANIFEST}: not a (complete) backup") from None
    except ValueError as exc:
        raise BackupError(f"{source / MANIFEST} is damaged: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is a backup of format {manifest.get('format')!r}, "
                          f"this version reads format {FORMAT}")
    files: dict[str, str] = manifest["files"]
    for done, (rel, expected) in enumerate(sorted(files.items()), 1):
        progress("verify", done, len(files))
        path = source / rel
        if ".." in Path(rel).parts or not path.is_file():
            raise BackupError(f"{rel} is listed in the manifest but missing")
        if _hash_file(path) != expected:
            raise BackupError(f"{rel} does not match the SHA-256 in the manifest: "
                              "the backup was changed or damaged; refusing to restore")
    return manifest


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    # Rows came with their ids; move each serial's sequence past them, or the next insert
    # would collide with a restored row.
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        if keys[0].autoincrement not in (True, "auto") or keys[0].foreign_keys:
            continue
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"),
            {"t": table.name, "c": keys[0].name},
        ).scalar()
        if sequence:
            conn.execute(
                text(f'SELECT setval(:s, COALESCE((SELECT MAX("{keys[0].name}") '
                     f'FROM "{table.name}"), 0) + 1, false)'),
                {"s": sequence},
            )


__all__ = ["SqlBackups"]
