"""`postel backup DIR` while the server takes mail, `postel restore DIR` onto a new data
directory, and a server started there shows the same mail over IMAP: the same UIDs, the
same UIDVALIDITY, the same bytes. A changed backup is refused. Runs on the suite's
backend (POSTEL_TEST_BACKEND=postgres too)."""

from __future__ import annotations

import imaplib
import json
import re
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.smtp_helpers import connect

ALICE = "alice@example.test"


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@remote.test"
    msg["To"] = ALICE
    msg["Subject"] = f"backup {n}"
    msg.set_content(f"message {n}\n" + "line\n" * (n % 7))
    return msg.as_bytes()


def imap_view(server: PostelServer) -> tuple[int, dict[int, bytes], list[str]]:
    """(UIDVALIDITY of INBOX, {uid: body}, the mailbox names) as an IMAP client sees them."""
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                           ssl_context=server.client_tls()) as imap:
        imap.login(ALICE, PASSWORD)
        _, listing = imap.list()
        names = sorted(line.decode().rsplit(" ", 1)[-1].strip('"') for line in listing
                       if isinstance(line, bytes))
        imap.select("INBOX", readonly=True)
        _, data = imap.response("UIDVALIDITY")
        uidvalidity = int(data[0])
        _, fetched = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        bodies: dict[int, bytes] = {}
        for item in fetched:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))  # type: ignore[union-attr]
                bodies[uid] = item[1]
        return uidvalidity, bodies, names


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("source"))
    server.add_user(ALICE)
    server.start()
    yield server
    server.close()


def test_backup_while_serving_restores_the_same_mail(
    source: PostelServer, make_postel: Callable[..., PostelServer], tmp_path: Path
) -> None:
    with connect(source, "smtp") as smtp:
        for n in range(5):
            smtp.sendmail("sender@remote.test", [ALICE], mail(n))
    # A folder with flags, so more than INBOX travels.
    with imaplib.IMAP4_SSL("127.0.0.1", source.port("imaps"),
                           ssl_context=source.client_tls()) as imap:
        imap.login(ALICE, PASSWORD)
        imap.create("Kept")
        imap.select("INBOX")
        imap.uid("COPY", "1:2", "Kept")
        imap.uid("STORE", "1", "+FLAGS", "(\\Flagged)")

    # Light load during the backup: deliveries keep arriving.
    stop = threading.Event()
    sent_during: list[int] = []

    def load() -> None:
        with connect(source, "smtp") as smtp:
            n = 100
            while not stop.is_set():
                smtp.sendmail("sender@remote.test", [ALICE], mail(n))
                sent_during.append(n)
                n += 1

    loader = threading.Thread(target=load)
    loader.start()
    backup_dir = tmp_path / "backup"
    try:
        result = source.cli("backup", str(backup_dir))
    finally:
        stop.set()
        loader.join()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["files"] and all(len(h) == 64 for h in manifest["files"].values())
    before = imap_view(source)

    target = make_postel("target")
    result = target.cli("restore", str(backup_dir))
    assert result.returncode == 0, result.stderr
    assert target.cli("check", "--stale-after", "0").returncode == 0
    target.start()
    uidvalidity, bodies, names = imap_view(target)
    assert uidvalidity == before[0]
    assert names == before[2]
    # The backup is one snapshot: the first five, then some prefix of the load.
    assert set(range(1, 6)) <= set(bodies)
    for uid, body in bodies.items():
        assert before[1][uid] == body
    assert sorted(bodies) == sorted(before[1])[: len(bodies)]
    # Restored ids continue: a new delivery gets the next UID, no collision.
    with connect(target, "smtp") as smtp:
        smtp.sendmail("sender@remote.test", [ALICE], mail(999))
    after = imap_view(target)[1]
    assert max(after) == max(bodies) + 1

    # Restoring twice onto a used store is refused.
    again = target.cli("restore", str(backup_dir))
    assert again.returncode == 1 and "not empty" in again.stderr


def test_a_changed_backup_is_refused(source: PostelServer,
                                     make_postel: Callable[..., PostelServer],
                                     tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    assert source.cli("backup", str(backup_dir)).returncode == 0
    assert source.cli("backup", str(backup_dir)).returncode == 1  # not into a used dir
    blob = next((backup_dir / "blobs").glob("*/*"))
    blob.write_bytes(blob.read_bytes().replace(b"message 1", b"message 2"))
    target = make_postel("target")
    result = target.cli("restore", str(backup_dir))
    assert result.returncode == 1
    assert "does not match the SHA-256" in result.stderr and "Traceback" not in result.stderr
    (backup_dir / "manifest.json").unlink()
    result = target.cli("restore", str(backup_dir))
    assert result.returncode == 1 and "not a (complete) backup" in result.stderr
