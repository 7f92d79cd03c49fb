"""Plain DB-API statements for the hot reads, run on SQLAlchemy's own connection (same
transaction, same pool), skipping its per-row Python: a SELECT of a 100,000-message
mailbox's index builds tuples in the driver's C code instead of one Row object each.

Statements are written once with "?" placeholders; the PostgreSQL form ("%s") is made
once per statement and kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

_PYFORMAT: dict[str, str] = {}


def fetch_all(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of one SELECT as plain tuples. `sql` must not contain "%" (psycopg's
    placeholder character) and uses "?" for each parameter."""
    text = sql
    if conn.dialect.paramstyle != "qmark":
        text = _PYFORMAT.get(sql) or _PYFORMAT.setdefault(sql, sql.replace("?", "%s"))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(text, tuple(params))
        return list(cursor.fetchall())
    finally:
        cursor.close()
