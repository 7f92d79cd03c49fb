"""Connections counted at accept, before any TLS handshake or byte of protocol.

One address must not be able to take every file descriptor (issue 15, item 3): a slow
TLS handshake or a trickled HTTP header holds a descriptor as surely as a logged-in
session. So every listener counts a connection the moment it is accepted, per address and
in total, and a connection must prove itself (finish its handshake, send its request
headers) within `handshake_timeout` seconds or be cut.

Every listener, mail and web, accepts through an `AcceptLoop`, which takes the slot before
the connection is handed to asyncio (and its TLS handshake, bounded in time, starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from postel.net import in_networks
from postel.proxyproto import ProxyHeaderError, ProxyHeaderParser

log = logging.getLogger("postel.net")

# Descriptors kept free for what is not a client connection: the database, blobs being
# written, spool files, the log, outbound deliveries.
FD_RESERVE = 128


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def default_max_connections() -> int:
    """Connections for all listeners together: below the fd limit, with a reserve."""
    return max(raise_fd_limit() - FD_RESERVE, 16)


class Slot:
    """One admitted connection's place in the gate; released once, however it ends."""

    def __init__(self, gate: ConnectionGate, key: tuple[str, str]) -> None:
        self._gate: ConnectionGate | None = gate
        self._key = key

    @property
    def ip(self) -> str:
        """The client's address: the socket's, or the one a trusted proxy passed on."""
        return self._key[1]

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._release(self._key)


class ConnectionGate:
    """Counts live client connections: per (protocol, address) and for the process."""

    def __init__(
        self, max_total: int = 0, handshake_timeout: float = 10.0, *,
        max_pending_output: int = 1024 * 1024, send_timeout: float = 120.0,
    ) -> None:
        self.max_total = max_total or default_max_connections()
        self.handshake_timeout = handshake_timeout
        # What every admitted connection may leave unread ([connections]); kept here, the
        # one object each listener has from the config's [connections].
        self.max_pending_output = max_pending_output
        self.send_timeout = send_timeout
        self.total = 0
        self._per_ip: Counter[tuple[str, str]] = Counter()

    def admit(self, protocol: str, ip: str, max_per_ip: int) -> Slot | None:
        """A slot for a new connection; None (nothing taken) past either cap."""
        key = (protocol, ip)
        if self.total >= self.max_total or self._per_ip.get(key, 0) >= max_per_ip:
            log.info("connection refused at accept", extra={"fields": {
                "protocol": protocol, "ip": ip, "total": self.total}})
            return None
        self.total += 1
        self._per_ip[key] += 1
        return Slot(self, key)

    def _release(self, key: tuple[str, str]) -> None:
        self.total -= 1
        self._per_ip[key] -= 1
        if self._per_ip[key] <= 0:
            del self._per_ip[key]


