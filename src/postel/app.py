"""Composition root: builds the store, bus, TLS and servers; starts and stops them.

Only this module chooses a store backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import signal
from collections.abc import Callable

from postel.auth.limits import FailureLimiter
from postel.auth.passwords import hash_password
from postel.auth.service import Authenticator
from postel.config import SERVICES, Config
from postel.connlimits import ConnectionGate
from postel.context import BindError, Context, Service, StartupError
from postel.mailauth.dns import DnsResolver
from postel.store.api import Store
from postel.store.blobs import BlobStore, clean_tmp
from postel.store.bus import InProcessBus
from postel.store.model import Role
from postel.store.sql.migrate import upgrade
from postel.store.sql.store import SqlStore
from postel.store.sql.store import open_store as open_sql_store
from postel.tls import TlsContexts

__all__ = ["StartupError", "ensure_first_admin", "open_store", "serve", "service_factories"]

log = logging.getLogger("postel")

# Seconds that SIGTERM waits for transactions in flight before closing connections.
SHUTDOWN_GRACE = 30.0


def open_store(config: Config, *, migrate: bool = True) -> SqlStore:
    """The configured store (concrete: migrations and SQL-level tests need its engine);
    everything past the composition root sees it as an `api.Store`."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    blobs = BlobStore(config.blob_dir, config.tmp_dir)
    url = config.storage_url
    store = open_sql_store(url, blobs)
    if migrate:
        try:
            upgrade(store.engine)
        except Exception as exc:
            store.close()
            raise StartupError(f"storage.url: cannot open or migrate {url}: {exc}") from None
    return store


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


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> None:
    """Run every configured service until SIGTERM/SIGINT; SIGHUP reloads the certificate."""
    try:
        tls = TlsContexts(config)
    except Exception as exc:
        raise StartupError(str(exc)) from None
    store = await asyncio.to_thread(open_store, config)
    removed = clean_tmp(config.tmp_dir)
    if removed:
        log.info("removed half-written files of a previous run", extra={"fields": {"n": removed}})
    bus = InProcessBus()
    store.on_commit(bus.publish)
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
    context = Context(config, store, bus, tls, limiter, Authenticator(store, limiter),
                      DnsResolver(config.dns), gate)

    services: list[Service] = []
    started: list[tuple[str, str]] = []
    try:
        for factory in service_factories():
            service = factory(context)
            services.append(service)
            started += await service.start()
    except BindError as exc:
        for service in services:
            await service.shutdown(0)
        store.close()
        raise _bind_error(exc.service, exc.address, exc.error) from None
    # Only once every listener is bound: a start that fails must not create an admin
    # whose password nobody saw.
    first_admin = await asyncio.to_thread(ensure_first_admin, store, config)

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
    print(_banner(config, started, first_admin), flush=True)

    log.info("started", extra={"fields": {"listening": dict(started)}})
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("stopping: finishing work in flight")
    await asyncio.gather(*(service.shutdown(SHUTDOWN_GRACE) for service in services))
    store.close()
    log.info("stopped")
