"""The thin asyncio layer: sockets, TLS, timeouts and connection limits around a session."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from postel.context import BindError, Context
from postel.pop3.maildrop import MaildropLocks, TransferSizes
from postel.pop3.proto import err
from postel.pop3.session import Pop3Session, Services

log = logging.getLogger("postel.pop3")

READ_SIZE = 64 * 1024
# Seconds a closed connection may take to flush and finish its TLS goodbye before it is
# dropped; shorter while the server is stopping.
CLOSE_TIMEOUT = 10.0
STOPPING_CLOSE_TIMEOUT = 2.0


class Listener(enum.Enum):
    POP3 = "pop3"  # port 110: STLS (RFC 2595 4), then login
    POP3S = "pop3s"  # port 995: implicit TLS (RFC 8314 3.3)


class StreamIO:
    """SessionIO over an asyncio stream pair."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        tls_context: Callable[[], ssl.SSLContext | None],
    ) -> None:
        self.writer = writer
        self._tls_context = tls_context

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def start_tls(self) -> None:
        context = self._tls_context()
        assert context is not None
        await self.writer.start_tls(context)

    def close(self) -> None:
        self.writer.close()


class Pop3Server:
    """One engine behind both listeners (110, 995)."""

    def __init__(
        self, services: Services, tls_context: Callable[[], ssl.SSLContext | None]
    ) -> None:
        self.services = services
        self.tls_context = tls_context
        self.sessions: dict[Pop3Session, asyncio.StreamWriter] = {}
        self._stopping = False
        self._per_ip: Counter[str] = Counter()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def listen(self, listener: Listener, host: str, port: int) -> asyncio.Server:
        implicit_tls = listener is Listener.POP3S

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self._serve(reader, writer, implicit_tls=implicit_tls)
            finally:
                self._tasks.discard(task)

        server = await asyncio.start_server(
            on_connect,
            host,
            port,
            ssl=self.tls_context() if implicit_tls else None,
            limit=READ_SIZE,
            reuse_address=True,
        )
        self._servers.append(server)
        return server

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, implicit_tls: bool
    ) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "unknown"
        io = StreamIO(writer, self.tls_context)
        # On 995 the connection is TLS already: STLS is not offered (RFC 2595 4).
        services = replace(self.services, tls_available=not implicit_tls)
        session = Pop3Session(services, io, ip, tls=implicit_tls)
        config = self.services.config
        self._per_ip[ip] += 1
        try:
            if self._per_ip[ip] > config.max_connections_per_ip:
                await io.send(err("too many connections from your address", "SYS/TEMP").to_bytes())
                return
            self.sessions[session] = writer
            await session.greet()
            while not session.closing:
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), config.idle_timeout)
                except TimeoutError:
                    # RFC 1939 3: the autologout timer closes the connection without a
                    # response and without entering UPDATE, so nothing is deleted.
                    log.info("idle timeout", extra={"fields": {"ip": ip}})
                    break
                if not data:
                    break
                await session.feed(data)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("connection ended", extra={"fields": {"ip": ip, "error": str(exc)}})
        except Exception:
            # A bug costs one connection, never the server; the client sees a plain -ERR
            # and no traceback. Nothing marked is deleted (no UPDATE happened).
            log.exception("session failed", extra={"fields": {"ip": ip}})
            with contextlib.suppress(Exception):
                await io.send(err("internal error, closing connection", "SYS/TEMP").to_bytes())
        finally:
            session.end()
            self.sessions.pop(session, None)
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
            # close() flushes what is buffered (the +OK of a QUIT, the end of a RETR), then
            # says goodbye in TLS; a client that never answers is cut off after a while.
            writer.close()
            try:
                timeout = STOPPING_CLOSE_TIMEOUT if self._stopping else CLOSE_TIMEOUT
                await asyncio.wait_for(writer.wait_closed(), timeout)
            except Exception:
                writer.transport.abort()

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting; idle sessions close at once (deleting nothing), busy ones after
        the command in progress (up to `grace` seconds)."""
        self._stopping = True
        for server in self._servers:
            server.close()
        for session, writer in list(self.sessions.items()):
            with contextlib.suppress(Exception):
                await session.request_shutdown()
            if not session.busy:
                # An idle session is waiting in read(); a graceful TLS close would wait for
                # the client's close_notify (up to 30 s), so cut the connection instead.
                writer.transport.abort()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()


class Pop3Service:
    """The POP3 listeners (110, 995) as one service of the composition root."""

    def __init__(self, context: Context) -> None:
        self.context = context
        config = context.config
        services = Services(
            hostname=config.hostname,
            store=context.store,
            authenticator=context.authenticator,
            config=config.pop3,
            locks=MaildropLocks(),
            sizes=TransferSizes(),
            tls_available=True,
        )
        self.server = Pop3Server(services, lambda: context.tls.context)

    async def start(self) -> list[tuple[str, str]]:
        started = []
        for listener in Listener:
            address = self.context.config.listen.get(listener.value)
            if address is None:
                continue
            try:
                server = await self.server.listen(listener, address.host, address.port)
            except OSError as exc:
                raise BindError(listener.value, str(address), exc) from None
            port = server.sockets[0].getsockname()[1]
            started.append((listener.value, f"{address.host}:{port}"))
        return started

    async def shutdown(self, grace: float) -> None:
        await self.server.shutdown(grace)
