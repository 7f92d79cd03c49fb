"""The web's connections counted at accept, and cut when their headers are too slow.

uvicorn would accept connections itself and start the TLS handshake before any code of
ours sees them, with no limit per address and no deadline for request headers: 20,000
trickled connections took every service down (issue 15, item 3). So `GatedServer` lets
uvicorn run the application and the connections it is given, but accepts them itself
through `connlimits.AcceptLoop`: counted per address (`web.max_connections_per_ip`) and
in the shared total before the handshake, which is bounded by
`connections.handshake_timeout`. A connection then has `web.header_timeout` seconds
from accept, and again after each response when kept alive, to send complete headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from postel.connlimits import AcceptLoop, ConnectionGate, Slot


class GatedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol holding a gate slot, with a deadline for headers."""

    slot: Slot | None = None
    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # a kept-alive connection owes the next request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        try:
            super().connection_lost(exc)
        finally:
            if self.slot is not None:
                self.slot.release()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


class GatedServer(uvicorn.Server):
    """uvicorn without its own listeners: connections come from our accept loops."""

    def __init__(
        self,
        config: uvicorn.Config,
        gate: ConnectionGate,
        *,
        max_per_ip: int,
        header_timeout: float,
        tls: Callable[[], ssl.SSLContext] | None,
    ) -> None:
        super().__init__(config)
        self.gate = gate
        self.max_per_ip = max_per_ip
        self.header_timeout = header_timeout
        self.tls = tls
        self.accept_loops: list[AcceptLoop] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Postel's loop owns SIGTERM/SIGINT/SIGHUP; uvicorn must not replace them.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        for sock in sockets or []:
            self.accept_loops.append(
                AcceptLoop(sock, self.gate, "web", self.max_per_ip, self._connect)
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for accept_loop in self.accept_loops:
            accept_loop.close()
        await super().shutdown(sockets=None)

    def _protocol(self, slot: Slot) -> GatedH11Protocol:
        protocol = GatedH11Protocol(
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        protocol.slot = slot
        protocol.header_timeout = self.header_timeout
        return protocol

    async def _connect(self, conn: socket.socket, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        tls = self.tls() if self.tls is not None else None
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs = {"ssl": tls, "ssl_handshake_timeout": self.gate.handshake_timeout}
        try:
            await loop.connect_accepted_socket(lambda: self._protocol(slot), conn, **kwargs)
        except (OSError, ssl.SSLError, TimeoutError):
            # A failed or slow handshake: nothing to log per connection (anyone can).
            slot.release()
            conn.close()
