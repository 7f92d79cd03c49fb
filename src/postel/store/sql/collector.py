"""The blob collector: bodies that no message row and no queue row names are deleted.

Blobs are content-addressed and shared, so a candidate (a body of a removed account) may
still be named by another account's message or by a queued row, or be just written by a
delivery of the same content whose row has not committed yet. BlobStore.collect handles
the last case with its pins; the query here handles the first two.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, union

from postel.store.sql import schema as t
from postel.store.sql.database import Database

_BATCH = 500  # names per IN (...) query


def collect_blobs(db: Database, candidates: Collection[str]) -> list[str]:
    """Delete the candidates nothing names any more; returns the deleted names."""
    if not candidates:
        return []

    def referenced(names: list[str]) -> set[str]:
        found: set[str] = set()
        with db.read() as conn:
            for i in range(0, len(names), _BATCH):
                batch = names[i : i + _BATCH]
                found.update(
                    conn.execute(
                        union(
                            select(t.messages.c.blob_sha256)
                            .where(t.messages.c.blob_sha256.in_(batch)),
                            select(t.outbound_queue.c.blob_sha256)
                            .where(t.outbound_queue.c.blob_sha256.in_(batch)),
                        )
                    ).scalars()
                )
        return found

    return db.blobs.collect(candidates, referenced)
