"""The thin asyncio layer around SMTP sessions; the shared plumbing is in netserver."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from postel.connlimits import AcceptLoop, ConnectionGate, ProxyPolicy
from postel.context import Context
from postel.netserver import Goodbyes, StreamIO, TcpServer, bind_listeners, proxy_policy
from postel.smtp import replies as r
from postel.smtp.policy import Listener
from postel.smtp.replies import Reply
from postel.smtp.session import Services, SmtpSession

log = logging.getLogger("postel.smtp")

GOODBYES = Goodbyes(
    too_many_connections=Reply(421, "4.7.0", "too many connections from your address").to_bytes(),
    internal_error=Reply(421, "4.3.0", "internal error, closing").to_bytes(),
    idle_timeout=r.IDLE_TIMEOUT.to_bytes(),  # RFC 5321 4.5.3.2: 421 before closing
    session_over=Reply(421, "4.7.0", "connection open too long, reconnect").to_bytes(),
)


class SmtpServer(TcpServer):
    """One engine behind the three listeners (25, 587, 465)."""

    protocol = "smtp"

    def __init__(
        self, services: Services, tls_context: Callable[[], ssl.SSLContext], gate: ConnectionGate
    ) -> None:
        super().__init__(tls_context, gate)
        self.services = services

    async def listen_on(
        self, listener: Listener, host: str, port: int,
        proxy: ProxyPolicy | None = None,
    ) -> AcceptLoop:
        implicit_tls = listener is Listener.SUBMISSIONS

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str
        ) -> None:
            await self._serve(listener, reader, writer, ip, tls=implicit_tls)

        return await self.listen(
            host, port, implicit_tls=implicit_tls, handler=handler,
            max_per_ip=self.services.config.max_connections_per_ip,
            proxy=proxy, refusal=GOODBYES.too_many_connections,
        )

    async def _serve(
        self,
        listener: Listener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ip: str,
        *,
        tls: bool,
    ) -> None:
        io = StreamIO(
            reader, writer, self.tls_context, self.gate.handshake_timeout,
            self.gate.send_timeout,
        )
        session = SmtpSession(self.services, io, listener, ip, tls=tls)
        config = self.services.config
        await self.run_session(
            session, io, reader, ip,
            idle_timeout=config.idle_timeout,
            max_session_time=config.max_session_time,
            goodbyes=GOODBYES,
        )


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
            resolver=context.resolver,
            bus=context.bus,
            connections=config.connections,
        )
        self.server = SmtpServer(services, lambda: context.tls.context, context.gate)

    async def start(self) -> list[tuple[str, str]]:
        async def listen(name: str, _tls: bool, host: str, port: int) -> AcceptLoop:
            return await self.server.listen_on(
                Listener(name), host, port, proxy=proxy_policy(self.context, name)
            )

        listeners = [(listener.value, listener is Listener.SUBMISSIONS) for listener in Listener]
        return await bind_listeners(self.context, listeners, listen)

    async def shutdown(self, grace: float) -> None:
        await self.server.shutdown(grace)
