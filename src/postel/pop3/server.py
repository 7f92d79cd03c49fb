"""The thin asyncio layer: sockets, TLS, timeouts and connection limits around a session."""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections.abc import Callable
from dataclasses import replace

from postel.connlimits import AcceptLoop, ConnectionGate, ProxyPolicy
from postel.context import Context
from postel.netserver import Goodbyes, StreamIO, TcpServer, bind_listeners, proxy_policy
from postel.pop3.maildrop import MaildropLocks, TransferSizes
from postel.pop3.proto import err
from postel.pop3.session import Pop3Session, Services

log = logging.getLogger("postel.pop3")

GOODBYES = Goodbyes(
    too_many_connections=err("too many connections from your address", "SYS/TEMP").to_bytes(),
    internal_error=err("internal error, closing connection", "SYS/TEMP").to_bytes(),
    # RFC 1939 3: the autologout timer closes without a response and without entering
    # UPDATE, so nothing marked is deleted.
    idle_timeout=b"",
    session_over=err("connection open too long, reconnect", "SYS/TEMP").to_bytes(),
)


class Listener(enum.Enum):
    POP3 = "pop3"  # port 110: STLS (RFC 2595 4), then login
    POP3S = "pop3s"  # port 995: implicit TLS (RFC 8314 3.3)


class Pop3Server(TcpServer):
    """One engine behind both listeners (110, 995)."""

    protocol = "pop3"

    def __init__(
        self, services: Services, tls_context: Callable[[], ssl.SSLContext], gate: ConnectionGate
    ) -> None:
        super().__init__(tls_context, gate)
        self.services = services

    async def listen_on(
        self, listener: Listener, host: str, port: int,
        proxy: ProxyPolicy | None = None,
    ) -> AcceptLoop:
        implicit_tls = listener is Listener.POP3S

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str
        ) -> None:
            await self._serve(reader, writer, ip, implicit_tls=implicit_tls)

        return await self.listen(
            host, port, implicit_tls=implicit_tls, handler=handler,
            max_per_ip=self.services.config.max_connections_per_ip,
            proxy=proxy, refusal=GOODBYES.too_many_connections,
        )

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ip: str,
        *,
        implicit_tls: bool,
    ) -> None:
        io = StreamIO(
            reader, writer, self.tls_context, self.gate.handshake_timeout,
            self.gate.send_timeout,
        )
        # On 995 the connection is TLS already: STLS is not offered (RFC 2595 4).
        services = replace(self.services, tls_available=not implicit_tls)
        session = Pop3Session(services, io, ip, tls=implicit_tls)
        config = self.services.config
        await self.run_session(
            session, io, reader, ip,
            idle_timeout=config.idle_timeout,
            max_session_time=config.max_session_time,
            goodbyes=GOODBYES,
        )


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
            locks=MaildropLocks(context.locks),
            sizes=TransferSizes(),
            tls_available=True,
            bus=context.bus,
            worker_id=context.worker if config.server.expose_worker_id else None,
            connections=config.connections,
        )
        self.server = Pop3Server(services, lambda: context.tls.context, context.gate)

    async def start(self) -> list[tuple[str, str]]:
        async def listen(name: str, _tls: bool, host: str, port: int) -> AcceptLoop:
            return await self.server.listen_on(
                Listener(name), host, port, proxy=proxy_policy(self.context, name)
            )

        listeners = [(listener.value, listener is Listener.POP3S) for listener in Listener]
        return await bind_listeners(self.context, listeners, listen)

    async def shutdown(self, grace: float) -> None:
        await self.server.shutdown(grace)
