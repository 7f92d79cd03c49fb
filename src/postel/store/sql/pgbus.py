"""Change hints between hosts on one PostgreSQL database: LISTEN/NOTIFY (issue 14).

A write's hints ride its own transaction (`pg_notify` just before COMMIT), so PostgreSQL
delivers them to every listening host exactly when, and only if, the write commits. Each
host runs one listener connection in a thread and hands what arrives to its local bus
(`store/bus.py`), the same `publish` that this host's own commits call; a process skips the
hints it sent itself (it published them locally already). Every PostgreSQL store sends
(`send_hints`), the CLI's too; only `postel serve` listens.

Hints stay hints: a payload too big for NOTIFY (8000 bytes) is cut down to one wake-up per
account, and a listener connection that drops reconnects with backoff and then wakes every
local subscriber, since hints sent while it was away are lost. Sessions re-read the store
on any wake-up, so nothing is missed, only learnt a little later.

Why no library: psycopg's `notifies()` is the whole client side; what is ours is the
payload and the reconnect rule above.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence

import psycopg
from sqlalchemy import Connection, func, select

from postel.store.hub import decode_changes, encode_changes
from postel.store.model import Change, CredentialsChanged, MessagesExpunged

log = logging.getLogger("postel.store")

CHANNEL = "postel_hints"
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes and more
RECONNECT_MAX = 10.0
# This process's name in the payloads, so its listener skips what it sent itself.
ORIGIN = secrets.token_hex(8)


def encode(origin: str, changes: Sequence[Change]) -> str | None:
    """The NOTIFY payload for a commit's changes (the hub's wire form, store/hub.py), or
    None when there is nothing to say."""
    if not changes:
        return None
    payload = json.dumps({"o": origin, "c": encode_changes(changes)}, separators=(",", ":"))
    if len(payload.encode()) <= MAX_PAYLOAD:
        return payload
    # Too big: a wake-up per account (and every sign-out, which must never be dropped).
    accounts = sorted({c.account_id for c in changes if c.account_id is not None})
    revoked = sorted({c.account_id for c in changes if isinstance(c, CredentialsChanged)})
    return json.dumps({"o": origin, "w": accounts, "r": revoked}, separators=(",", ":"))


def decode(payload: str) -> tuple[str, list[Change]]:
    """(origin, changes) of a payload; a wake-up is an expunge of nothing, which makes
    every reader look again (the webmail's live view re-reads its list for it)."""
    data = json.loads(payload)
    origin = str(data["o"])
    if "w" in data:
        wakes: list[Change] = [MessagesExpunged(int(a), 0, (), 0) for a in data["w"]]
        return origin, wakes + [CredentialsChanged(int(a)) for a in data.get("r", ())]
    return origin, decode_changes(data["c"])


def send_hints(conn: Connection, changes: list[Change]) -> None:
    """Database.before_commit hook of every PostgreSQL store, the CLI's too: a password
    changed with `postel user passwd` signs the user out on every host."""
    payload = encode(ORIGIN, changes)
    if payload is not None:
        conn.execute(select(func.pg_notify(CHANNEL, payload)))


class PgHintRelay:
    """Hands the hints that other processes' commits sent to `deliver` (this host's bus)."""

    def __init__(
        self, conninfo: str, deliver: Callable[[list[Change]], None],
        resync: Callable[[], None],
    ) -> None:
        self.conninfo = conninfo
        self._deliver = deliver
        self._resync = resync
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    # -- listening ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pg-hints", daemon=True)
        self._thread.start()

    def wait_listening(self, timeout: float) -> bool:
        return self._listening.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()  # the listener looks at least once a second
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        delay = 0.2
        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if not first:
                        log.info("change hints from other hosts: listening again")
                        self._resync()  # what was sent while we were away is lost
                    first = False
                    delay = 0.2
                    self._listening.set()
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self._received(notify.payload)
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    break
                self._listening.clear()
                log.warning("change hints from other hosts: connection lost (%s); "
                            "retrying in %.1f s", str(exc).strip().splitlines()[0], delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _received(self, payload: str) -> None:
        try:
            origin, changes = decode(payload)
        except (ValueError, KeyError, TypeError, IndexError):
            log.warning("change hints from other hosts: unreadable payload ignored")
            return
        if origin != ORIGIN and changes:
            self._deliver(changes)
