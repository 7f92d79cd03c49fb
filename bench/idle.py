"""IDLE fan-out: N sessions IDLE on one INBOX, then one APPEND to it.

    .venv/bin/python bench/idle.py --connections 1000 5000 10000

For each N: the server's memory per IDLE connection (RSS after the N sessions are idling,
minus RSS before, over N), the APPEND's latency (command to tagged OK), and how long after
the APPEND was sent each session saw its `* n EXISTS` (p50, p99, max). The sessions live
in several load-generator processes (uvloop when installed) so that the generator is not
what is measured; their CPU is reported beside the figures. File-descriptor limits are
raised to the hard limit in every process.

Logins are not what this measures: the account's password hash is re-made with cheap
Argon2id parameters (argon2 reads them from the hash), so 10,000 logins take seconds, not
an hour of Argon2id at the default cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.framework import BenchError, Options, Report, Row, percentile  # noqa: E402
from bench.mailstore import PASSWORD, _runner  # noqa: E402

USER = "idle@example.test"
GENERATORS = 4  # load-generator processes
CONNECT_AT_ONCE = 100  # logins in flight per generator


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


async def _expect(reader: asyncio.StreamReader, prefix: bytes) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line.startswith(prefix):
            return line


async def _idle_session(port: int, gate: asyncio.Semaphore) -> tuple[Any, Any]:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(f'a LOGIN "{USER}" "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
        line = await _expect(reader, b"a ")
        if not line.startswith(b"a OK"):
            raise BenchError(f"LOGIN: {line!r}")
        await _expect(reader, b"b OK")
        await _expect(reader, b"+ ")
        return reader, writer


async def _generator(port: int, count: int, pipe: Connection) -> None:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    sessions = await asyncio.gather(*(_idle_session(port, gate) for _ in range(count)))
    pipe.send("ready")
    woke: list[float] = []

    async def wait_exists(reader: asyncio.StreamReader) -> None:
        line = await _expect(reader, b"* ")
        while b"EXISTS" not in line:
            line = await _expect(reader, b"* ")
        woke.append(time.monotonic())  # CLOCK_MONOTONIC is system-wide on Linux

    await asyncio.gather(*(wait_exists(reader) for reader, _ in sessions))
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    pipe.send((woke, cpu.ru_utime + cpu.ru_stime))
    for _, writer in sessions:
        writer.write(b"DONE\r\nz LOGOUT\r\n")
    await asyncio.sleep(0.5)
    for _, writer in sessions:
        writer.close()


def _generator_main(port: int, count: int, pipe: Connection) -> None:
    raise_fd_limit()
    runner = _runner()
    try:
        runner.run(_generator(port, count, pipe))
    finally:
        runner.close()


async def _append(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(f'a LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    await _expect(reader, b"a OK")
    message = b"From: a@example.org\r\nSubject: wake up\r\n\r\nhello\r\n"
    writer.write(b"b APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    await _expect(reader, b"b OK")
    writer.close()


def one_round(port: int, pid: int, count: int) -> dict[str, float]:
    before = rss_kib(pid)
    pipes, procs = [], []
    ctx = mp.get_context("spawn")
    for n in range(GENERATORS):
        share = count // GENERATORS + (1 if n < count % GENERATORS else 0)
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_generator_main, args=(port, share, theirs), daemon=True)
        proc.start()
        pipes.append(ours)
        procs.append(proc)
    try:
        for pipe in pipes:
            if not pipe.poll(600):
                raise BenchError("a load generator did not get its sessions idling")
            if pipe.recv() != "ready":
                raise BenchError("a load generator failed")
        time.sleep(1.0)  # let the server settle (buffers, GC) before reading its RSS
        after = rss_kib(pid)
        runner = _runner()
        try:
            sent = time.monotonic()
            runner.run(_append(port))
            append_ms = (time.monotonic() - sent) * 1000
        finally:
            runner.close()
        woke: list[float] = []
        generator_cpu = 0.0
        for pipe in pipes:
            if not pipe.poll(300):
                raise BenchError("not every session saw the new message within 300 s")
            times, cpu = pipe.recv()
            woke += times
            generator_cpu += cpu
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    latencies = [(t - sent) * 1000 for t in woke]
    return {
        "connections": count,
        "KiB per connection": (after - before) / count,
        "APPEND ms": append_ms,
        "wake p50 ms": statistics.median(latencies),
        "wake p99 ms": percentile(latencies, 99),
        "wake max ms": max(latencies),
        "generator CPU s": generator_cpu,
    }


def _cheap_password(server: Any) -> None:
    from argon2 import PasswordHasher

    server.add_user(USER, PASSWORD)
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    server.store.directory.update_account(USER, password_hash=cheap)
    server.store.close()
    server._store = None


def run_postel(root: Path, counts: list[int]) -> list[dict[str, float]]:
    from tests.harness import PostelServer

    raise_fd_limit()
    (root / "postel-idle").mkdir(parents=True, exist_ok=True)
    server = PostelServer(
        root / "postel-idle", services=("imap",),
        extra_config="[imap]\nallow_plaintext_auth_on_loopback = true\n"
                     f"max_connections_per_ip = {max(counts) + 100}\n"
                     # Concurrent logins count as failures until checked: no limits here.
                     "[auth]\nmax_failures_per_ip = 0\nmax_failures_per_account = 0\n",
    )
    try:
        _cheap_password(server)
        results = []
        for count in counts:
            server.start()
            assert server.process is not None
            print(f"   Postel, {count} IDLE sessions ...", flush=True)
            results.append(one_round(server.port("imap"), server.process.pid, count))
            server.stop()
        return results
    finally:
        with contextlib.suppress(Exception):
            server.close()


def idle(opts: Options, report: Report) -> list[Row]:
    """`make bench`: Postel only (a private Dovecot forks a process per IDLE session, so
    10,000 of them need process limits this machine's bench setup does not give)."""
    root = opts.workdir
    assert root is not None
    rows = []
    for result in run_postel(root, [1000, 5000, 10000]):
        label = f"IMAP IDLE x{int(result['connections'])}"
        for metric in ("KiB per connection", "APPEND ms", "wake p50 ms", "wake p99 ms"):
            rows.append(Row(label, metric, result[metric], None, "-", higher_is_better=False))
        report.notes.append(f"{label}: load generators used {result['generator CPU s']:.1f} "
                            f"CPU-s in {GENERATORS} processes")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1000, 5000, 10000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postel-idle-") as tmp:
        for result in run_postel(Path(tmp), args.connections):
            print("  ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
