"""The thin asyncio layer: sockets, TLS, timeouts and connection limits around a session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Any

from postel.context import BindError, Context
from postel.mailauth.dns import DnsResolver
from postel.smtp import replies as r
from postel.smtp.replies import Reply
from postel.smtp.session import Listener, Services, SmtpSession

log = logging.getLogger("postel.smtp")

READ_SIZE = 64 * 1024
# Seconds to wait for a client's TLS close_notify before cutting the connection.
CLOSE_TIMEOUT = 5.0


class StreamIO:
    """SessionIO over an asyncio stream pair."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls_context: Callable[[], ssl.SSLContext | None],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._tls_context = tls_context

    async def send(self, reply: Reply) -> None:
        self.writer.write(reply.to_bytes())
        await self.writer.drain()

    async def start_tls(self) -> None:
        context = self._tls_context()
        assert context is not None
        await self.writer.start_tls(context)

    def close(self) -> None:
        # close() flushes the last reply and starts the TLS goodbye; a read in progress
        # returns only when the client answers it. Cut the connection if it does not, so
        # a silent client cannot hold a session (or a graceful shutdown) for 30 s.
        self.writer.close()
        transport = self.writer.transport
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.abort)


class SmtpServer:
    """One engine behind the three listeners (25, 587, 465)."""

    def __init__(
        self, services: Services, tls_context: Callable[[], ssl.SSLContext | None]
    ) -> None:
        self.services = services
        self.tls_context = tls_context
        self.sessions: set[SmtpSession] = set()
        self._per_ip: Counter[str] = Counter()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def listen(self, listener: Listener, host: str, port: int) -> asyncio.Server:
        implicit_tls = listener is Listener.SUBMISSIONS

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self._serve(listener, reader, writer, tls=implicit_tls)
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
        self,
        listener: Listener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
    ) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "unknown"
        io = StreamIO(reader, writer, self.tls_context)
        session = SmtpSession(self.services, io, listener, ip, tls=tls)
        config = self.services.config
        self._per_ip[ip] += 1
        try:
            if self._per_ip[ip] > config.max_connections_per_ip:
                await io.send(Reply(421, "4.7.0", "too many connections from your address"))
                return
            self.sessions.add(session)
            await session.greet()
            while not session.closing:
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), config.idle_timeout)
                except TimeoutError:
                    await io.send(r.IDLE_TIMEOUT)
                    break
                if not data:
                    break
                await session.feed(data)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("connection ended", extra={"fields": {"ip": ip, "error": str(exc)}})
        except Exception:
            # A bug must cost one connection, never the server; the client gets a 421.
            log.exception("session failed", extra={"fields": {"ip": ip}})
            with contextlib.suppress(Exception):
                await io.send(Reply(421, "4.3.0", "internal error, closing connection"))
        finally:
            session.transaction.abort()
            self.sessions.discard(session)
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
            # close() flushes the last reply, then says goodbye in TLS; a client that never
            # answers the close_notify is cut off instead of holding a task (and shutdown).
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
            except Exception:
                writer.transport.abort()

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting; let transactions in flight finish (up to `grace` seconds)."""
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


class SmtpService:
    """The SMTP listeners (25, 587, 465) as one service of the composition root."""

    def __init__(self, context: Context) -> None:
        self.context = context
        config = context.config
        services = Services(
            hostname=config.hostname,
            store=context.store,
            authenticator=context.authenticator,
            limiter=context.limiter,
            config=config.smtp,
            tls_available=True,
            mailauth=config.mailauth,
            resolver=DnsResolver(config.dns),
        )
        self.server = SmtpServer(services, lambda: context.tls.context)

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
