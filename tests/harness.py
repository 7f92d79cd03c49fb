"""A real Postel process on free loopback ports, for tests that talk over real sockets.

Tests drive it with real clients (smtplib, aiosmtplib, poplib, imaplib, ...) and may open
the same store in-process to check what was stored.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from postel.auth.passwords import hash_password
from postel.config import SERVICES, load_config
from postel.store.model import Role
from postel.store.sql.store import SqlStore

PASSWORD = "correct horse battery"
DOMAIN = "example.test"
HOSTNAME = "mail.example.test"

_HASH_CACHE: dict[str, str] = {}

# POSTEL_TEST_BACKEND=postgres runs every server of the suite on a fresh PostgreSQL
# database (127.0.0.1:5432, trust auth) instead of the embedded SQLite default, so the
# whole suite can be run on both backends: `POSTEL_TEST_BACKEND=postgres make test`.
BACKEND = os.environ.get("POSTEL_TEST_BACKEND", "sqlite")
PG_USERS = ("root", "postgres")


def _pg_admin() -> tuple[Any, str]:
    import psycopg

    errors = []
    for user in PG_USERS:
        try:
            conn = psycopg.connect(host="127.0.0.1", port=5432, user=user, dbname="postgres",
                                   autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            errors.append(f"{user}: {str(exc).strip()}")
            continue
        return conn, user
    raise RuntimeError(
        "POSTEL_TEST_BACKEND=postgres, but PostgreSQL is not reachable at 127.0.0.1:5432 "
        f"(start it with `pg_ctlcluster 15 main start`): {'; '.join(errors)}")


def fresh_pg_database() -> str:
    """A new empty database for one test server; `drop_pg_database` removes it."""
    from secrets import token_hex

    conn, user = _pg_admin()
    name = f"postel_it_{token_hex(6)}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{user}@127.0.0.1:5432/{name}"


def drop_pg_database(url: str) -> None:
    conn, _ = _pg_admin()
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def _port_slice() -> range:
    """The ports this test process hands out.

    Below the kernel's ephemeral range (net.ipv4.ip_local_port_range), so a port chosen
    here is never given to an outgoing connection in the moment between choosing it and the
    server binding it (which is what made "port already in use" flaky under load). Each
    pytest-xdist worker takes its own slice, so two workers never hand out the same port.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first, last = 10000, max(10000 + 2000, low)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = (last - first) // max(workers, 1)
    return range(first + worker * size, first + (worker + 1) * size)


_PORTS = _port_slice()
# Start at a random place in the slice: another pytest run on the same machine (a second
# checkout) then rarely walks the same ports at the same time.
_next_port = random.randrange(len(_PORTS))


def free_ports(count: int) -> list[int]:
    """`count` loopback ports that are free now, taken in turn from this process's slice."""
    global _next_port
    ports: list[int] = []
    for _ in range(len(_PORTS)):
        port = _PORTS[_next_port % len(_PORTS)]
        _next_port += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (another run, or a server still closing): skip it
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} free ports in {_PORTS}")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    """Running, not a zombie (a SIGKILLed supervisor's workers are reaped by init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PostelServer:
    def __init__(
        self,
        root: Path,
        *,
        extra_config: str = "",
        storage_url: str | None = None,
        services: tuple[str, ...] = SERVICES,
        workers: int = 1,
    ) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.config_path = root / "postel.toml"
        self.log_path = root / "postel.log"
        self.ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        listen = "\n".join(
            f'{name} = "127.0.0.1:{port}"' if name in services else f'{name} = ""'
            for name, port in self.ports.items()
        )
        self._own_database: str | None = None
        if storage_url is None and BACKEND == "postgres":
            storage_url = self._own_database = fresh_pg_database()
        storage = f'[storage]\nurl = "{storage_url}"\n' if storage_url else ""
        # One process by default, for speed (`postel serve` defaults to one per core);
        # a test that writes its own [server] section sets workers there.
        if "[server]" in extra_config:
            server, self.workers = "", 0  # the test's own section: count unknown here
        else:
            server, self.workers = f"[server]\nworkers = {workers}\n", workers
        self.config_path.write_text(
            f'hostname = "{HOSTNAME}"\ndata_dir = "{self.data_dir}"\n'
            f"{extra_config}\n{server}[listen]\n{listen}\n{storage}"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._store: SqlStore | None = None
        self.config = load_config(self.config_path)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        if timeout is None:
            # Several workers each import everything before the banner: slower on a busy
            # machine. Only a bound for a server that never comes up.
            timeout = 30.0 if self.workers == 1 else 120.0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postel", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        # Ready means every listener is bound and signal handlers are installed, which the
        # server announces with its "is serving" banner (written after both).
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postel exited:\n{self.log_path.read_text()}")
            if b" is serving " in self.log_path.read_bytes()[self._log_offset :]:
                return
            time.sleep(0.02)
        raise RuntimeError(f"postel did not start:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        if self.process is None:
            return 0
        workers = _children(self.process.pid)  # with server.workers > 1
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        # Workers die with the supervisor (after a SIGKILL, a moment later): wait, so a
        # restart finds the ports free.
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._own_database is not None:
            drop_pg_database(self._own_database)
            self._own_database = None

    def reload_config(self) -> None:
        """Read postel.toml again after a test edited it (the next start serves it)."""
        if self._store is not None:
            self._store.close()
            self._store = None
        self.config = load_config(self.config_path)

    # -- access -------------------------------------------------------------------------

    @property
    def store(self) -> SqlStore:
        if self._store is None:
            from postel.app import open_store

            # Migrates when needed, so tests can add accounts before the server starts.
            self._store = open_store(self.config)
        return self._store

    def port(self, service: str) -> int:
        return self.ports[service]

    @property
    def cert_path(self) -> Path:
        return self.data_dir / "tls" / "selfsigned.crt"

    def client_tls(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        context = ssl.create_default_context(cafile=str(self.cert_path))
        context.check_hostname = False
        return context

    def add_domain(self, name: str = DOMAIN) -> None:
        if self.store.directory.get_domain(name) is None:
            self.store.directory.add_domain(name)

    def add_user(
        self, email: str, password: str = PASSWORD, *, role: Role = Role.USER, **values: Any
    ) -> None:
        self.add_domain(email.rpartition("@")[2])
        if password not in _HASH_CACHE:
            _HASH_CACHE[password] = hash_password(password)
        self.store.directory.add_account(email, _HASH_CACHE[password], role=role, **values)

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "postel", *args, "--config", str(self.config_path)],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def inbox(self, email: str) -> list[bytes]:
        """Every message body in a user's INBOX, in UID order."""
        account = self.store.directory.get_account(email)
        assert account is not None
        box = self.store.mail.get_mailbox(account.id, "INBOX")
        assert box is not None
        return [
            self.store.blobs.path(m.blob_sha256).read_bytes()
            for m in self.store.mail.list_messages(box.id)
        ]
