"""Composition root: builds the store, bus, TLS and servers; starts and stops them.

Only this module chooses a store backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from postel.auth import passwords
from postel.auth.cache import CredentialsCache
from postel.auth.limits import FailureLimiter
from postel.auth.passwords import hash_password
from postel.auth.service import Authenticator
from postel.config import SERVICES, Config, StorageConfig
from postel.connlimits import ConnectionGate, adopt_listeners
from postel.context import BindError, Context, Service, StartupError
from postel.mailauth.dns import DnsResolver
from postel.store.api import Store
from postel.store.blobs import BlobStore, clean_tmp
from postel.store.bus import Bus, InProcessBus, LocalLocks, Locks
from postel.store.hub import HubBus, publish_once, socket_path
from postel.store.model import Change, QueueChanged, Role
from postel.store.sql import copy as store_copy
from postel.store.sql.copy import TableCopy
from postel.store.sql.migrate import upgrade
from postel.store.sql.pgblobs import PgBlobStore
from postel.store.sql.pgbus import PgHintRelay
from postel.store.sql.pglocks import PgLocks
from postel.store.sql.store import SqlStore
from postel.store.sql.store import open_store as open_sql_store
from postel.tls import TlsContexts

__all__ = [
    "StartupError", "WorkerSetup", "configure_passwords", "ensure_first_admin",
    "join_running_server", "open_store", "serve", "serve_worker", "service_factories",
]

log = logging.getLogger("postel")

# Seconds that SIGTERM waits for transactions in flight before closing connections.
SHUTDOWN_GRACE = 30.0


def open_store(config: Config, *, migrate: bool = True, shared: bool = False) -> SqlStore:
    """The configured store (concrete: migrations and SQL-level tests need its engine);
    everything past the composition root sees it as an `api.Store`. `shared`: sibling
    worker processes write the same blob folder (cross-process pins for the collector)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    blobs = BlobStore(config.blob_dir, config.tmp_dir, shared=shared)
    url = config.storage_url
    store = open_sql_store(url, blobs,
                           bodies_in_database=config.storage.bodies == "database")
    if migrate:
        try:
            upgrade(store.engine)
        except Exception as exc:
            store.close()
            raise StartupError(f"storage.url: cannot open or migrate {url}: {exc}") from None
    return store


def join_running_server(store: SqlStore, config: Config) -> None:
    """For the command line: its commits reach a running multi-worker server's sessions
    through the hub (see store/hub.py:publish_once)."""
    path = socket_path(config.data_dir)
    store.on_commit(lambda changes: publish_once(path, changes))


def configure_passwords(config: Config) -> None:
    """New hashes (and the rehash at login) use [auth]'s Argon2id parameters."""
    auth = config.auth
    passwords.configure(auth.argon2_time_cost, auth.argon2_memory_kib, auth.argon2_parallelism)


def ensure_first_admin(store: Store, config: Config) -> tuple[str, str] | None:
    """On an empty store, create admin@<hostname> with a random password and return it."""
    if store.directory.list_accounts():
        return None
    domain = config.hostname
    if store.directory.get_domain(domain) is None:
        store.directory.add_domain(domain)
    password = secrets.token_urlsafe(12)
    email = f"admin@{domain}"
    store.directory.add_account(
        email, hash_password(password), role=Role.ADMIN, display_name="Admin"
    )
    return email, password


def _bind_error(service: str, address: str, exc: OSError) -> StartupError:
    port = address.rsplit(":", 1)[-1]
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StartupError(
            f"listen.{service}: cannot bind {address}: permission denied. Ports below 1024 "
            "need privileges. Either run `postel serve --dev` (or `make run-dev`) for high "
            "ports on 127.0.0.1, set other ports under [listen] in the config, run as root, "
            "or allow this Python to bind low ports: "
            "sudo setcap 'cap_net_bind_service=+ep' \"$(readlink -f .venv/bin/python)\""
        )
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"listen.{service}: cannot bind {address}: port {port} is already in use "
            f"(another mail server? see `ss -ltnp 'sport = :{port}'`), or set another "
            f"address under [listen] {service} = ..."
        )
    return StartupError(f"listen.{service}: cannot bind {address}: {exc.strerror}")


def _banner(
    config: Config, started: list[tuple[str, str]], first_admin: tuple[str, str] | None
) -> str:
    """What `make run` shows: where each service listens, and the first admin's login.
    Written in one piece: supervisors and tests take the first line as "ready"."""
    lines = [f"Postel {config.hostname} is serving (data in {config.data_dir.resolve()}):"]
    lines += [f"  {name:<12} {address}" for name, address in started]
    running = {name for name, _ in started}
    idle = [s for s in SERVICES if config.listen.get(s) is not None and s not in running]
    if idle:
        lines.append(f"  (not built yet, not started: {', '.join(idle)})")
    if first_admin is not None:
        lines.append(f"First admin: {first_admin[0]}  password: {first_admin[1]}")
        lines.append("  (shown once; change it with `postel user passwd`)")
    return "\n".join(lines) + "\n"


