"""Every core: a supervising process and N worker processes (`server.workers` > 1).

Pre-fork accept, not SO_REUSEPORT: the supervisor binds every listening socket once, so a
port in use, a bad config or a missing certificate is one clear error before any worker
exists, and workers inherit the bound sockets (re-executed `postel serve` processes with
the descriptors passed, never a bare fork of a process that has threads). Each worker
runs every protocol, the web included, on its own event loop, accepting from the shared
sockets; the kernel hands each connection to one of them. A restarted worker gets the
same sockets, so nothing is ever re-bound and no connection is refused meanwhile.

The supervisor also runs the change-hint hub (`store/hub.py:Hub`) that joins the workers'
buses and holds the host's named locks, migrates the store, cleans the spool of a previous
run (once: a restarted worker must not delete its siblings' files in progress), creates
the first admin and prints the banner once, after every worker reported ready.

Signals: SIGTERM/SIGINT are passed to every worker (each stops accepting and lets its
sessions finish or says BYE/421), then the supervisor exits 0; SIGHUP is passed on (each
worker reloads its certificate). A worker that dies is logged and restarted, after a delay
that doubles while it keeps dying quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postel.app import (
    SHUTDOWN_GRACE,
    StartupError,
    WorkerSetup,
    _banner,
    _bind_error,
    ensure_first_admin,
    open_store,
)
from postel.config import SERVICES, Config
from postel.connlimits import open_listener
from postel.store.blobs import clean_tmp
from postel.store.hub import Hub, socket_path
from postel.tls import TlsContexts

log = logging.getLogger("postel.supervisor")

# The environment variable that makes `postel serve` a worker: JSON of its index, the
# hub's socket and the inherited listening descriptors.
WORKER_ENV = "POSTEL_WORKER"
# A worker that ran this long before dying is restarted after the initial delay again.
STABLE_AFTER = 30.0
# Seconds the supervisor waits, after SIGTERM, beyond the workers' own grace.
STOP_MARGIN = 15.0


class WorkerFailed(Exception):
    """A worker could not start; it printed why on the shared stderr."""


def worker_setup_from_env() -> WorkerSetup | None:
    """In a worker process: what the supervisor passed; None in any other process."""
    raw = os.environ.pop(WORKER_ENV, None)  # not inherited by anything the worker runs
    if raw is None:
        return None
    data = json.loads(raw)
    expect_parent = int(data["parent"])
    _die_with_parent(expect_parent)
    sockets = {
        (str(host), int(port)): socket.socket(fileno=int(fd))
        for host, port, fd in data["sockets"]
    }
    return WorkerSetup(int(data["index"]), Path(data["hub"]), sockets)


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive a supervisor killed with SIGKILL (it would keep the
    ports): ask Linux for SIGKILL when the parent goes; like the crash it follows."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the prctl
        os._exit(1)


def bind_all(config: Config) -> dict[tuple[str, int], socket.socket]:
    """Every configured listener, bound here once; a failure names the listen key."""
    sockets: dict[tuple[str, int], socket.socket] = {}
    try:
        for name in SERVICES:
            address = config.listen.get(name)
            if address is None:
                continue
            try:
                sock = open_listener(address.host, address.port)
            except OSError as exc:
                raise _bind_error(name, str(address), exc) from None
            sockets[(address.host, address.port)] = sock
    except StartupError:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


def _addresses(
    config: Config, sockets: dict[tuple[str, int], socket.socket]
) -> list[tuple[str, str]]:
    """(service, bound address) for the banner, in service order."""
    found = []
    for name in SERVICES:
        address = config.listen.get(name)
        if address is not None:
            host, port = sockets[(address.host, address.port)].getsockname()[:2]
            found.append((name, f"{host}:{port}"))
    return found


class Supervisor:
    def __init__(self, config: Config, argv: Sequence[str], count: int) -> None:
        self.config = config
        self.argv = list(argv)  # how to run `postel serve` again, for the workers
        self.count = count
        self.sockets: dict[tuple[str, int], socket.socket] = {}
        self.hub = Hub(socket_path(config.data_dir), self._on_ready)
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.ready: dict[int, list[tuple[str, str]]] = {}
        self._all_ready = asyncio.Event()
        self._stopping = False
        self._failed = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    def _on_ready(self, index: int, started: list[tuple[str, str]]) -> None:
        again = index in self.ready
        self.ready[index] = started
        if again or self._all_ready.is_set():
            log.info("worker ready", extra={"fields": {"index": index}})
        if len(self.ready) >= self.count:
            self._all_ready.set()

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        fds = {key: sock.fileno() for key, sock in self.sockets.items()}
        env = dict(os.environ)
        env[WORKER_ENV] = json.dumps({
            "index": index,
            "parent": os.getpid(),
            "hub": str(self.hub.path),
            "sockets": [[host, port, fd] for (host, port), fd in fds.items()],
        })
        proc = await asyncio.create_subprocess_exec(
            *self.argv, env=env, pass_fds=tuple(fds.values()),
            # Its own process group: a terminal's Ctrl-C reaches the supervisor only,
            # which stops the workers itself (rather than restarting one that quit first).
            start_new_session=True,
        )
        self.procs[index] = proc
        log.info("worker started", extra={"fields": {"index": index, "pid": proc.pid}})
        return proc

    async def _watch(self, index: int, proc: asyncio.subprocess.Process) -> None:
        """Restart worker `index` whenever it dies, with a growing delay."""
        delay = self.config.server.worker_restart_delay
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            code = await proc.wait()
            if self._stopping:
                return
            if index not in self.ready:  # died before it was ready: a start-up failure
                log.error("worker exited before it was ready",
                          extra={"fields": {"index": index, "code": code}})
                self._failed.set()
                return
            if loop.time() - began >= STABLE_AFTER:
                delay = self.config.server.worker_restart_delay
            log.error("worker died; restarting it", extra={"fields": {
                "index": index, "pid": proc.pid, "code": code, "delay": delay}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.server.worker_restart_delay_max)
            if self._stopping:
                return
            proc = await self._spawn(index)

    async def run(self) -> None:
        config = self.config
        try:
            TlsContexts(config)  # a missing certificate is reported here, once
        except Exception as exc:
            raise StartupError(str(exc)) from None
        store = await asyncio.to_thread(open_store, config)
        try:
            removed = clean_tmp(config.tmp_dir)
            if removed:
                log.info("removed half-written files of a previous run",
                         extra={"fields": {"n": removed}})
            self.sockets = bind_all(config)
            try:
                await self.hub.start()
            except OSError as exc:
                for sock in self.sockets.values():
                    sock.close()
                raise StartupError(f"data_dir: cannot open the workers' hub socket "
                                   f"{self.hub.path}: {exc.strerror or exc}") from None
            try:
                await self._start_workers()
            except BaseException:
                await self._stop_workers()
                raise
            # Only once every worker is serving: a failed start creates no admin.
            first_admin = await asyncio.to_thread(ensure_first_admin, store, config)
        finally:
            store.close()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        started = _addresses(config, self.sockets) + [
            item for item in self.ready.get(0, []) if item[0] not in config.listen
        ]
        print(_banner(config, started, first_admin), flush=True)
        log.info("started", extra={"fields": {"workers": self.count,
                                              "listening": dict(started)}})
        await stop.wait()
        log.info("stopping: workers finish their work in flight")
        await self._stop_workers()
        log.info("stopped")

    async def _start_workers(self) -> None:
        for index in range(self.count):
            proc = await self._spawn(index)
            self._watchers.append(asyncio.create_task(self._watch(index, proc)))
        ready = asyncio.create_task(self._all_ready.wait())
        failed = asyncio.create_task(self._failed.wait())
        done, _ = await asyncio.wait(
            {ready, failed}, timeout=self.config.server.worker_start_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        ready.cancel()
        failed.cancel()
        if failed in done:
            raise WorkerFailed()
        if ready not in done:
            raise StartupError(
                f"server.workers: {self.count - len(self.ready)} of {self.count} workers "
                f"did not start within {self.config.server.worker_start_timeout:g} s")

    def _forward(self, sig: int) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def _stop_workers(self) -> None:
        self._stopping = True
        # New connections must not queue in a backlog nobody will accept from.
        for sock in self.sockets.values():
            sock.close()
        self._forward(signal.SIGTERM)
        waits = [proc.wait() for proc in self.procs.values()]
        if waits:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(w) for w in waits], timeout=SHUTDOWN_GRACE + STOP_MARGIN)
            if pending:
                self._forward(signal.SIGKILL)
                await asyncio.wait(pending, timeout=5)
        for task in self._watchers:
            task.cancel()
        await self.hub.close()


async def supervise(config: Config, argv: Sequence[str], count: int) -> None:
    await Supervisor(config, argv, count).run()


def worker_argv(args: Any) -> list[str]:
    """`postel serve` as this process was started, for re-running it as a worker."""
    argv = [sys.executable, "-m", "postel", "serve"]
    if args.config:
        argv += ["--config", str(args.config)]
    if args.dev:
        argv.append("--dev")
    return argv
