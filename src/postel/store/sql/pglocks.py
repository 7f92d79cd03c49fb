"""Named locks that every host on one PostgreSQL database shares (POP3's maildrop lock,
RFC 1939 4 / RFC 2449 8.1.1 [IN-USE]): session-level advisory locks, held on one
connection per process.

A process that dies, or loses its connection, frees its locks with it: PostgreSQL ends the
session, so a crashed host never leaves a maildrop locked. The other side of that: after a
lost connection this process no longer holds what it took; it forgets its locks, and a
session that still runs may briefly share its maildrop with a new one (POP3 reads and
marks deletions; the expunge at QUIT is by UID, so nothing is lost).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from typing import Any

import psycopg

log = logging.getLogger("postel.store")


def lock_id(key: str) -> int:
    """The advisory lock's 64-bit key for a name (keys of other applications are not ours
    to collide with: a hash, not a counter)."""
    return int.from_bytes(hashlib.sha256(b"postel lock " + key.encode()).digest()[:8],
                          "big", signed=True)


class PgLocks:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._held: set[str] = set()
        self._mutex = threading.Lock()  # one connection: one statement at a time
        self._conn: psycopg.Connection[Any] | None = None

    async def acquire(self, key: str) -> bool:
        if key in self._held:
            return False
        self._held.add(key)  # at once: a second acquire of the key meanwhile is refused
        if not await asyncio.to_thread(self._run, "SELECT pg_try_advisory_lock(%s)", key):
            self._held.discard(key)
            return False
        return True

    def release(self, key: str) -> None:
        if key in self._held:
            self._held.discard(key)
            # Never on the event loop: the connection's mutex may be held by an acquire
            # that is reconnecting (up to connect_timeout), which would stall every session.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._run("SELECT pg_advisory_unlock(%s)", key)
            else:
                loop.run_in_executor(None, self._run, "SELECT pg_advisory_unlock(%s)", key)

    def held(self, key: str) -> bool:
        return key in self._held

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, statement: str, key: str) -> bool:
        with self._mutex:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.conninfo, autocommit=True,
                                                 connect_timeout=10)
                row = self._conn.execute(statement, (lock_id(key),)).fetchone()
                return bool(row and row[0])
            except psycopg.Error as exc:
                # The session (and every lock it held) is gone: forget them, and answer
                # "held" (the safe side: the client retries).
                log.warning("shared locks: database connection lost: %s",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self._held.clear()
                return False
