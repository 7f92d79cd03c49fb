"""`SqlStore`: the SQL parts over one database, composed into one `api.Store`.

The parts are siblings, not a chain of mixins: each holds the same Database and knows
nothing of the others. SQLite and PostgreSQL differ only in the Database's set-up
(`database.open_database`), so every rule lives once, in the parts.
"""

from __future__ import annotations

from sqlalchemy import Engine

from postel.store.blobs import BlobStore
from postel.store.sql.authfailures import SqlAuthFailures
from postel.store.sql.backup import SqlBackups
from postel.store.sql.check import SqlIntegrity
from postel.store.sql.database import Database, Listener, open_database
from postel.store.sql.directory import SqlDirectory
from postel.store.sql.dkim import SqlDkimKeys
from postel.store.sql.mail import SqlMailboxes
from postel.store.sql.metadata import SqlMetadata
from postel.store.sql.queue import SqlQueue
from postel.store.sql.urlauth import SqlUrlAuthKeys
from postel.store.sql.web import SqlWebState
from postel.store.sql.webmail import SqlWebmail


class SqlStore:
    """Every part of the store on one SQL database (satisfies `api.Store`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.blobs: BlobStore = db.blobs
        self.mail = SqlMailboxes(db)
        self.directory = SqlDirectory(db)
        self.queue = SqlQueue(db)
        self.dkim = SqlDkimKeys(db)
        self.web = SqlWebState(db)
        self.webmail = SqlWebmail(db, self.mail)
        self.metadata = SqlMetadata(db)
        self.urlauth = SqlUrlAuthKeys(db)
        self.auth_failures = SqlAuthFailures(db)
        self.integrity = SqlIntegrity(db)
        self.backups = SqlBackups(db)

    @property
    def engine(self) -> Engine:
        """For migrations and SQL-level tests; protocol code never needs it."""
        return self.db.engine

    def on_commit(self, listener: Listener) -> None:
        """Register a callback that receives the changes of every committed write."""
        self.db.on_commit(listener)

    def close(self) -> None:
        self.db.close()


def open_store(url: str, blobs: BlobStore, *, bodies_in_database: bool = True) -> SqlStore:
    """The store for a storage URL (sqlite:///... or postgresql://...)."""
    return SqlStore(open_database(url, blobs, bodies_in_database=bodies_in_database))


__all__ = ["SqlStore", "open_store"]
