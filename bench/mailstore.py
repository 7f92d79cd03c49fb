"""Mailbox access: POP3 and IMAP retrieval, Postel against a private Debian Dovecot.

Both servers hold the same messages (default 2000 of 10 KB) spread over one user per client
(20 by default; POP3 locks a maildrop, so parallel clients need their own users). Each
client logs in (not timed: Postel checks Argon2id hashes, the Dovecot here plain
passwords), then, on the clock, POP3 STAT + RETR of every message or IMAP SELECT + one
`FETCH n (BODY.PEEK[])` per message, and logs out. Every retrieved message is compared with
what was stored; a missing, duplicated or altered one fails the run. A first untimed pass
warms both up (Dovecot builds its indexes on first access), then rounds alternate which
server goes first and the best round of each is shown.

Protocols Postel does not serve yet (no service in `postel.app.service_factories()`), or
whose retrieval commands it refuses, are skipped with a note instead of a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.dovecot import PrivateDovecot, ensure_dovecot
from bench.framework import BenchError, Options, Report, Row, percentile
from bench.procstat import SystemCpu, self_cpu, tree_cpu
from bench.smtp_load import make_message, message_ids

PASSWORD = "correct horse battery"
READ_LIMIT = 1 << 22


class Unsupported(Exception):
    """The server refused a command the benchmark needs (BAD / -ERR): skip, don't fail."""


def postel_serves(protocol: str) -> bool:
    """True when a service for `protocol` ("pop3", "imap") is wired into Postel's app."""
    from postel.app import service_factories

    return any(protocol in factory.__name__.lower() for factory in service_factories())


# -- clients -------------------------------------------------------------------------------


class Pop3Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Pop3Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=READ_LIMIT)
        client = cls(reader, writer)
        await client._status()
        return client

    async def _status(self) -> bytes:
        line = await self.reader.readline()
        if not line.startswith(b"+OK"):
            raise Unsupported(line.decode(errors="replace").strip() or "connection closed")
        return line

    async def command(self, line: str) -> bytes:
        self.writer.write(line.encode() + b"\r\n")
        return await self._status()

    async def multiline(self, line: str) -> bytes:
        await self.command(line)
        data = b""
        while not (data == b".\r\n" or data.endswith(b"\r\n.\r\n")):
            chunk = await self.reader.readuntil(b".\r\n")
            data += chunk
        body = data[:-3]
        if body.startswith(b".."):
            body = body[1:]
        return body.replace(b"\r\n..", b"\r\n.")

    async def login(self, user: str, password: str) -> None:
        await self.command(f"USER {user}")
        await self.command(f"PASS {password}")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.command("QUIT")
        self.writer.close()


LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class ImapClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.tag = 0

    @classmethod
    async def connect(cls, port: int) -> ImapClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=READ_LIMIT)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise Unsupported(greeting.decode(errors="replace").strip())
        return cls(reader, writer)

    async def command(self, line: str) -> list[bytes]:
        """Send a command; return the literals of its untagged answers; OK or Unsupported."""
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.writer.write(tag + b" " + line.encode() + b"\r\n")
        literals: list[bytes] = []
        while True:
            text = await self.reader.readline()
            if not text:
                raise ConnectionError("connection closed")
            while (match := LITERAL.search(text)) is not None:
                literals.append(await self.reader.readexactly(int(match.group(1))))
                text = await self.reader.readline()
            if text.startswith(tag + b" "):
                if not text.startswith(tag + b" OK"):
                    answer = text.decode(errors="replace").strip()
                    raise Unsupported(f"{line.split()[0]}: {answer}")
                return literals

    async def login(self, user: str, password: str) -> None:
        await self.command(f'LOGIN "{user}" "{password}"')

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.command("LOGOUT")
        self.writer.close()


# -- one pass: every client reads its whole mailbox ----------------------------------------

READS_PER_PASS = 2  # each client reads its mailbox this many times per timed pass

Client = Pop3Client | ImapClient


@dataclass
class PassResult:
    retrieved: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    machine_busy: float = 0.0
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.retrieved / self.elapsed if self.elapsed > 0 else 0.0


Mailboxes = dict[str, dict[str, bytes]]  # user -> Message-ID -> message


