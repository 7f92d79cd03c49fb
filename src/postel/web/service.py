"""The web server as a Postel service: uvicorn in Postel's own asyncio loop.

HTTPS (listen.https) serves the site with the same reloadable SSLContext as the mail
protocols; HTTP (listen.http) redirects to it. Sockets are bound here, so a port in use
is reported like every other service's, and the loop's signal handlers stay Postel's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime, timedelta

import uvicorn

from postel.connlimits import open_listener
from postel.context import BindError, Context, StartupError
from postel.net import is_loopback
from postel.web.absolute_form import AbsoluteForm
from postel.web.app import HttpRedirect, build_app
from postel.web.listeners import GatedServer
from postel.web.state import Web

log = logging.getLogger("postel.web")

# Seconds between sweeps of expired sessions, reset tokens and CAPTCHA challenges.
SWEEP_INTERVAL = 300.0


def _loopback(host: str) -> bool:
    return host == "localhost" or is_loopback(host)


def _bind(service: str, host: str, port: int) -> socket.socket:
    try:
        return open_listener(host, port)
    except OSError as exc:
        raise BindError(service, f"{host}:{port}", exc) from None


class WebService:
    def __init__(self, context: Context) -> None:
        self.context = context
        config = context.config
        if config.web.test_hooks and not all(
            _loopback(address.host) for address in config.listen.values() if address
        ):
            raise StartupError(
                "web.test_hooks: test hooks are refused unless every [listen] address is "
                "loopback (127.0.0.1); remove web.test_hooks from a production config"
            )
        self.web = Web.build(context)
        self.app = build_app(self.web)
        self.servers: list[tuple[GatedServer, asyncio.Task[None]]] = []
        self._sweeper: asyncio.Task[None] | None = None

    def _uvicorn(self, app: object, *, tls: bool) -> GatedServer:
        # X-Forwarded-For / -Proto are believed from [connections] trusted_proxies only
        # (uvicorn's ProxyHeadersMiddleware), so the limits and logs see the client.
        trusted = list(self.context.config.connections.trusted_proxies)
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
            h11_max_incomplete_event_size=64 * 1024,
        )
        config.load()
        web = self.context.config.web
        return GatedServer(
            config, self.context.gate,
            max_per_ip=web.max_connections_per_ip,
            header_timeout=web.header_timeout,
            # The shared, SIGHUP-reloadable context of the mail protocols.
            tls=(lambda: self.context.tls.context) if tls else None,
        )

    async def start(self) -> list[tuple[str, str]]:
        listen = self.context.config.listen
        started: list[tuple[str, str]] = []
        sockets: list[tuple[str, socket.socket]] = []
        try:
            for name in ("https", "http"):
                address = listen.get(name)
                if address is not None:
                    sockets.append((name, _bind(name, address.host, address.port)))
        except BindError:
            for _, sock in sockets:
                sock.close()
            raise
        https = listen.get("https")
        for name, sock in sockets:
            app = self.app if name == "https" else HttpRedirect(
                self.app, https.port if https else None
            )
            server = self._uvicorn(AbsoluteForm(app), tls=name == "https")
            task = asyncio.create_task(server.serve(sockets=[sock]), name=f"web-{name}")
            self.servers.append((server, task))
            host, port = sock.getsockname()[:2]
            started.append((name, f"{host}:{port}"))
        if sockets:
            self._sweeper = asyncio.create_task(self._sweep(), name="web-sweeper")
            self.web.jobs.start()
        return started

    async def _sweep(self) -> None:
        config = self.context.config.web
        while True:
            now = datetime.now(UTC)
            try:
                await asyncio.to_thread(
                    self.context.store.web.expire,
                    now - timedelta(seconds=config.session_idle_timeout),
                    now - timedelta(seconds=config.session_max_age),
                )
            except Exception:
                log.exception("sweeping expired web sessions failed")
            await asyncio.sleep(SWEEP_INTERVAL)

    async def shutdown(self, grace: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server, _ in self.servers:
            server.should_exit = True
        # Requests in flight get up to `grace` seconds; idle keep-alive connections do
        # not (a TLS close waits for the peer's close_notify, up to 30 s, otherwise).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(s.server_state.tasks for s, _ in self.servers):
            await asyncio.sleep(0.05)
        for server, _ in self.servers:
            server.force_exit = True
        for _, task in self.servers:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
        await self.web.jobs.stop(max(0.0, deadline - loop.time()) + 5)
