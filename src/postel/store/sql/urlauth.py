"""`api.UrlAuthKeys` on SQL: the mailbox access keys of URLAUTH (RFC 4467 3)."""

from __future__ import annotations

import secrets

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from postel.store.sql import schema as t
from postel.store.sql.database import Database
from postel.store.sql.rows import now

KEY_BYTES = 32  # RFC 4467 3: at least 128 bits; 256 matches HMAC-SHA256's block strength


class SqlUrlAuthKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    def access_key(self, mailbox_id: int, *, create: bool) -> bytes | None:
        k = t.urlauth_keys
        with self._db.read() as conn:
            found = conn.execute(
                select(k.c.access_key).where(k.c.mailbox_id == mailbox_id)
            ).scalar()
        if found is not None or not create:
            return None if found is None else bytes.fromhex(found)
        fresh = secrets.token_hex(KEY_BYTES)
        try:
            with self._db.write() as (conn, _):
                conn.execute(insert(k).values(
                    mailbox_id=mailbox_id, access_key=fresh, created_at=now()))
        except IntegrityError:
            # Another session made the key first (or the mailbox is gone): read again.
            return self.access_key(mailbox_id, create=False)
        return bytes.fromhex(fresh)

    def reset_keys(self, mailbox_ids: list[int]) -> None:
        k = t.urlauth_keys
        with self._db.write() as (conn, _):
            conn.execute(delete(k).where(k.c.mailbox_id.in_(mailbox_ids)))