async def open_sessions(protocol: str, port: int, boxes: Mailboxes) -> dict[str, Client]:
    """One logged-in session per user (IMAP: with INBOX selected), kept for every pass."""

    async def one(user: str) -> Client:
        client: Client
        client = await (Pop3Client if protocol == "pop3" else ImapClient).connect(port)
        await client.login(user, PASSWORD)
        if isinstance(client, ImapClient):
            await client.command("SELECT INBOX")
        return client

    clients = await asyncio.gather(*(one(user) for user in boxes), return_exceptions=True)
    sessions = {u: c for u, c in zip(boxes, clients, strict=True) if not isinstance(c, Exception)}
    failed = [c for c in clients if isinstance(c, BaseException)]
    if failed:
        await close_sessions(sessions)
        raise failed[0]
    return sessions


async def close_sessions(sessions: dict[str, Client]) -> None:
    await asyncio.gather(*(client.close() for client in sessions.values()))


async def _read_box(
    user: str, client: Client, box: dict[str, bytes], result: PassResult
) -> None:
    for _ in range(READS_PER_PASS):
        got: list[bytes] = []
        if isinstance(client, Pop3Client):
            count = int((await client.command("STAT")).split()[1])
            for number in range(1, count + 1):
                began = time.perf_counter()
                got.append(await client.multiline(f"RETR {number}"))
                result.latencies.append(time.perf_counter() - began)
        else:
            for number in range(1, len(box) + 1):
                began = time.perf_counter()
                got += await client.command(f"FETCH {number} (BODY.PEEK[])")
                result.latencies.append(time.perf_counter() - began)
        result.retrieved += len(got)
        seen: list[str] = []
        intact = True
        for message in got:
            ids = message_ids(message)
            seen += ids
            intact = intact and len(ids) == 1 and box.get(ids[0]) == message
        if not intact or sorted(seen) != sorted(box):
            raise BenchError(
                f"{user}: read {len(got)} messages, want exactly the {len(box)} stored "
                f"({len(set(box) - set(seen))} missing, or some altered)"
            )


async def read_pass(
    sessions: dict[str, Client], boxes: Mailboxes, server_cpu: Callable[[], float]
) -> PassResult:
    """Every session reads its whole mailbox READS_PER_PASS times, all at once; timed."""
    result = PassResult()
    cpu, machine, server = self_cpu(), SystemCpu.read(), server_cpu()
    began = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_read_box(user, client, boxes[user], result) for user, client in sessions.items()),
        return_exceptions=True,
    )
    result.elapsed = time.perf_counter() - began
    result.server_cpu = server_cpu() - server
    result.client_cpu = self_cpu() - cpu
    result.machine_busy = SystemCpu.read().since(machine)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return result


# -- servers -------------------------------------------------------------------------------


def make_boxes(opts: Options) -> Mailboxes:
    """One user per client, the messages dealt out round-robin: `opts.messages` in all."""
    users = [f"reader{k}@example.test" for k in range(min(opts.clients, opts.messages))]
    boxes: Mailboxes = {user: {} for user in users}
    run = f"{time.time_ns() & 0xFFFFFFFF:08x}"
    for number in range(opts.messages):
        user = users[number % len(users)]
        message = make_message(run, number, opts.message_size, user)
        boxes[user][message_ids(message)[0]] = message
    return boxes


def populate_postel(server: Any, boxes: Mailboxes) -> None:
    """Accounts and INBOX messages straight into Postel's store, before it starts.

    The writes skip SQLite's fsync (synchronous=OFF on this setup connection only); the
    server itself opens the store as always.
    """
    from sqlalchemy import event

    from postel.app import open_store
    from postel.mail.mime import parse_message_bytes

    for user in boxes:
        server.add_user(user, PASSWORD)
    store = open_store(server.config)
    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    def fill(user: str) -> None:
        account = store.directory.get_account(user)
        assert account is not None
        for message in boxes[user].values():
            blob = store.blobs.put(message)
            store.mail.deliver(blob, parse_message_bytes(message), [(account.id, "INBOX")])

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(fill, boxes))
    finally:
        store.close()


def _postel_config(protocol: str) -> str:
    return (
        f"[{protocol}]\nallow_plaintext_auth_on_loopback = true\n"
        "max_connections_per_ip = 100\n"
    )


def _describe(name: str, number: int, run: PassResult) -> str:
    return (
        f"round {number} {name}: {run.rate:.0f} msg/s ({run.retrieved} in {run.elapsed:.2f} s); "
        f"CPU: server {run.server_cpu / run.elapsed * 100:.0f}% of a core, load generator "
        f"{run.client_cpu / run.elapsed * 100:.0f}%, machine {run.machine_busy * 100:.0f}% busy"
        + (" [load generator near a full core: this rate is a floor]"
           if run.client_cpu > 0.6 * run.elapsed else "")
    )


def _runner() -> asyncio.Runner:
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    return asyncio.Runner(loop_factory=loop_factory)


