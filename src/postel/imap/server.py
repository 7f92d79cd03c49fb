"""The thin asyncio layer: sockets, TLS, COMPRESS, timeouts and connection limits.

Bytes read go to the receiver; its events go to the session one at a time. While a
session IDLEs, the loop also waits on the account's change feed, so a delivery wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import tempfile
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

from postel.connlimits import AcceptLoop, ConnectionGate, ProxyPolicy
from postel.context import Context
from postel.imap.proto import responses as r
from postel.imap.proto.receiver import CommandBytes, LiteralLimits, Receiver
from postel.imap.session import ImapSession, Services, State
from postel.netserver import TcpServer, bind_listeners, proxy_policy, write_all
from postel.sessionlimits import CommandRate, SessionClock
from postel.starttls import upgrade_to_tls

log = logging.getLogger("postel.imap")

READ_SIZE = 64 * 1024
WRITE_HIGH_WATER = 256 * 1024
SESSION_OVER = "BYE Connection open too long; reconnect"  # [imap] max_session_time


class StreamIO:
    """SessionIO over an asyncio stream pair, with optional DEFLATE (RFC 4978)."""

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
        self._out: list[bytes] = []
        self._size = 0
        self._deflate: Any = None
        self._inflate: Any = None

    def write(self, data: bytes) -> None:
        self._out.append(data)
        self._size += len(data)

    async def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out, self._size = [], 0
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        await write_all(self.writer, data, self._send_timeout)

    async def maybe_flush(self) -> None:
        if self._size >= WRITE_HIGH_WATER:
            await self.flush()

    async def read(self) -> bytes:
        """Up to READ_SIZE bytes, inflated when COMPRESS is active. Inflation is bounded
        per read (issue 15 item 5: 1 MB that inflated to 1 GiB at once), so a bomb is
        inflated only as fast as the receiver consumes it, and its limits apply."""
        while True:
            if self._inflate is not None and self._inflate.unconsumed_tail:
                data = self._inflate.unconsumed_tail
            else:
                data = await self.reader.read(READ_SIZE)
                if self._inflate is None or not data:
                    return data
            inflated = bytes(self._inflate.decompress(data, READ_SIZE))
            if inflated:
                return inflated

    async def start_tls(self) -> None:
        context = self._tls_context()
        assert context is not None
        await upgrade_to_tls(self.reader, self.writer, context, self._handshake_timeout)

    async def start_compression(self, pending: bytes) -> bytes:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        # The rest, if any, stays in unconsumed_tail for the next read().
        return bytes(self._inflate.decompress(pending, READ_SIZE))


class _Running:
    """An IMAP session as graceful shutdown sees it: an idle one is cancelled at once (its
    task then says BYE), a busy one finishes the command it is running."""

    def __init__(self, session: ImapSession, task: asyncio.Task[Any]) -> None:
        self.session = session
        self.task = task

    @property
    def busy(self) -> bool:
        return self.session.busy

    async def request_shutdown(self) -> None:
        self.session.shutting_down = True
        if not self.session.busy:
            self.task.cancel()


class ImapServer(TcpServer):
    """One engine behind the two listeners (143 with STARTTLS, 993 with implicit TLS)."""

    protocol = "imap"

    def __init__(
        self, services: Services, tls_context: Callable[[], ssl.SSLContext], gate: ConnectionGate
    ) -> None:
        super().__init__(tls_context, gate)
        self.services = services

    async def listen_on(
        self, implicit_tls: bool, host: str, port: int,
        proxy: ProxyPolicy | None = None,
    ) -> AcceptLoop:
        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str
        ) -> None:
            await self._serve(reader, writer, ip, tls=implicit_tls)

        return await self.listen(
            host, port, implicit_tls=implicit_tls, handler=handler,
            max_per_ip=self.services.config.max_connections_per_ip,
            proxy=proxy, refusal=r.untagged("BYE Too many connections from your address"),
        )

    def _spool(self, size: int) -> BinaryIO:
        return tempfile.TemporaryFile(dir=self.services.tmp_dir, prefix="imap-literal-")

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str, *, tls: bool
    ) -> None:
        config = self.services.config
        io = StreamIO(
            reader, writer, self.tls_context, self.gate.handshake_timeout, self.gate.send_timeout
        )
        sessions: list[ImapSession] = []  # the receiver asks the session made below
        receiver = Receiver(
            max_line_length=config.max_line_length,
            max_literal_size=config.max_literal_size,
            max_command_size=config.max_command_size,
            spool=self._spool,
            pre_login=LiteralLimits(
                config.max_literal_size_before_login, config.max_command_size_before_login
            ),
            logged_in=lambda: sessions[0].state is not State.NOT_AUTHENTICATED,
        )
        session = ImapSession(
            self.services, io, receiver, ip, tls=tls,
            tls_available=self.tls_context() is not None,
        )
        sessions.append(session)
        task = asyncio.current_task()
        assert task is not None
        try:
            with self.tracking(_Running(session, task), writer):
                await session.greet()
                await self._loop(session, io, receiver)
        except asyncio.CancelledError:
            # Server shutdown while the client was idle or waiting: say goodbye.
            with contextlib.suppress(Exception):
                io.write(r.untagged("BYE Server shutting down"))
                await asyncio.wait_for(io.flush(), 1.0)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, zlib.error) as exc:
            # The peer went away (also mid-write): an info line, not an error.
            log.info("connection ended", extra={"fields": {"ip": ip, "error": str(exc)}})
        except Exception:
            # A bug must cost one connection, never the server.
            log.exception("session failed", extra={"fields": {"ip": ip}})
            with contextlib.suppress(Exception):
                io.write(r.untagged("BYE Internal error, closing connection"))
                await io.flush()
        finally:
            session.close()

    async def _loop(self, session: ImapSession, io: StreamIO, receiver: Receiver) -> None:
        timeout = self.services.config.idle_timeout
        connections = self.services.connections
        rate = CommandRate(connections.max_commands_per_second, connections.command_burst)
        clock = SessionClock(self.services.config.max_session_time)
        loop = asyncio.get_running_loop()
        # Counted from the client's last bytes: NOTIFY's wake-ups between commands do not
        # keep a silent client logged in (an IDLE that reports changes still does).
        deadline = loop.time() + timeout
        read_task: asyncio.Task[bytes] | None = None
        try:
            while not session.closed:
                if clock.over():
                    await _bye(session, io, SESSION_OVER)
                    return
                event = receiver.next_event()
                if isinstance(event, CommandBytes) and not rate.take():
                    await _bye(session, io, "BYE Too many commands; slow down")
                    return
                if event is not None:
                    session.busy = True
                    try:
                        await session.handle(event)
                        await io.flush()
                    finally:
                        session.busy = False
                    deadline = loop.time() + timeout
                    if await _bye_if_stopping(session, io):
                        return
                    continue
                if read_task is None:
                    read_task = asyncio.ensure_future(io.read())
                waits: set[asyncio.Future[Any]] = {read_task}
                wake: asyncio.Task[None] | None = None
                idling = session.idling
                if session.wants_wakeups():
                    wake = asyncio.ensure_future(session.wait_for_change())
                    waits.add(wake)
                idle_left = max(0.0, deadline - loop.time())
                session_ends = clock.ends_first(idle_left)
                done, _ = await asyncio.wait(
                    waits, timeout=clock.bound(idle_left),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if wake is not None and wake not in done:
                    wake.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await wake
                if not done and session_ends:
                    await _bye(session, io, SESSION_OVER)
                    return
                if not done:
                    io.write(r.untagged("BYE Autologout; idle for too long"))
                    await io.flush()
                    return
                if wake is not None and wake in done:
                    # Busy like a command: a shutdown lets the round finish its lines.
                    session.busy = True
                    try:
                        await session.wake()
                        await io.flush()
                    finally:
                        session.busy = False
                    if await _bye_if_stopping(session, io):
                        return
                    if idling:
                        deadline = loop.time() + timeout
                if read_task in done:
                    data = read_task.result()
                    read_task = None
                    if not data:
                        return
                    receiver.feed(data)
                    deadline = loop.time() + timeout
        finally:
            if read_task is not None:
                read_task.cancel()
                with contextlib.suppress(BaseException):
                    await read_task


async def _bye(session: ImapSession, io: StreamIO, text: str) -> None:
    """End the connection with an untagged BYE (RFC 9051 7.1.5) for a limit reached."""
    log.info("connection limit reached", extra={"fields": {"ip": session.ip, "why": text}})
    io.write(r.untagged(text))
    await io.flush()


async def _bye_if_stopping(session: ImapSession, io: StreamIO) -> bool:
    """After a command or a wake-up: say BYE when a shutdown waited for it to finish."""
    if not session.shutting_down:
        return False
    io.write(r.untagged("BYE Server shutting down"))
    await io.flush()
    return True


class ImapService:
    """The IMAP listeners (143, 993) as one service of the composition root."""

    def __init__(self, context: Context) -> None:
        self.context = context
        config = context.config
        services = Services(
            hostname=config.hostname,
            store=context.store,
            bus=context.bus,
            authenticator=context.authenticator,
            limiter=context.limiter,
            config=config.imap,
            tmp_dir=config.tmp_dir,
            worker_id=context.worker if config.server.expose_worker_id else None,
            connections=config.connections,
        )
        self.server = ImapServer(services, lambda: context.tls.context, context.gate)

    async def start(self) -> list[tuple[str, str]]:
        async def listen(name: str, implicit_tls: bool, host: str, port: int) -> AcceptLoop:
            return await self.server.listen_on(
                implicit_tls, host, port, proxy=proxy_policy(self.context, name)
            )

        return await bind_listeners(self.context, [("imap", False), ("imaps", True)], listen)

    async def shutdown(self, grace: float) -> None:
        await self.server.shutdown(grace)
