"""The asyncio plumbing every protocol server shares: listeners, connection limits, closing.

SMTP, POP3 and IMAP differ in their sessions, not in how a TCP connection is accepted,
counted per IP address, timed out, closed (with a bounded TLS goodbye) or drained at
shutdown; that part lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from postel.connlimits import AcceptLoop, ConnectionGate, ProxyPolicy, Slot, open_listener
from postel.context import BindError, Context
from postel.sessionlimits import SessionClock
from postel.starttls import upgrade_to_tls

log = logging.getLogger("postel.net")

READ_SIZE = 64 * 1024
# Seconds to wait for a client's TLS close_notify before cutting the connection.
CLOSE_TIMEOUT = 5.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]


class PeerGone(ConnectionError):
    """The client went away while we were writing to it: its business, not a server error
    (logged as one info line, never with a traceback)."""


async def write_all(
    writer: asyncio.StreamWriter, data: bytes, send_timeout: float | None = None
) -> None:
    """Write and drain; a transport the peer already closed raises PeerGone. (uvloop
    raises RuntimeError "unable to perform operation on <TCPTransport closed=True>" for a
    write to a closed transport, the default loop ConnectionResetError or nothing.)

    drain() waits only while more than the transport's high-water mark (see
    `bound_output`) is unsent; a client that reads none of it for `send_timeout` seconds
    is cut off (issue 15 item 3: FETCH 1:* BODY[] and never read held a session for
    ever), so neither its memory nor its slot is held."""
    if writer.transport.is_closing():
        raise PeerGone("the transport is closed")
    try:
        writer.write(data)
        transport = writer.transport
        if not send_timeout or transport.get_write_buffer_size() <= (
            transport.get_write_buffer_limits()[1]
        ):
            # Not over the mark: drain() returns without yielding to the loop. It must:
            # after a STARTTLS reply nothing may read the client's ClientHello into the
            # plaintext buffer before upgrade_to_tls pauses reading (a task here did).
            await writer.drain()
            return
        try:
            await asyncio.wait_for(writer.drain(), send_timeout)
        except TimeoutError:
            log.info("client stopped reading; cut off", extra={"fields": {
                "pending": writer.transport.get_write_buffer_size()}})
            writer.transport.abort()
            raise PeerGone("the client stopped reading") from None
    except RuntimeError as exc:
        if writer.transport.is_closing():
            raise PeerGone(str(exc)) from None
        raise


class StreamIO:
    """Bytes out over an asyncio stream, STARTTLS, and a close that cannot hang."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls_context: Callable[[], ssl.SSLContext],
        handshake_timeout: float,
        send_timeout: float | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._tls_context = tls_context
        self._handshake_timeout = handshake_timeout
        self._send_timeout = send_timeout

    async def send(self, data: bytes) -> None:
        await write_all(self.writer, data, self._send_timeout)

    async def start_tls(self) -> None:
        await upgrade_to_tls(
            self.reader, self.writer, self._tls_context(), self._handshake_timeout
        )

    def close(self) -> None:
        # close() flushes the last reply and starts the TLS goodbye; a read in progress
        # returns only when the client answers it. Cut the connection if it does not, so
        # a silent client cannot hold a session (or a graceful shutdown) for 30 s.
        self.writer.close()
        transport = self.writer.transport
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.abort)


class Stoppable(Protocol):
    """A session as shutdown sees it."""

    @property
    def busy(self) -> bool: ...

    async def request_shutdown(self) -> None: ...


class LineSession(Stoppable, Protocol):
    """A session fed raw bytes (SMTP, POP3): greet, feed until closing, end."""

    closing: bool

    async def greet(self) -> None: ...

    async def feed(self, data: bytes) -> None: ...

    def end(self) -> None: ...


@dataclass(frozen=True)
class Goodbyes:
    """What a protocol says when the server, not the session, ends a connection."""

    too_many_connections: bytes  # sent on plaintext ports; TLS ports close at accept
    internal_error: bytes
    idle_timeout: bytes = b""  # b"": close silently (POP3, RFC 1939 3)
    session_over: bytes = b""  # max_session_time reached


def bound_output(writer: asyncio.StreamWriter, limit: int) -> None:
    """Let at most `limit` bytes of replies wait unsent before writers wait in drain()
    (the default 64 KiB is kept for 0)."""
    if limit:
        writer.transport.set_write_buffer_limits(high=limit)