def retrieval(protocol: str, opts: Options, report: Report) -> list[Row]:
    title = protocol.upper()
    if not postel_serves(protocol):
        report.notes.append(
            f"{title} vs Dovecot: skipped, Postel does not serve {title} yet "
            "(no service for it in postel.app.service_factories())."
        )
        return []
    from tests.harness import PostelServer

    version = ensure_dovecot()
    root = opts.workdir
    assert root is not None
    boxes = make_boxes(opts)
    (root / f"postel-{protocol}").mkdir(parents=True, exist_ok=True)
    postel = PostelServer(
        root / f"postel-{protocol}", services=(protocol,), extra_config=_postel_config(protocol),
        workers=0,  # one worker per core, what `postel serve` runs
    )
    dovecot = PrivateDovecot(root / f"dovecot-{protocol}")
    runs: dict[str, list[PassResult]] = {"Postel": [], "Dovecot": []}
    sessions: dict[str, dict[str, Client]] = {}
    runner = _runner()
    try:
        populate_postel(postel, boxes)
        postel.start()
        for user, box in boxes.items():
            dovecot.add_user(user, PASSWORD, list(box.values()))
        dovecot.start()
        assert postel.process is not None
        postel_pid, dovecot_pid = postel.process.pid, dovecot.master_pid()
        assert dovecot_pid is not None  # PrivateDovecot.start waited for it
        cpu: dict[str, Callable[[], float]] = {
            "Postel": lambda: tree_cpu(postel_pid),  # the supervisor and its workers
            "Dovecot": lambda: tree_cpu(dovecot_pid),
        }
        try:
            sessions["Postel"] = runner.run(open_sessions(protocol, postel.port(protocol), boxes))
            # Warm-up, not timed; also proves every message comes back intact.
            runner.run(read_pass(sessions["Postel"], boxes, cpu["Postel"]))
        except Unsupported as exc:
            report.notes.append(
                f"{title} vs Dovecot: skipped, Postel refused a command the benchmark "
                f"needs ({exc})."
            )
            return []
        sessions["Dovecot"] = runner.run(open_sessions(protocol, dovecot.port(protocol), boxes))
        runner.run(read_pass(sessions["Dovecot"], boxes, cpu["Dovecot"]))
        for number in range(opts.rounds):
            order = list(runs) if number % 2 == 0 else list(reversed(runs))
            for name in order:
                print(f"   round {number + 1}/{opts.rounds}: {name} ...", flush=True)
                result = runner.run(read_pass(sessions[name], boxes, cpu[name]))
                runs[name].append(result)
                report.notes.append(f"{title} " + _describe(name, number + 1, result))
    except Unsupported as exc:
        log = dovecot.log()[-3000:]
        raise BenchError(f"{title}: a server refused a command: {exc}\n{log}") from exc
    finally:
        for open_ in sessions.values():
            with contextlib.suppress(Exception):
                runner.run(close_sessions(open_))
        runner.close()
        postel.close()
        dovecot.stop()
    best = {name: max(results, key=lambda r: r.rate) for name, results in runs.items()}
    ours, ref = best["Postel"], best["Dovecot"]
    command = "RETR" if protocol == "pop3" else "FETCH BODY[]"
    label = f"{title} {command} {opts.message_size // 1024} KB, {len(boxes)} sessions"
    ref_name = f"Dovecot {version}"

    def ms(result: PassResult, pct: float) -> float:
        return percentile(result.latencies, pct) * 1000

    def cpu_ms(result: PassResult) -> float:
        return result.server_cpu / result.retrieved * 1000

    report.notes.append(
        f"{title}: {opts.messages} messages over {len(boxes)} users, each session reads its "
        f"mailbox {READS_PER_PASS}x per pass; logins and SELECT not timed; rows show each "
        f"server's best of {opts.rounds} round(s)."
    )
    return [
        Row(label, "retrieved msg/s", ours.rate, ref.rate, ref_name),
        Row(label, f"{command} latency p50 ms", ms(ours, 50), ms(ref, 50), ref_name,
            higher_is_better=False),
        Row(label, f"{command} latency p99 ms", ms(ours, 99), ms(ref, 99), ref_name,
            higher_is_better=False),
        Row(label, "server CPU ms/msg", cpu_ms(ours), cpu_ms(ref), ref_name,
            higher_is_better=False),
    ]


def pop3_retrieval(opts: Options, report: Report) -> list[Row]:
    return retrieval("pop3", opts, report)


def imap_fetch(opts: Options, report: Report) -> list[Row]:
    return retrieval("imap", opts, report)
