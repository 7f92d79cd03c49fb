"""IMAP policy: one session per connection, states per RFC 9051 3, one handler per command.

The session reacts to events from ``proto.receiver`` and talks to the world only through
``SessionIO`` (write bytes, flush, start TLS or compression) and the store, which it calls
in worker threads. Handlers live in ``imap/commands/``; ``DISPATCH`` maps each command name
to its handler and the states it is allowed in (the one table of state rules).
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import NoResultFound

from postel.auth.limits import FailureLimiter
from postel.auth.service import Authenticator
from postel.config import ImapConfig
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, CommandError, parse_command
from postel.imap.proto.receiver import (
    CommandBytes,
    Event,
    Flood,
    LiteralTooBig,
    NeedContinuation,
    NonSyncLiteralRefused,
    RawLine,
    Receiver,
    TooLong,
)
from postel.imap.selected import SelectedMailbox
from postel.store.bus import InProcessBus, Subscription
from postel.store.model import Account
from postel.store.sql.store import SqlStore

log = logging.getLogger("postel.imap")

T = TypeVar("T")


class State(enum.Enum):
    NOT_AUTHENTICATED = 1
    AUTHENTICATED = 2
    SELECTED = 3
    LOGOUT = 4


class SessionIO(Protocol):
    def write(self, data: bytes) -> None: ...
    async def flush(self) -> None: ...
    async def maybe_flush(self) -> None: ...
    async def start_tls(self) -> None: ...
    async def start_compression(self, pending: bytes) -> bytes: ...


@dataclass
class Services:
    """What a session needs from the rest of Postel; built once by the composition root."""

    hostname: str
    store: SqlStore
    bus: InProcessBus
    authenticator: Authenticator
    limiter: FailureLimiter
    config: ImapConfig
    tmp_dir: Path


class Bye(Exception):
    """End the connection after sending BYE with this text."""


Handler = Callable[["ImapSession", Command], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    states: frozenset[State]


ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})

DISPATCH: dict[str, Route] = {}

# Commands whose handlers report mailbox changes themselves (or must not report them, like
# LOGOUT and the commands that leave the mailbox).
# Seconds after which even a read-only command looks for changes without a hint.
FULL_POLL_EVERY = 30.0

SELF_REPORTING = frozenset({
    "NOOP", "CHECK", "IDLE", "FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH",
    "UID SEARCH", "SORT", "UID SORT", "THREAD", "UID THREAD", "COPY", "UID COPY", "MOVE",
    "UID MOVE", "EXPUNGE", "UID EXPUNGE", "SELECT", "EXAMINE", "CLOSE", "UNSELECT",
    "LOGOUT", "APPEND",
})


def command(name: str, states: frozenset[State]) -> Callable[[Handler], Handler]:
    """Register the handler of one command (mox's dispatch table)."""

    def register(handler: Handler) -> Handler:
        DISPATCH[name] = Route(handler, states)
        return handler

    return register


@dataclass
class Continuation:
    """A command in progress that reads raw lines (AUTHENTICATE, IDLE)."""

    tag: str
    on_line: Callable[[bytes], Awaitable[None]]
    idle: bool = False


class ImapSession:
    def __init__(
        self, services: Services, io: SessionIO, receiver: Receiver, ip: str, *,
        tls: bool, tls_available: bool,
    ) -> None:
        self.services = services
        self.io = io
        self.receiver = receiver
        self.ip = ip
        self.tls = tls
        self.tls_available = tls_available
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: set[str] = set()
        self.auth_failures = 0
        self.continuation: Continuation | None = None
        self.subscription: Subscription | None = None
        self.last_full_poll = 0.0
        self.compressed = False
        self.client_id: dict[str, str | None] = {}
        self.busy = False  # a command is running (the server lets it finish on shutdown)
        self.shutting_down = False

    # -- properties the handlers read ------------------------------------------------

    @property
    def store(self) -> SqlStore:
        return self.services.store

    @property
    def config(self) -> ImapConfig:
        return self.services.config

    @property
    def utf8(self) -> bool:
        """Names and strings in UTF-8 (RFC 6855 UTF8=ACCEPT, RFC 9051 IMAP4rev2)."""
        return bool(self.enabled & {"UTF8=ACCEPT", "IMAP4REV2"})

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        return bool(self.enabled & {"CONDSTORE", "QRESYNC"})

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def idling(self) -> bool:
        return self.continuation is not None and self.continuation.idle

    @property
    def closed(self) -> bool:
        return self.state is State.LOGOUT

    def account_id(self) -> int:
        assert self.account is not None
        return self.account.id

    def plaintext_auth_allowed(self) -> bool:
        if self.tls:
            return True
        loopback = self.ip.startswith("127.") or self.ip == "::1"
        return loopback and self.config.allow_plaintext_auth_on_loopback

    # -- output ------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.io.write(data)

    def untagged(self, text: str | bytes) -> None:
        self.io.write(r.untagged(text))

    def ok(self, tag: str, text: str, code: str | None = None) -> None:
        self.io.write(r.tagged(tag, "OK", text, code))

    def no(self, tag: str, text: str, code: str | None = None) -> None:
        self.io.write(r.tagged(tag, "NO", text, code))

    def bad(self, tag: str, text: str, code: str | None = None) -> None:
        self.io.write(r.tagged(tag, "BAD", text, code))

    def mailbox_name(self, name: str) -> bytes:
        return r.mailbox(name, self.utf8)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a blocking store method in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------

    async def greet(self) -> None:
        from postel.imap.commands.auth import capabilities

        caps = " ".join(capabilities(self))
        self.send(r.untagged(f"OK [CAPABILITY {caps}] {self.services.hostname} Postel ready"))
        await self.io.flush()

    def close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None

    async def handle(self, event: Event) -> None:
        try:
            await self._handle(event)
        except Bye as bye:
            self.send(r.untagged(f"BYE {bye}"))
            self.state = State.LOGOUT
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            # The client went away mid-command (a reset during FETCH, a failed STARTTLS
            # handshake): anyone can cause it before login, so one line, no traceback.
            log.info("connection lost during a command", extra={"fields": {
                "ip": self.ip, "error": str(exc) or type(exc).__name__}})
            self.state = State.LOGOUT
        except Exception:
            # A bug in one handler costs that command, not the connection or the server.
            log.exception("command failed", extra={"fields": {"ip": self.ip}})
            self.continuation = None
            self.receiver.raw_mode = False
            tag = event.tag if isinstance(event, CommandBytes) else "*"
            self.no(tag, "Internal error; the command was not completed", "SERVERBUG")
        finally:
            if isinstance(event, CommandBytes):
                event.close()

    def check_credentials(self) -> None:
        """Sign out when the account's password changed (or it was disabled or removed)
        since this session logged in: the old password must not keep working anywhere."""
        if self.subscription is not None and self.subscription.revoked:
            raise Bye("Your password was changed; please log in again")

    async def _handle(self, event: Event) -> None:
        self.check_credentials()
        if isinstance(event, NeedContinuation):
            self.send(r.continuation("Ready for literal data"))
            return
        if isinstance(event, RawLine):
            if self.continuation is not None:
                await self.continuation.on_line(event.data)
            return
        if isinstance(event, TooLong):
            tag = event.tag
            if self.continuation is not None:
                # An overlong SASL response or IDLE line ends that command.
                tag = self.continuation.tag
                self.continuation = None
                self.receiver.raw_mode = False
            self.bad(tag, "Line too long", "TOOBIG")
            return
        if isinstance(event, Flood):
            raise Bye("Line or literal too long; closing the connection")
        if isinstance(event, NonSyncLiteralRefused):
            # RFC 7888 4: LITERAL- before login; the literal's bytes are on their way, so
            # end the connection instead of reading them.
            self.bad(event.tag, f"Literal of {event.size} octets is too big before login",
                     "TOOBIG")
            raise Bye("Literal too big before login")
        if isinstance(event, LiteralTooBig):
            self.no(event.tag, f"Literal of {event.size} octets is too big", "TOOBIG")
            return
        try:
            cmd = parse_command(event, utf8=self.utf8, max_nesting=self.config.max_nesting)
        except CommandError as exc:
            self.bad(exc.tag, f"Syntax error: {exc}")
            return
        route = DISPATCH.get(cmd.name)
        if route is None:
            self.bad(cmd.tag, f"{cmd.name} is not supported")
            return
        if self.state not in route.states:
            self.bad(cmd.tag, f"{cmd.name} is not allowed in this state")
            return
        if self.selected is not None and cmd.name not in SELF_REPORTING:
            # RFC 9051 7.3/7.4: changes may be reported with any command; those below
            # report them themselves, at the moment their own rules allow.
            await self.poll(force=False)
        await route.handler(self, cmd)

    async def poll(self, *, allow_expunge: bool = True, force: bool = True) -> None:
        """Tell the client what changed in the selected mailbox (RFC 9051 7.3, 7.4).

        EXPUNGE (and VANISHED) must not be sent while a FETCH, STORE or SEARCH by sequence
        number is running (RFC 9051 7.4.1), so those pass allow_expunge=False.

        Read-only commands pass force=False: they skip the store when the change bus has
        said nothing since the last look (every commit of this process publishes a hint),
        which saves three queries per FETCH. NOOP, CHECK, IDLE and every command that
        changes the mailbox always look, and so does any command after FULL_POLL_EVERY
        seconds, so changes that reach the store without a hint (another process) show.
        """
        had_hint = False
        # Drain the hints first: one arriving after this read triggers another poll.
        if self.subscription is not None:
            while not self.subscription.queue.empty():
                self.subscription.queue.get_nowait()
                had_hint = True
        if self.selected is None:
            return
        now = time.monotonic()
        if not (force or had_hint or self.subscription is None
                or now - self.last_full_poll >= FULL_POLL_EVERY):
            return
        self.last_full_poll = now
        try:
            changes = await self.run(
                self.store.changes_since, self.selected.mailbox_id, self.selected.modseq
            )
        except NoResultFound:
            # Another session deleted the selected mailbox; nothing sensible remains.
            raise Bye("Selected mailbox was deleted") from None
        claim = None
        if not self.selected.readonly and changes.mailbox.uidnext > self.selected.uidnext:
            claim = await self.run(self.store.imap_claim_recent, self.selected.mailbox_id)
        for line in self.selected.apply(changes, allow_expunge=allow_expunge,
                                        recent_from=claim, condstore=self.condstore,
                                        qresync=self.qresync):
            self.send(line)

    def subscribe(self) -> None:
        if self.subscription is None and self.account is not None:
            self.subscription = self.services.bus.subscribe(self.account.id)

    async def wake(self) -> None:
        """The change feed fired while IDLE: report what changed."""
        try:
            self.check_credentials()
            await self.poll()
        except Bye as bye:
            self.send(r.untagged(f"BYE {bye}"))
            self.state = State.LOGOUT

    async def wait_for_change(self) -> None:
        """Wait until the store announces a change for this account (IDLE)."""
        assert self.subscription is not None
        await self.subscription.get()


def _load_handlers() -> None:
    # Importing the handler modules registers them in DISPATCH.
    for name in ("auth", "mailboxes", "select", "fetch", "store", "search", "append", "copy"):
        importlib.import_module(f"postel.imap.commands.{name}")


_load_handlers()