Connect = Callable[[socket.socket, Slot], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ProxyPolicy:
    """A listener whose connections begin with a PROXY protocol header, accepted only
    from `trusted` networks and only within `timeout` seconds."""

    trusted: tuple[str, ...]
    timeout: float


async def read_proxy_header(sock: socket.socket, timeout: float) -> str | None:
    """The client address in the PROXY header at the start of `sock` (None: LOCAL or
    UNKNOWN, keep the socket's). Reads exactly the header, never a byte of what follows.
    Raises ProxyHeaderError (malformed, cut short) or TimeoutError."""
    loop = asyncio.get_running_loop()
    parser = ProxyHeaderParser()

    async def read() -> None:
        while parser.result is None:
            data = await loop.sock_recv(sock, parser.wanted())
            if not data:
                raise ProxyHeaderError("connection closed inside the PROXY header")
            parser.feed(data)

    await asyncio.wait_for(read(), timeout)
    assert parser.result is not None
    source = parser.result.address
    return None if source is None else source[0]


class AcceptLoop:
    """Accepts connections on one listening socket itself (uvloop accepts in C, where
    no gate could look), so each is counted before asyncio or TLS spends anything on
    it. A refused one gets `refusal` (the protocol's own "too many connections", on
    plaintext ports) and is closed; an admitted one goes to `connect`, which owns the
    slot and releases it when the connection ends. Shaped like asyncio.Server for the
    callers: `sockets`, `close()`, `wait_closed()`."""

    def __init__(
        self,
        sock: socket.socket,
        gate: ConnectionGate,
        protocol: str,
        max_per_ip: int,
        connect: Connect,
        *,
        refusal: bytes = b"",
        proxy: ProxyPolicy | None = None,
    ) -> None:
        self.sockets = [sock]
        self._proxy = proxy
        self._gate, self._protocol, self._max_per_ip = gate, protocol, max_per_ip
        self._connect, self._refusal = connect, refusal
        self._connections: set[asyncio.Task[None]] = set()
        self._task = asyncio.get_running_loop().create_task(self._accept_forever())

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        listening = self.sockets[0]
        while True:
            try:
                conn, address = await loop.sock_accept(listening)
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    continue  # the client gave up before we accepted (ECONNABORTED...)
                # Out of descriptors despite the cap: let connections end, then go on.
                log.warning("accept failed", extra={"fields": {"error": str(exc)}})
                await asyncio.sleep(0.1)
                continue
            ip = str(address[0]) if isinstance(address, tuple) else "unknown"
            if self._proxy is not None:
                self._track(loop.create_task(self._via_proxy(conn, ip, self._proxy)))
                continue
            slot = self._gate.admit(self._protocol, ip, self._max_per_ip)
            if slot is None:
                self._refuse(conn)
                continue
            self._track(loop.create_task(self._connect(conn, slot)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _via_proxy(self, conn: socket.socket, proxy_ip: str, proxy: ProxyPolicy) -> None:
        """A connection on a PROXY protocol listener: only a trusted proxy may speak, and
        its header must be well-formed; then it is counted under the client's address.
        (A proxy's connections are many clients: the per-address cap applies to each.)"""
        if not in_networks(proxy_ip, proxy.trusted):
            log.info("PROXY header from an untrusted address; closed", extra={"fields": {
                "protocol": self._protocol, "ip": proxy_ip}})
            conn.close()
            return
        try:
            client = await read_proxy_header(conn, proxy.timeout)
        except (ProxyHeaderError, TimeoutError, OSError) as exc:
            log.info("bad PROXY header; closed", extra={"fields": {
                "protocol": self._protocol, "ip": proxy_ip, "error": str(exc) or "timeout"}})
            conn.close()
            return
        slot = self._gate.admit(self._protocol, client or proxy_ip, self._max_per_ip)
        if slot is None:
            self._refuse(conn)
            return
        await self._connect(conn, slot)

    def _refuse(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            if self._refusal:
                # A fresh socket's send buffer is empty: one short reply always fits.
                conn.send(self._refusal)
                conn.shutdown(socket.SHUT_WR)
        conn.close()

    def close(self) -> None:
        self._task.cancel()
        self.sockets[0].close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# Listening sockets a worker inherited from the supervisor, by their configured address:
# the supervisor binds every port once (one clear "port in use" error, before any worker
# starts) and the workers accept on the same sockets (pre-fork accept).
_INHERITED: dict[tuple[str, int], socket.socket] = {}


def adopt_listeners(sockets: dict[tuple[str, int], socket.socket]) -> None:
    """From now on `open_listener` hands out these sockets instead of binding."""
    for sock in sockets.values():
        sock.setblocking(False)
    _INHERITED.update(sockets)


def open_listener(host: str, port: int, backlog: int = 512) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (IPv6 when `host` has a colon); in a
    worker, the one the supervisor bound for that address."""
    inherited = _INHERITED.get((host, port))
    if inherited is not None:
        return inherited
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
