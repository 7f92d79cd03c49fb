"""What every service needs from the rest of Postel, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from postel.auth.limits import FailureLimiter
from postel.auth.service import Authenticator
from postel.config import Config
from postel.connlimits import ConnectionGate
from postel.mailauth.dns import Resolver
from postel.store.api import Store
from postel.store.bus import Bus, LocalLocks, Locks
from postel.tls import TlsContexts


@dataclass
class Context:
    config: Config
    store: Store
    bus: Bus
    tls: TlsContexts
    limiter: FailureLimiter
    authenticator: Authenticator
    resolver: Resolver  # the one DNS resolver (and its cache): mailauth, queue, DNS checks
    # Client connections of every listener together (issue 15 item 3: below the fd limit).
    gate: ConnectionGate = field(default_factory=ConnectionGate)
    # Host-wide named locks (POP3's maildrop lock): in-process, or the supervisor's hub.
    locks: Locks = field(default_factory=LocalLocks)
    # This worker process's index (0 with a single process); for logs and `x-worker`.
    worker: int = 0


class Service(Protocol):
    """A protocol server. start() binds its listeners and returns (service, address) pairs
    for the ones it started; shutdown() stops accepting and lets work in flight finish."""

    async def start(self) -> list[tuple[str, str]]: ...

    async def shutdown(self, grace: float) -> None: ...


class StartupError(Exception):
    """Start-up cannot go on; the message tells the operator what to do."""


class BindError(Exception):
    """A listener could not bind; carries the service name and address for the message."""

    def __init__(self, service: str, address: str, error: OSError) -> None:
        super().__init__(f"{service} {address}: {error}")
        self.service = service
        self.address = address
        self.error = error