def service_factories() -> list[Callable[[Context], Service]]:
    """Every protocol server, in start order. A new protocol adds one line here."""
    from postel.imap.server import ImapService
    from postel.pop3.server import Pop3Service
    from postel.queue.worker import QueueService
    from postel.smtp.server import SmtpService
    from postel.web.service import WebService

    return [SmtpService, ImapService, Pop3Service, WebService, QueueService]


@dataclass(frozen=True)
class WorkerSetup:
    """What the supervisor hands a worker process (`supervisor.py`, through POSTEL_WORKER)."""

    index: int
    hub: Path  # the hub's Unix-domain socket
    sockets: dict[tuple[str, int], socket.socket]  # listening sockets by configured address


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> None:
    """One process runs every configured service until SIGTERM/SIGINT; SIGHUP reloads
    the certificate. (`server.workers` > 1: `supervisor.py` runs workers instead.)"""
    try:
        tls = TlsContexts(config)
    except Exception as exc:
        raise StartupError(str(exc)) from None
    configure_passwords(config)
    store = await asyncio.to_thread(open_store, config)
    removed = clean_tmp(config.tmp_dir)
    if removed:
        log.info("removed half-written files of a previous run", extra={"fields": {"n": removed}})
    bus = InProcessBus()
    store.on_commit(bus.publish)
    relay = _hint_relay(store, bus.publish, bus.resync)
    locks = _shared_locks(store)
    context = _context(config, store, bus, tls, locks=locks)
    started, services = await _start(context, service_factories(), store)
    # Only once every listener is bound: a start that fails must not create an admin
    # whose password nobody saw.
    first_admin = await asyncio.to_thread(ensure_first_admin, store, config)
    stop = _signals(tls)
    print(_banner(config, started, first_admin), flush=True)
    log.info("started", extra={"fields": {"listening": dict(started)}})
    if ready is not None:
        ready.set()
    await stop.wait()
    await _stop(services, store, relay)


async def serve_worker(config: Config, setup: WorkerSetup) -> None:
    """One worker of several: the sockets are the supervisor's, hints and locks go
    through its hub; the supervisor migrated the store, prints the banner and creates
    the first admin. Only worker 0 runs the outbound queue, so each queue row has one
    runner (and its start-up release of claims is only its own)."""
    adopt_listeners(setup.sockets)
    try:
        tls = TlsContexts(config)
    except Exception as exc:
        raise StartupError(str(exc)) from None
    configure_passwords(config)
    store = await asyncio.to_thread(open_store, config, migrate=False, shared=True)
    hub = HubBus(setup.hub, setup.index)
    try:
        await hub.start()
    except TimeoutError:
        store.close()
        raise StartupError(f"cannot reach the supervisor's hub at {setup.hub}") from None
    store.on_commit(hub.publish)
    # Other hosts' hints (PostgreSQL): every worker listens, for its own sessions only.
    relay = _hint_relay(store, hub.local.publish, hub.local.resync)
    # On PostgreSQL the locks span every host (and so every worker); else the hub's.
    locks = _shared_locks(store)
    context = _context(config, store, hub, tls, locks=locks or hub, worker=setup.index)
    factories = service_factories()
    if setup.index != 0:
        factories = [f for f in factories if f.__name__ != "QueueService"]
    started, services = await _start(context, factories, store)
    for service in services:
        wake = getattr(service, "wake", None)
        if callable(wake):  # the queue: other workers' rows wake it at once too
            hub.on_remote(_waker(wake))
    stop = _signals(tls)
    hub.announce_ready(started)
    log.info("worker started", extra={"fields": {"pid": os.getpid()}})
    await stop.wait()
    await _stop(services, store, relay)
    await hub.close()


def _waker(wake: Callable[[], None]) -> Callable[[Sequence[Change]], None]:
    def on_remote(changes: Sequence[Change]) -> None:
        if any(isinstance(change, QueueChanged) for change in changes):
            wake()

    return on_remote


def _context(
    config: Config, store: SqlStore, bus: Bus, tls: TlsContexts, *,
    locks: Locks | None = None, worker: int = 0,
) -> Context:
    limiter = FailureLimiter(
        config.auth.max_failures_per_ip,
        config.auth.max_failures_per_account,
        config.auth.failure_window,
        base_delay=config.auth.failure_delay,
        max_delay=config.auth.failure_delay_max,
        failures=store.auth_failures,
    )
    connections = config.connections
    gate = ConnectionGate(
        connections.max_total, connections.handshake_timeout,
        max_pending_output=connections.max_pending_output,
        send_timeout=connections.send_timeout,
    )
    log.info("connection limit", extra={"fields": {"max_total": gate.max_total}})
    cache = CredentialsCache(config.auth.credentials_cache_ttl,
                             config.auth.credentials_cache_size)
    # Bus-wide: a password change, disable or removal of any account empties its entries,
    # whichever worker or host made it (remote batches pass through the local bus too).
    bus.listen(cache.forget_changes)
    return Context(config, store, bus, tls, limiter, Authenticator(store, limiter, cache),
                   DnsResolver(config.dns), gate, locks or LocalLocks(), worker)


