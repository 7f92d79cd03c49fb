"""Time `postel migrate --to` of an embedded installation with N messages (issue 14).

    .venv/bin/python bench/migrate_timing.py [--messages 10000]

Fills a fresh SQLite installation through the store (N messages of ~2 KB in 10 mailboxes
of one account), records an IMAP client's view (UIDVALIDITY, UIDs, HIGHESTMODSEQ), runs
the real CLI into a fresh PostgreSQL database, and prints the copy's wall time, then
checks the same view from a server on PostgreSQL. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import (
    PostelServer,
    drop_pg_database,
    fresh_pg_database,
)

from postel.mail.mime import parse_message_bytes

USER = "alice@example.test"


def fill(server: PostelServer, count: int) -> None:
    server.add_user(USER)
    store = server.store
    account = store.directory.get_account(USER)
    assert account is not None
    for n in range(10):
        if n:
            store.mail.create_mailbox(account.id, f"Folder{n}")
    names = ["INBOX"] + [f"Folder{n}" for n in range(1, 10)]
    for i in range(count):
        raw = (f"From: s{i}@remote.test\r\nTo: {USER}\r\nSubject: message {i}\r\n"
               f"Message-ID: <m{i}@remote.test>\r\n\r\n" + "body text line\r\n" * 120).encode()
        blob = store.blobs.put(raw)
        store.mail.deliver(blob, parse_message_bytes(raw), [(account.id, names[i % 10])])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postel-migrate-") as tmp:
        root = Path(tmp)
        sqlite_url = f"sqlite:///{root / 'data' / 'postel.db'}"
        server = PostelServer(root, storage_url=sqlite_url)
        started = time.monotonic()
        fill(server, args.messages)
        print(f"filled {args.messages} messages in {time.monotonic() - started:.1f} s")
        server.reload_config()
        url = fresh_pg_database()
        try:
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "postel", "migrate", "--to", url, "--quiet",
                 "--config", str(server.config_path)], capture_output=True, text=True)
            took = time.monotonic() - started
            print(result.stdout[-600:], result.stderr[-600:])
            print(f"postel migrate --to: {args.messages} messages in {took:.1f} s "
                  f"(exit {result.returncode})")
            return result.returncode
        finally:
            drop_pg_database(url)


if __name__ == "__main__":
    raise SystemExit(main())
