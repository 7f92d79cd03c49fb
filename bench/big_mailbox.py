"""One mailbox of 100,000 messages: STATUS, SELECT, `UID FETCH 1:* (FLAGS)`, the newest 50
headers, `UID SEARCH SUBJECT`, `UID SEARCH BODY`; Postel vs a private Dovecot, the same
messages in both, median of 3 (ms).

    .venv/bin/python bench/run.py --only big-mailbox
    .venv/bin/python bench/big_mailbox.py --messages 100000 --postel-only   # no Dovecot

Each timed command runs on a session logged in (and, but for STATUS and SELECT, with the
mailbox selected) beforehand; the time is from sending the command to its tagged OK, every
response read. Messages are small (a few hundred octets) with distinct subjects and bodies,
so SEARCH finds exactly one; the answer is checked, so a server that finds nothing fast
fails instead of winning.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.framework import BenchError, Options, Report, Row, table  # noqa: E402
from bench.mailstore import PASSWORD, ImapClient, _postel_config, _runner  # noqa: E402

USER = "big@example.test"
REPEAT = 3
NEEDLE = 4242  # the message SEARCH must find (its subject and body words are unique)


def message(n: int) -> bytes:
    return (
        f"From: Sender {n % 97} <s{n % 97}@example.org>\r\n"
        f"To: {USER}\r\n"
        f"Subject: report number q{n}x about topic {n % 13}\r\n"
        f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
        f"Message-ID: <m{n}@example.org>\r\n"
        "\r\n"
        f"Body line with the word zb{n}y inside it.\r\n"
        "Some ordinary text to make the body a little longer than one line.\r\n"
    ).encode()


def messages(count: int) -> Iterator[bytes]:
    return (message(n) for n in range(1, count + 1))


def populate_postel(server: Any, count: int) -> None:
    """The account and its INBOX straight into the store before the server starts:
    MULTIAPPEND-sized batches, SQLite's fsync off on this setup connection only."""
    from sqlalchemy import event

    from postel.app import open_store
    from postel.mail.mime import parse_message_bytes
    from postel.store.model import Flags

    server.add_user(USER, PASSWORD)
    store = open_store(server.config)
    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.close()

    try:
        account = store.directory.get_account(USER)
        assert account is not None
        box = store.mail.get_mailbox(account.id, "INBOX")
        assert box is not None
        batch: list[Any] = []
        for n, data in enumerate(messages(count), 1):
            # Every tenth message seen, every 50th flagged: flags are not all alike.
            flags = Flags(seen=n % 10 != 0, flagged=n % 50 == 0)
            batch.append((store.blobs.put(data), parse_message_bytes(data), flags, None))
            if len(batch) == 1000 or n == count:
                store.mail.append_many(account.id, box.id, batch)
                batch = []
    finally:
        store.close()


