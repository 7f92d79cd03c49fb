"""DKIM signing keys per domain (RFC 6376), kept in the database so every host signs alike."""

from __future__ import annotations

from sqlalchemy import and_, insert, select
from sqlalchemy.exc import IntegrityError

from postel.store.errors import AlreadyExists
from postel.store.sql import schema as t
from postel.store.sql.database import Database
from postel.store.sql.rows import now


class SqlDkimKeys:
    """`api.DkimKeys` on SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_key(self, domain: str, selector: str, algorithm: str, private_key: str) -> None:
        try:
            with self._db.write() as (conn, _):
                conn.execute(
                    insert(t.dkim_keys).values(
                        domain=domain, selector=selector, algorithm=algorithm,
                        private_key=private_key, active=True, created_at=now(),
                    )
                )
        except IntegrityError:
            raise AlreadyExists(f"a DKIM key {selector} for {domain} exists already") from None

    def signing_keys(self, domain: str) -> list[tuple[str, str, str]]:
        """(selector, algorithm, private key PEM) of the newest active key of `domain` per
        algorithm: mail is signed with RSA and Ed25519 both when both exist (RFC 8463 5
        advises the pair, as not every verifier knows Ed25519)."""
        k = t.dkim_keys
        with self._db.read() as conn:
            rows = conn.execute(
                select(k.c.selector, k.c.algorithm, k.c.private_key)
                .where(and_(k.c.domain == domain.lower(), k.c.active))
                .order_by(k.c.created_at.desc(), k.c.id.desc())
            ).all()
        newest: dict[str, tuple[str, str, str]] = {}
        for row in rows:
            newest.setdefault(row.algorithm, (row.selector, row.algorithm, row.private_key))
        return list(newest.values())

    def keys(self) -> list[tuple[str, str, str, bool]]:
        """(domain, selector, algorithm, active) of every key."""
        k = t.dkim_keys
        with self._db.read() as conn:
            rows = conn.execute(
                select(k.c.domain, k.c.selector, k.c.algorithm, k.c.active)
                .order_by(k.c.domain, k.c.id)
            ).all()
        return [(r.domain, r.selector, r.algorithm, bool(r.active)) for r in rows]