async def _start(
    context: Context, factories: list[Callable[[Context], Service]], store: SqlStore
) -> tuple[list[tuple[str, str]], list[Service]]:
    services: list[Service] = []
    started: list[tuple[str, str]] = []
    try:
        for factory in factories:
            service = factory(context)
            services.append(service)
            started += await service.start()
    except BindError as exc:
        for service in services:
            await service.shutdown(0)
        store.close()
        raise _bind_error(exc.service, exc.address, exc.error) from None
    return started, services


def _signals(tls: TlsContexts) -> asyncio.Event:
    """SIGTERM/SIGINT set the returned event; SIGHUP reloads the certificate."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def reload_tls() -> None:
        try:
            tls.reload()
        except Exception as exc:
            log.error("TLS reload failed; keeping the old certificate: %s", exc)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload_tls)
    return stop


async def _stop(services: list[Service], store: SqlStore, relay: PgHintRelay | None) -> None:
    log.info("stopping: finishing work in flight")
    await asyncio.gather(*(service.shutdown(SHUTDOWN_GRACE) for service in services))
    if relay is not None:
        await asyncio.to_thread(relay.stop)
    store.close()
    log.info("stopped")


def _conninfo(store: SqlStore) -> str:
    """The store's PostgreSQL URL for plain psycopg connections (LISTEN, advisory locks)."""
    return store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _shared_locks(store: SqlStore) -> PgLocks | None:
    """On PostgreSQL, POP3's maildrop locks are advisory locks every host shares
    (store/sql/pglocks.py). None on SQLite: one host's process or hub holds them."""
    if store.engine.dialect.name != "postgresql":
        return None
    return PgLocks(_conninfo(store))


def _hint_relay(
    store: SqlStore, deliver: Callable[[list[Change]], None], resync: Callable[[], None],
) -> PgHintRelay | None:
    """On PostgreSQL the hints travel between hosts too (store/sql/pgbus.py): every
    store's commits send them, and this relay hands other processes' to this host's bus.
    None on SQLite (one host)."""
    if store.engine.dialect.name != "postgresql":
        return None
    relay = PgHintRelay(_conninfo(store), deliver, resync)
    relay.start()
    return relay


# -- postel migrate --to --------------------------------------------------------------


def migrate_storage(
    config: Config, to_url: str, *, progress: Callable[[str, int, int], None],
    batch: int = 1000,
) -> list[TableCopy]:
    """Copy this installation's store into the PostgreSQL database at `to_url`, keeping
    every id (store/sql/copy.py says why and how it resumes), then verify it table by table
    and check that every body a row names is in the blob directory.

    The server must be stopped: rows written during the copy might be missed.
    """
    if not to_url.startswith(("postgresql:", "postgresql+psycopg:")):
        raise StartupError(f"migrate --to: {to_url!r} is not a postgresql:// URL")
    if config.storage_url.startswith("postgresql"):
        raise StartupError("migrate --to: this installation already stores in PostgreSQL")
    marker = config.data_dir / "migrate-to.json"
    target_config = dataclasses.replace(config, storage=StorageConfig(url=to_url))
    source = open_store(config)
    try:
        target = open_store(target_config)
    except StartupError:
        source.close()
        raise
    try:
        resuming = marker.exists() and json.loads(marker.read_text()).get("to") == to_url
        if not resuming and not store_copy.target_is_empty(target.engine):
            raise StartupError(
                "migrate --to: the target database already holds data; give an empty "
                "database (a copy into it was not started from this installation)")
        marker.write_text(json.dumps({"to": to_url}))
        for table in store_copy.tables():
            store_copy.copy_table(source.engine, target.engine, table, batch=batch,
                            progress=progress)
        store_copy.reset_sequences(target.engine)
        reports = store_copy.verify(source.engine, target.engine, progress)
        names = store_copy.referenced_blobs(source.engine)
        if isinstance(target.blobs, PgBlobStore):
            missing = store_copy.copy_bodies(names, target.blobs, progress)
        else:  # bodies = "files": the hosts share this blob directory
            missing = [sha for sha in names if not target.blobs.exists(sha)]
        if missing:
            raise StartupError(f"migrate --to: {len(missing)} message bodies are missing "
                               f"from {config.blob_dir} (first: {sorted(missing)[0]})")
        if all(report.matches for report in reports):
            marker.unlink(missing_ok=True)
        return reports
    finally:
        target.close()
        source.close()