async def _timed(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await call()
    return (time.perf_counter() - start) * 1000


class Searcher(ImapClient):
    """ImapClient that also returns the untagged lines (to check SEARCH answers)."""

    async def lines(self, line: str) -> list[bytes]:
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.writer.write(tag + b" " + line.encode() + b"\r\n")
        out: list[bytes] = []
        while True:
            text = await self.reader.readline()
            if not text:
                raise ConnectionError("connection closed")
            if text.startswith(tag + b" "):
                if not text.startswith(tag + b" OK"):
                    raise BenchError(f"{line}: {text!r}")
                return out
            out.append(text)


async def measure(port: int, count: int) -> dict[str, float]:
    """Median of REPEAT runs of each command, in ms."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    await reader.readline()
    client = Searcher(reader, writer)
    await client.lines(f'LOGIN "{USER}" "{PASSWORD}"')
    await client.lines("EXAMINE INBOX")  # warm: a first read of a cold file is not timed
    await client.lines("UNSELECT")
    times: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        times.setdefault(name, []).append(value)

    newest = f"{max(1, count - 49)}:{count}"
    for _ in range(REPEAT):
        add("STATUS", await _timed(lambda: client.lines(
            "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")))
        add("SELECT", await _timed(lambda: client.lines("SELECT INBOX")))
        add("UID FETCH 1:* (FLAGS)", await _timed(lambda: client.lines(
            "UID FETCH 1:* (FLAGS)")))
        add("FETCH newest 50 headers", await _timed(lambda: client.lines(
            f"FETCH {newest} (BODY.PEEK[HEADER])")))
        for key, needle in (("SUBJECT", f"q{NEEDLE}x"), ("BODY", f"zb{NEEDLE}y")):
            found: list[bytes] = []
            add(f"UID SEARCH {key}", await _timed(
                lambda key=key, needle=needle, found=found: _search(client, key, needle, found)))
            _check(found, key)
        await client.lines("UNSELECT")
    await client.close()
    return {name: statistics.median(values) for name, values in times.items()}


async def _search(client: Searcher, key: str, needle: str, found: list[bytes]) -> None:
    found[:] = await client.lines(f"UID SEARCH {key} {needle}")


def _check(lines: list[bytes], what: str) -> None:
    hits = [line for line in lines if line.startswith(b"* SEARCH")]
    if not hits or hits[0].split()[2:] != [str(NEEDLE).encode()]:
        raise BenchError(f"UID SEARCH {what} found {hits!r}, not UID {NEEDLE}")


def run_postel(root: Path, count: int) -> dict[str, float]:
    from tests.harness import PostelServer

    (root / "postel-big").mkdir(parents=True, exist_ok=True)
    server = PostelServer(root / "postel-big", services=("imap",),
                          extra_config=_postel_config("imap"))
    runner = _runner()
    marker = root / "postel-big" / f"populated-{count}"
    try:
        if not marker.exists():  # --data DIR keeps a populated store for the next run
            started = time.monotonic()
            populate_postel(server, count)
            print(f"   Postel: {count} messages stored in {time.monotonic() - started:.0f} s",
                  flush=True)
            marker.touch()
        server.start()
        return runner.run(measure(server.port("imap"), count))
    finally:
        runner.close()
        server.close()


def run_dovecot(root: Path, count: int) -> tuple[str, dict[str, float]]:
    from bench.dovecot import PrivateDovecot, ensure_dovecot

    version = ensure_dovecot()
    dovecot = PrivateDovecot(root / "dovecot-big")
    runner = _runner()
    try:
        dovecot.add_user(USER, PASSWORD, list(messages(count)))
        dovecot.start()
        return version, runner.run(measure(dovecot.port("imap"), count))
    finally:
        runner.close()
        dovecot.stop()


BIG = 100_000  # the size; `make bench` always uses it (--messages is for others)


def big_mailbox(opts: Options, report: Report) -> list[Row]:
    count = BIG
    root = opts.workdir
    assert root is not None
    ours = run_postel(root, count)
    version, ref = run_dovecot(root, count)
    label = f"IMAP one mailbox of {count} messages"
    report.notes.append(f"{label}: median of {REPEAT}, ms from command to tagged OK.")
    return [
        Row(label, f"{name} ms", ours[name], ref.get(name), f"Dovecot {version}",
            higher_is_better=False)
        for name in ours
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--postel-only", action="store_true")
    parser.add_argument("--data", type=Path, help="keep (and reuse) Postel's store here")
    args = parser.parse_args()
    if args.postel_only and args.data is not None:
        args.data.mkdir(parents=True, exist_ok=True)
        for name, value in run_postel(args.data, args.messages).items():
            print(f"{name:28} {value:10.1f} ms")
        return 0
    with tempfile.TemporaryDirectory(prefix="postel-big-") as tmp:
        if args.postel_only:
            for name, value in run_postel(Path(tmp), args.messages).items():
                print(f"{name:28} {value:10.1f} ms")
            return 0
        report = Report()
        rows = big_mailbox(Options(messages=args.messages, workdir=Path(tmp)), report)
        print(table(rows))
        for note in report.notes:
            print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