def peer_ip(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if peer else "unknown"


class TcpServer:
    """Listeners of one protocol, the connections they carry, and a graceful stop."""

    # Connections per address are counted per protocol, all its listeners together.
    protocol = "tcp"

    def __init__(
        self, tls_context: Callable[[], ssl.SSLContext], gate: ConnectionGate
    ) -> None:
        self.tls_context = tls_context
        self.gate = gate
        self.sessions: dict[Stoppable, asyncio.StreamWriter] = {}
        self.stopping = False
        self._servers: list[AcceptLoop] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def listen(
        self,
        host: str,
        port: int,
        *,
        implicit_tls: bool,
        handler: Handler,
        max_per_ip: int,
        refusal: bytes,
        proxy: ProxyPolicy | None = None,
    ) -> AcceptLoop:
        """Serve `handler` on host:port. Each connection is counted at accept, before its
        TLS handshake (an unfinished handshake holds a descriptor too), and refused past
        `max_per_ip` from its address or the gate's total: with `refusal` on a plaintext
        port, by closing on an implicit-TLS one (no handshake is spent on it)."""
        loop = asyncio.get_running_loop()
        handshake_timeout = self.gate.handshake_timeout

        async def connect(conn: socket.socket, slot: Slot) -> None:
            async def on_connect(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> None:
                task = asyncio.current_task()
                assert task is not None
                self._tasks.add(task)
                bound_output(writer, self.gate.max_pending_output)
                try:
                    await handler(reader, writer, slot.ip)
                finally:
                    slot.release()
                    self._tasks.discard(task)
                    await close_writer(writer)

            protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(READ_SIZE), on_connect)
            try:
                # RFC 8314 3.3: on implicit-TLS ports the handshake comes first, and
                # `on_connect` runs only once it succeeded.
                await loop.connect_accepted_socket(
                    lambda: protocol, conn,
                    ssl=self.tls_context() if implicit_tls else None,
                    ssl_handshake_timeout=handshake_timeout if implicit_tls else None,
                )
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                # Anyone can fail a handshake before saying a word: one line, no traceback.
                log.info("TLS handshake failed", extra={"fields": {"error": str(exc)}})
                slot.release()
                conn.close()

        server = AcceptLoop(
            open_listener(host, port), self.gate, self.protocol, max_per_ip, connect,
            refusal=b"" if implicit_tls else refusal, proxy=proxy,
        )
        self._servers.append(server)
        return server

    async def run_session(
        self,
        session: LineSession,
        io: StreamIO,
        reader: asyncio.StreamReader,
        ip: str,
        *,
        idle_timeout: float,
        goodbyes: Goodbyes,
        max_session_time: float = 0.0,
    ) -> None:
        """Greet, then feed what the client sends until the session closes, the client
        goes away or stays silent for `idle_timeout` seconds. A bug in the session costs
        this connection only; the client gets the protocol's own error, never a traceback.
        After `max_session_time` seconds in all the session is ended with `session_over`."""
        clock = SessionClock(max_session_time)
        try:
            with self.tracking(session, io.writer):
                await session.greet()
                while not session.closing:
                    session_ends = clock.ends_first(idle_timeout)
                    try:
                        data = await asyncio.wait_for(
                            reader.read(READ_SIZE), clock.bound(idle_timeout)
                        )
                    except TimeoutError:
                        if session_ends:
                            await self._session_over(io, ip, goodbyes)
                            break
                        log.info("idle timeout", extra={"fields": {"ip": ip}})
                        if goodbyes.idle_timeout:
                            await io.send(goodbyes.idle_timeout)
                        break
                    if not data:
                        break
                    await session.feed(data)
                    if clock.over() and not session.closing:
                        await self._session_over(io, ip, goodbyes)
                        break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.info("connection ended", extra={"fields": {"ip": ip, "error": str(exc)}})
        except Exception:
            log.exception("session failed", extra={"fields": {"ip": ip}})
            with contextlib.suppress(Exception):
                await io.send(goodbyes.internal_error)
        finally:
            session.end()

    async def _session_over(self, io: StreamIO, ip: str, goodbyes: Goodbyes) -> None:
        log.info("session time limit", extra={"fields": {"ip": ip}})
        await io.send(goodbyes.session_over)

    @contextlib.contextmanager
    def tracking(self, session: Stoppable, writer: asyncio.StreamWriter) -> Iterator[None]:
        """Make a session known to shutdown while it runs."""
        self.sessions[session] = writer
        try:
            yield
        finally:
            self.sessions.pop(session, None)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; tell each session (idle ones close now, busy ones after their
        work in flight), then wait up to `grace` seconds before cancelling the rest."""
        self.stopping = True
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.request_shutdown()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except Exception:
        writer.transport.abort()


def proxy_policy(context: Context, name: str) -> ProxyPolicy | None:
    """The PROXY protocol rule of listener `name`: None unless the config names it."""
    connections = context.config.connections
    if name not in connections.proxy_protocol:
        return None
    return ProxyPolicy(connections.trusted_proxies, connections.handshake_timeout)


async def bind_listeners(
    context: Context,
    listeners: Iterable[tuple[str, bool]],
    listen: Callable[[str, bool, str, int], Awaitable[AcceptLoop]],
) -> list[tuple[str, str]]:
    """Bind each configured (listen key, implicit TLS) pair; report (service, address).

    A listener whose key is disabled ("") in the config is skipped; a bind failure becomes
    a BindError that names the key, for the start-up message.
    """
    started = []
    for name, implicit_tls in listeners:
        address = context.config.listen.get(name)
        if address is None:
            continue
        try:
            server = await listen(name, implicit_tls, address.host, address.port)
        except OSError as exc:
            raise BindError(name, str(address), exc) from None
        port = server.sockets[0].getsockname()[1]
        started.append((name, f"{address.host}:{port}"))
    return started
