"""IMAP mixed-session load and LOGIN/s, Postel against a private Dovecot, same run.

Clients are spread over several load-generator processes (multiprocessing, an asyncio
loop each), so the generator is not the bottleneck; a round in which one of them used
more than `BUSY` of a core is flagged in the notes (its figures are then a floor). Each
client has a user of its own (Dovecot allows 10 connections per user and address), whose
INBOX holds the same messages on both servers.

Scenarios:
- `open`: sessions log in once (untimed) and then repeat the mixed cycle: SELECT INBOX,
  FETCH the newest 50 headers, FETCH one whole message, STORE a flag, SEARCH, APPEND a
  small message, STORE \\Deleted on it, EXPUNGE.
- `cycle`: the same, but every cycle connects, LOGINs and ends with LOGOUT.
- `login`: connect, LOGIN, LOGOUT, as fast as the clients can.

Passwords: Dovecot with BLF-CRYPT (bcrypt cost 5, `doveadm pw -s BLF-CRYPT`) and its
authentication cache off (Dovecot's default); Postel with its Argon2id default and its
verified-credentials cache (one untimed login per client first, as a client that has
connected before; a further round runs with the cache off for comparison). Rates are
commands (or logins) per second over the measured window; latencies per command name.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from typing import Any

from bench.dovecot import PrivateDovecot, ensure_dovecot
from bench.framework import BenchError, Options, Report, Row, percentile
from bench.mailstore import (
    PASSWORD,
    ImapClient,
    Mailboxes,
    Unsupported,
    _postel_config,
    _runner,
    make_boxes,
    populate_postel,
)
from bench.procstat import SystemCpu, process_cpu, self_cpu, tree_cpu

WORKERS = 4  # load-generator processes
BUSY = 0.8  # a generator process above this share of a core flags the round
EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.MULTILINE)
APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
SCENARIOS = ("open", "cycle", "login")
APPENDED = (
    b"From: load@remote.test\r\nTo: someone@example.test\r\nSubject: appended by the "
    b"bench\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n" + b"appended line\r\n" * 100
)


class LoadClient(ImapClient):
    """The retrieval benchmark's client, plus the raw answer and APPEND with a literal."""

    async def raw(self, line: str, literal: bytes | None = None) -> bytes:
        """Send a command (and a synchronising literal); return every line of the answer
        (literals left out), so the caller can read EXISTS or APPENDUID."""
        self.tag += 1
        tag = f"b{self.tag}".encode()
        if literal is None:
            self.writer.write(tag + b" " + line.encode() + b"\r\n")
        else:
            self.writer.write(tag + b" " + line.encode() + f" {{{len(literal)}}}\r\n".encode())
            ready = await self.reader.readline()
            if not ready.startswith(b"+"):
                raise Unsupported(f"{line.split()[0]}: {ready.decode(errors='replace')}")
            self.writer.write(literal + b"\r\n")
        answer = bytearray()
        while True:
            text = await self.reader.readline()
            if not text:
                raise ConnectionError("connection closed")
            match = re.search(rb"\{(\d+)\}\r\n$", text)
            if match is not None:
                await self.reader.readexactly(int(match.group(1)))
                answer += text
                continue
            answer += text
            if text.startswith(tag + b" "):
                if not text.startswith(tag + b" OK"):
                    raise Unsupported(f"{line.split()[0]}: {text.decode(errors='replace')}")
                return bytes(answer)


