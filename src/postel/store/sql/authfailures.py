"""`api.AuthFailures` on SQL: the failed logins the shared limiter counts (issue 15)."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select

from postel.store.sql import schema as t
from postel.store.sql.database import Database


class SqlAuthFailures:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, scope: str, key: str, at: float, *, since: float) -> int:
        f = t.auth_failures
        with self._db.write() as (conn, _):
            # The key's expired rows go as its new one comes: a key's rows stay bounded.
            conn.execute(delete(f).where(f.c.scope == scope, f.c.key == key, f.c.at < since))
            conn.execute(insert(f).values(scope=scope, key=key, at=at))
            return int(conn.execute(
                select(func.count()).where(f.c.scope == scope, f.c.key == key)
            ).scalar_one())

    def count(self, scope: str, key: str, *, since: float) -> int:
        f = t.auth_failures
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).where(
                f.c.scope == scope, f.c.key == key, f.c.at >= since)).scalar_one())

    def clear(self, scope: str, key: str) -> int:
        f = t.auth_failures
        with self._db.write() as (conn, _):
            return int(conn.execute(
                delete(f).where(f.c.scope == scope, f.c.key == key)).rowcount or 0)

    def clear_prefix(self, scope: str, prefix: str) -> int:
        f = t.auth_failures
        with self._db.write() as (conn, _):
            return int(conn.execute(delete(f).where(
                f.c.scope == scope, f.c.key.startswith(prefix, autoescape=True))).rowcount or 0)

    def windows(self, *, since: float) -> list[tuple[str, str, list[float]]]:
        f = t.auth_failures
        with self._db.read() as conn:
            rows = conn.execute(
                select(f.c.scope, f.c.key, f.c.at).where(f.c.at >= since)
                .order_by(f.c.scope, f.c.key, f.c.at)
            ).all()
        out: dict[tuple[str, str], list[float]] = {}
        for scope, key, at in rows:
            out.setdefault((scope, key), []).append(float(at))
        return [(scope, key, times) for (scope, key), times in out.items()]

    def prune(self, *, before: float) -> int:
        f = t.auth_failures
        with self._db.write() as (conn, _):
            return int(conn.execute(delete(f).where(f.c.at < before)).rowcount or 0)
