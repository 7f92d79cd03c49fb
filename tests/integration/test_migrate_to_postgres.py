"""`postel migrate --to postgresql://...`: an embedded-default installation moves to
PostgreSQL, an interrupted copy resumes, and an IMAP client that synced before the move
finds nothing to download after it (same UIDVALIDITY, UIDs, flags and MODSEQs).

Real parts only: a SQLite Postel serving over real sockets, the real CLI in a subprocess
(killed with SIGKILL mid-copy), a real PostgreSQL database, imaplib against both.
"""

from __future__ import annotations

import imaplib
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.harness import PASSWORD, PostelServer, drop_pg_database, fresh_pg_database

pytestmark = pytest.mark.postgres

MESSAGES = 200
USER = "alice@example.test"


def deliver(server: PostelServer, count: int, start: int = 0) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
        for n in range(start, start + count):
            smtp.sendmail("sender@remote.test", [USER], (
                f"From: sender@remote.test\r\nTo: {USER}\r\nSubject: message {n}\r\n"
                f"Message-ID: <m{n}@remote.test>\r\n\r\nbody {n}\r\n").encode())


def imap(server: PostelServer) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    client.starttls(server.client_tls())
    client.login(USER, PASSWORD)
    return client


def sync_state(server: PostelServer) -> tuple[str, str, list[bytes], list[bytes]]:
    """(UIDVALIDITY, HIGHESTMODSEQ, every message's UID/FLAGS/MODSEQ, the folder list)."""
    client = imap(server)
    try:
        client.enable("CONDSTORE")
        client.select("INBOX")
        uidvalidity = client.response("UIDVALIDITY")[1][0]
        highest = client.response("HIGHESTMODSEQ")[1][0]
        _, rows = client.uid("FETCH", "1:*", "(FLAGS MODSEQ)")
        _, folders = client.list()
        return (uidvalidity.decode(), highest.decode(),
                sorted(r for r in rows if isinstance(r, bytes)), sorted(folders))
    finally:
        client.logout()


def migrate(server: PostelServer, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "postel", "migrate", "--to", url, "--batch", "20",
         "--config", str(server.config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # no terminal: no bars


def copied_messages(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM messages").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0  # the target's schema is still being made
    return int(row[0]) if row else 0


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = fresh_pg_database()
    yield url
    drop_pg_database(url)


def test_migrate_keeps_sync_state_and_resumes(
    make_postel: Callable[..., PostelServer], tmp_path: Path, pg_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'embedded' / 'data' / 'postel.db'}"
    server = make_postel("embedded", storage_url=sqlite_url)
    server.add_user(USER)
    server.start()
    deliver(server, MESSAGES)
    client = imap(server)
    client.create("Archive")
    client.select("INBOX")
    client.store("1:50", "+FLAGS", r"(\Seen $Label1)")
    client.store("51:60", "+FLAGS", r"(\Deleted)")
    client.expunge()
    client.copy("1:10", "Archive")
    client.logout()
    before = sync_state(server)
    server.stop()

    # An interrupted copy: SIGKILL once the messages table is under way (its first batch
    # has committed in the target).
    first = migrate(server, pg_url)
    deadline = time.monotonic() + 60
    while (copied_messages(pg_url) == 0 and time.monotonic() < deadline
           and first.poll() is None):
        time.sleep(0.02)
    if first.poll() is None:
        first.send_signal(signal.SIGKILL)
    first.wait(30)

    second = migrate(server, pg_url)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, out + err
    assert "Every row copied and verified" in out
    assert re.search(r"messages\s+\d+ rows\s+ok", out), out

    # Serve from PostgreSQL. The bodies are in the database now: the blob files are only a
    # cache, so a host without them (here: the same host after losing them) serves as well.
    config = server.config_path.read_text()
    server.config_path.write_text(config.replace(sqlite_url, pg_url))
    shutil.rmtree(server.data_dir / "blobs")
    server.reload_config()
    server.start()
    assert sync_state(server) == before
    client = imap(server)
    try:
        client.enable("CONDSTORE")
        client.select("INBOX")
        # A CONDSTORE client asks what changed since its HIGHESTMODSEQ: nothing.
        _, changed = client.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {before[1]})")
        assert changed in ([None], [])
        _, body = client.uid("FETCH", "1", "(BODY.PEEK[TEXT])")
        assert body[0][1] == b"body 0\r\n"
    finally:
        client.logout()

    # New mail after the move takes the next UID: the copied ids did not reset the counters.
    deliver(server, 1, start=MESSAGES)
    client = imap(server)
    try:
        client.select("INBOX")
        _, uids = client.uid("SEARCH", "ALL")
        numbers = [int(u) for u in uids[0].split()]
        assert numbers[-1] == MESSAGES + 1
        assert len(numbers) == MESSAGES - 10 + 1
    finally:
        client.logout()


def test_migrate_refuses_a_database_that_holds_other_data(
    make_postel: Callable[..., PostelServer], tmp_path: Path, pg_url: str
) -> None:
    other = make_postel("other", storage_url=pg_url)
    other.add_user("carol@example.test")
    sqlite_url = f"sqlite:///{tmp_path / 'embedded' / 'data' / 'postel.db'}"
    server = make_postel("embedded", storage_url=sqlite_url)
    server.add_user(USER)
    result = server.cli("migrate", "--to", pg_url, "--quiet")
    assert result.returncode == 2
    assert "already holds data" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_refuses_a_url_that_is_not_postgresql(
    make_postel: Callable[..., PostelServer], tmp_path: Path
) -> None:
    server = make_postel("embedded",
                         storage_url=f"sqlite:///{tmp_path / 'embedded' / 'data' / 'postel.db'}")
    result = server.cli("migrate", "--to", "mysql://root@127.0.0.1/x", "--quiet")
    assert result.returncode == 2
    assert "not a postgresql:// URL" in result.stderr