@dataclass
class Tally:
    """What one generator process measured; summed over processes by `merge`."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    elapsed: float = 0.0
    generator_cpu: list[float] = field(default_factory=list)  # CPU s per process
    errors: list[str] = field(default_factory=list)

    @property
    def commands(self) -> int:
        return sum(len(v) for v in self.latencies.values())


async def _timed(tally: Tally, name: str, call: Any) -> Any:
    began = time.perf_counter()
    result = await call
    tally.latencies[name].append(time.perf_counter() - began)
    return result


async def _connect_login(port: int, user: str, tally: Tally | None) -> LoadClient:
    client = await LoadClient.connect(port)
    login = client.raw(f'LOGIN "{user}" "{PASSWORD}"')
    await (login if tally is None else _timed(tally, "LOGIN", login))
    return client


async def _mixed_cycle(client: LoadClient, tally: Tally, rng: random.Random) -> None:
    selected = await _timed(tally, "SELECT", client.raw("SELECT INBOX"))
    found = EXISTS.search(selected)
    exists = int(found.group(1)) if found else 0
    if exists:
        first = max(1, exists - 49)
        await _timed(tally, "FETCH headers", client.raw(f"FETCH {first}:* (BODY.PEEK[HEADER])"))
        number = rng.randint(1, exists)
        await _timed(tally, "FETCH body", client.raw(f"FETCH {number} (BODY.PEEK[])"))
        await _timed(tally, "STORE", client.raw(f"STORE {number} +FLAGS (\\Seen)"))
    await _timed(tally, "SEARCH", client.raw(f'UID SEARCH SUBJECT "bench {rng.randint(0, 99)}"'))
    appended = await _timed(tally, "APPEND", client.raw("APPEND INBOX (\\Seen)", APPENDED))
    uid = APPENDUID.search(appended)
    if uid is None:
        raise Unsupported("APPEND: no APPENDUID in the answer")
    await _timed(tally, "STORE", client.raw(f"UID STORE {uid.group(1).decode()} "
                                            "+FLAGS.SILENT (\\Deleted)"))
    await _timed(tally, "EXPUNGE", client.raw("EXPUNGE"))


async def _set_up(port: int, user: str, scenario: str) -> LoadClient | None:
    """Untimed: the open session, or one login so Postel's cache knows the password (a
    client that connected before; the cache-off round shows the cold cost)."""
    client = await _connect_login(port, user, None)
    if scenario == "open":
        return client
    await client.close()
    return None


async def _client(
    port: int, user: str, scenario: str, kept: LoadClient | None, deadline: float,
    tally: Tally,
) -> None:
    rng = random.Random(user)
    try:
        while time.monotonic() < deadline:
            if kept is not None:
                await _mixed_cycle(kept, tally, rng)
                continue
            client = await _connect_login(port, user, tally)
            if scenario == "cycle":
                await _mixed_cycle(client, tally, rng)
            await _timed(tally, "LOGOUT", client.raw("LOGOUT"))
            client.writer.close()
    finally:
        if kept is not None:
            await kept.close()


async def _generate(
    port: int, users: Sequence[str], scenario: str, seconds: float, barrier: Barrier,
) -> Tally:
    tally = Tally()
    sessions = await asyncio.gather(*(_set_up(port, user, scenario) for user in users))
    # Every client of every process is set up before anyone is timed.
    await asyncio.to_thread(barrier.wait, 600)
    cpu, began = self_cpu(), time.monotonic()
    outcomes = await asyncio.gather(
        *(_client(port, user, scenario, kept, began + seconds, tally)
          for user, kept in zip(users, sessions, strict=True)),
        return_exceptions=True,
    )
    tally.elapsed = time.monotonic() - began
    tally.generator_cpu.append(self_cpu() - cpu)
    tally.errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return tally


def _process_main(
    port: int, users: list[str], scenario: str, seconds: float, barrier: Barrier,
    results: Any,
) -> None:
    runner = _runner()
    try:
        tally = runner.run(_generate(port, users, scenario, seconds, barrier))
        results.put((dict(tally.latencies), tally.elapsed, tally.generator_cpu, tally.errors))
    except BaseException as exc:  # reported to the parent, which fails the run
        results.put(({}, 0.0, [], [repr(exc)]))  # first, so the parent reports this one
        barrier.abort()  # the parent (and the other generators) stop waiting
    finally:
        runner.close()


@dataclass
class RoundResult:
    tally: Tally
    server_cpu: float
    machine_busy: float

    @property
    def rate(self) -> float:
        return self.tally.commands / self.tally.elapsed if self.tally.elapsed else 0.0

    def logins_per_s(self) -> float:
        logins = len(self.tally.latencies.get("LOGIN", []))
        return logins / self.tally.elapsed if self.tally.elapsed else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu / self.tally.commands * 1000 if self.tally.commands else 0.0


def run_round(
    port: int, users: Sequence[str], scenario: str, seconds: float,
    server_cpu: Callable[[], float],
) -> RoundResult:
    """One measured window: WORKERS processes, users dealt out round-robin."""
    context = multiprocessing.get_context("spawn")  # no inherited event loop or server
    groups = [list(users[k::WORKERS]) for k in range(WORKERS) if users[k::WORKERS]]
    barrier = context.Barrier(len(groups) + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_process_main,
                        args=(port, group, scenario, seconds, barrier, results))
        for group in groups
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(600)
    except Exception as exc:  # a generator died during set-up
        detail = results.get(timeout=10)[3] if not results.empty() else [repr(exc)]
        for process in processes:
            process.join(30)
        raise BenchError(f"IMAP load: a generator failed to set up: {detail[0]}") from exc
    server, machine = server_cpu(), SystemCpu.read()
    total = Tally()
    for _ in processes:
        latencies, elapsed, cpu, errors = results.get(timeout=seconds + 600)
        for name, values in latencies.items():
            total.latencies[name] += values
        total.elapsed = max(total.elapsed, elapsed)
        total.generator_cpu += cpu
        total.errors += errors
    used = server_cpu() - server
    busy = SystemCpu.read().since(machine)
    for process in processes:
        process.join(60)
    if total.errors:
        raise BenchError(f"IMAP load {scenario}: {total.errors[0]} ({len(total.errors)} errors)")
    return RoundResult(total, used, busy)


def _describe(scenario: str, name: str, number: int, result: RoundResult) -> str:
    elapsed = result.tally.elapsed or 1.0
    busiest = max(result.tally.generator_cpu, default=0.0) / elapsed
    flag = (f" [a load generator used {busiest * 100:.0f}% of a core: this rate is a floor]"
            if busiest > BUSY else "")
    return (
        f"IMAP {scenario} round {number} {name}: {result.rate:.0f} commands/s "
        f"({result.tally.commands} in {elapsed:.1f} s, {result.logins_per_s():.1f} LOGIN/s); "
        f"CPU: server {result.server_cpu / elapsed * 100:.0f}% of a core "
        f"({result.cpu_ms:.2f} ms/command), busiest generator {busiest * 100:.0f}%, "
        f"machine {result.machine_busy * 100:.0f}% busy{flag}"
    )


def imap_load(opts: Options, report: Report) -> list[Row]:
    from tests.harness import PostelServer

    version = ensure_dovecot()
    root = opts.workdir
    assert root is not None
    seconds = opts.seconds
    boxes: Mailboxes = make_boxes(opts)
    users = list(boxes)
    servers: dict[str, Any] = {}
    # The failure limiter counts checks in flight towards its limits (issue 15): 20
    # clients signing in at once from 127.0.0.1 before any of them succeeded would be
    # refused after the tenth. The set-up is not an attack, so the limits are lifted.
    limits = "[auth]\nmax_failures_per_ip = 1000\nmax_failures_per_account = 1000\n"
    cache_off = "credentials_cache_ttl = 0\n"
    rows: list[Row] = []
    try:
        for name, extra in (("Postel", limits), ("Postel, no cache", limits + cache_off)):
            folder = root / f"postel-imap-load-{len(servers)}"
            folder.mkdir(parents=True, exist_ok=True)
            server = PostelServer(folder, services=("imap",),
                                  extra_config=_postel_config("imap") + extra)
            populate_postel(server, boxes)
            servers[name] = server
        dovecot = PrivateDovecot(root / "dovecot-imap-load", password_scheme="BLF-CRYPT")
        for user, box in boxes.items():
            dovecot.add_user(user, PASSWORD, list(box.values()))
        servers["Dovecot"] = dovecot
        for server in servers.values():
            server.start()
        ports: dict[str, int] = {}
        cpu: dict[str, Callable[[], float]] = {}
        for name, server in servers.items():
            ports[name] = server.port("imap")
            if name == "Dovecot":
                pid = server.master_pid()
                cpu[name] = lambda pid=pid: tree_cpu(pid)
            else:
                pid = server.process.pid
                cpu[name] = lambda pid=pid: process_cpu(pid)
        best: dict[tuple[str, str], RoundResult] = {}
        for scenario in SCENARIOS:
            # The cache-off Postel only matters where logins are measured.
            names = ["Postel", "Dovecot"] + (["Postel, no cache"] if scenario != "open" else [])
            for number in range(opts.rounds):
                order = names if number % 2 == 0 else list(reversed(names))
                for name in order:
                    print(f"   IMAP {scenario} round {number + 1}/{opts.rounds}: {name} ...",
                          flush=True)
                    try:
                        result = run_round(ports[name], users, scenario, seconds, cpu[name])
                    except BenchError as exc:
                        log = "" if name != "Dovecot" else servers[name].log()[-2000:]
                        raise BenchError(f"{name}: {exc}\n{log}") from exc
                    report.notes.append(_describe(scenario, name, number + 1, result))
                    key = (scenario, name)
                    if key not in best or result.rate > best[key].rate:
                        best[key] = result
        rows = _rows(best, len(users), f"Dovecot {version}")
    finally:
        for server in servers.values():
            with contextlib.suppress(Exception):
                if isinstance(server, PrivateDovecot):
                    server.stop()
                else:
                    server.close()
    report.notes.append(
        f"IMAP load: {len(users)} clients (one user each, {opts.messages} messages of "
        f"{opts.message_size // 1024} KB in all) in {WORKERS} generator processes, "
        f"{seconds:.0f} s per round; Dovecot passwords BLF-CRYPT (bcrypt cost 5), its auth "
        "cache off (its default); Postel Argon2id defaults with the credentials cache, each "
        "client logged in once before the clock; rows show each server's best round."
    )
    return rows


def _rows(best: dict[tuple[str, str], RoundResult], clients: int, ref: str) -> list[Row]:
    rows: list[Row] = []
    for scenario in SCENARIOS:
        ours, theirs = best[(scenario, "Postel")], best[(scenario, "Dovecot")]
        label = {"open": f"IMAP mixed, sessions open x{clients}",
                 "cycle": f"IMAP mixed, login/logout each cycle x{clients}",
                 "login": f"IMAP LOGIN/LOGOUT x{clients}"}[scenario]
        if scenario == "login":
            cold = best[(scenario, "Postel, no cache")]
            rows.append(Row(label, "LOGIN/s", ours.logins_per_s(), theirs.logins_per_s(), ref,
                            note="Postel: Argon2id + cache; Dovecot: bcrypt"))
            rows.append(Row(label, "LOGIN/s, Postel cache off", cold.logins_per_s(),
                            theirs.logins_per_s(), ref))
        else:
            rows.append(Row(label, "commands/s", ours.rate, theirs.rate, ref))
        rows.append(Row(label, "server CPU ms/command", ours.cpu_ms, theirs.cpu_ms, ref,
                        higher_is_better=False))
        names = sorted(set(ours.tally.latencies) | set(theirs.tally.latencies))
        for command in names:
            for pct in (50, 99):
                rows.append(Row(
                    label, f"{command} p{pct} ms",
                    _ms(ours.tally.latencies.get(command, []), pct),
                    _ms(theirs.tally.latencies.get(command, []), pct), ref,
                    higher_is_better=False,
                ))
    return rows


def _ms(values: list[float], pct: float) -> float | None:
    return percentile(values, pct) * 1000 if values else None
