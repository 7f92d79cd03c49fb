"""IMAP policy: one session per connection, states per RFC 9051 3, one handler per command.

The session reacts to events from ``proto.receiver`` and talks to the world only through
``SessionIO`` (write bytes, flush, start TLS or compression) and the store, which it calls
in worker threads. Handlers live in ``imap/commands/``; ``imap/commands/table.py`` maps each
command name to its handler and the states it is allowed in (the one table of state rules).
The handlers import this module only for type checking, so imports run one way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from postel.auth.limits import FailureLimiter
from postel.auth.service import Authenticator
from postel.config import ConnectionsConfig, ImapConfig
from postel.imap.capabilities import capabilities
from postel.imap.changefeed import ChangeFeed
from postel.imap.commands import contexts
from postel.imap.commands.notify import deliver_notifications, note_command
from postel.imap.commands.table import COMMANDS, CommandSpec
from postel.imap.notify import NotifyState
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, CommandError, CopyMove, Fetch, parse_command
from postel.imap.proto.commands import Store as StoreArgs
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
from postel.imap.state import Bye, Continuation, State
from postel.imap.uidonly import uses_sequence_numbers
from postel.net import is_loopback
from postel.store.api import Store
from postel.store.bus import Bus, Subscription
from postel.store.errors import NotFound
from postel.store.model import Account

log = logging.getLogger("postel.imap")

T = TypeVar("T")


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
    store: Store
    bus: Bus
    authenticator: Authenticator
    limiter: FailureLimiter
    config: ImapConfig
    tmp_dir: Path
    # This worker's index for ID's `x-worker` (server.expose_worker_id); None: not shown.
    worker_id: int | None = None
    # [connections]: trusted proxies (ID x-originating-ip), the command rate.
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    feed: ChangeFeed = field(init=False)

    def __post_init__(self) -> None:
        # One per service: the sessions of this event loop share change reads.
        self.feed = ChangeFeed(self.store, self.bus)


# Seconds after which even a read-only command looks for changes without a hint.
FULL_POLL_EVERY = 30.0

__all__ = ["Bye", "Continuation", "ImapSession", "Services", "SessionIO", "State"]


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
        self.notify: NotifyState | None = None  # RFC 5465 NOTIFY SET in force

    # -- properties the handlers read ------------------------------------------------

    @property
    def store(self) -> Store:
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

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 3.1). The first one while a mailbox is
        selected reports the mailbox's HIGHESTMODSEQ, which the client has not been told
        (RFC 7162 3.1: "the server MUST ... send the HIGHESTMODSEQ response code")."""
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.untagged(f"OK [HIGHESTMODSEQ {self.selected.modseq}] Highest")

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def uidonly(self) -> bool:
        return "UIDONLY" in self.enabled  # RFC 9586

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
        return self.config.allow_plaintext_auth_on_loopback and is_loopback(self.ip)

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

    def capabilities(self) -> list[str]:
        return capabilities(
            self.config, state=self.state, tls=self.tls, tls_available=self.tls_available,
            plaintext_auth=self.plaintext_auth_allowed(), compressed=self.compressed,
        )

    async def greet(self) -> None:
        caps = " ".join(self.capabilities())
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
            log.info("connection ended", extra={"fields": {
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
        spec = COMMANDS.get(cmd.name)
        if spec is None:
            self.bad(cmd.tag, f"{cmd.name} is not supported")
            return
        if self.state not in spec.states:
            self.bad(cmd.tag, f"{cmd.name} is not allowed in this state")
            return
        if self.uidonly and uses_sequence_numbers(cmd):
            # RFC 9586 3: no message sequence numbers once UIDONLY is enabled.
            self.bad(cmd.tag, f"{cmd.name} needs UIDs here: UIDONLY is enabled", "UIDREQUIRED")
            return
        if not self._may_run(spec, cmd):
            return
        if self.selected is not None and not spec.reports_changes:
            # RFC 9051 7.3/7.4: changes may be reported with any command; the others
            # report them themselves, at the moment their own rules allow.
            await self.poll(force=False)
        await spec.handler(self, cmd)
        if self.notify is not None:
            note_command(self, cmd)

    def _may_run(self, spec: CommandSpec, cmd: Command) -> bool:
        """The checks the table asks for before the handler runs, in this order."""
        sel = self.selected
        if sel is None:
            return True
        if spec.by_sequence_number and isinstance(cmd.args, Fetch | StoreArgs | CopyMove) and (
            not sel.valid_sequence(cmd.args.sequence)
        ):
            # RFC 9051 6.4.5 and 7.5: a sequence number past the last message is an error.
            self.bad(cmd.tag, "Invalid message sequence number")
            return False
        if spec.needs_read_write and sel.readonly:
            self.no(cmd.tag, "Mailbox is read-only", "READ-ONLY")  # RFC 9051 6.3.3 EXAMINE
            return False
        return True

    async def poll(
        self, *, allow_expunge: bool = True, force: bool = True, shared: bool = False
    ) -> None:
        """Tell the client what changed in the selected mailbox (RFC 9051 7.3, 7.4).

        EXPUNGE (and VANISHED) must not be sent while a FETCH, STORE or SEARCH by sequence
        number is running (RFC 9051 7.4.1), so those pass allow_expunge=False.

        Read-only commands pass force=False: they skip the store when the change bus has
        said nothing since the last look (every commit of this process publishes a hint),
        which saves three queries per FETCH. NOOP, CHECK, IDLE and every command that
        changes the mailbox always look, and so does any command after FULL_POLL_EVERY
        seconds, so changes that reach the store without a hint (another process) show.

        ``shared``: woken by a hint (IDLE, NOTIFY), this poll may take its changes from a
        read another session of the mailbox began after that hint (imap/changefeed.py):
        one read for all the sessions a delivery wakes.
        """
        had_hint = False
        # Drain the hints first: one arriving after this read triggers another poll.
        if self.subscription is not None:
            while not self.subscription.queue.empty():
                self.subscription.queue.get_nowait()
                had_hint = True
        if had_hint and self.notify is not None:
            self.notify.pending = True  # the next NOTIFY round must look, too
        if self.selected is None:
            return
        now = time.monotonic()
        if not (force or had_hint or self.subscription is None
                or now - self.last_full_poll >= FULL_POLL_EVERY):
            return
        self.last_full_poll = now
        hint_seq = None
        if shared and self.subscription is not None and self.subscription.hint_seq:
            # Woken by a hint (wait_for_change took it off the queue already).
            hint_seq = self.subscription.hint_seq
        try:
            changes = await self.services.feed.changes(
                self.selected.mailbox_id, self.selected.modseq, hint_seq=hint_seq
            )
        except NotFound:
            # Another session deleted the selected mailbox; nothing sensible remains.
            raise Bye("Selected mailbox was deleted") from None
        claim = None
        if not self.selected.readonly and changes.mailbox.uidnext > self.selected.uidnext:
            # RFC 3501 2.3.2: claim, after reading, exactly the new messages read.
            claim = await self.services.feed.claim_recent(changes.mailbox,
                                                          changes.mailbox.uidnext)
        before = contexts.Snapshot(self, changes) if self.selected.contexts else None
        lines = self.selected.apply(changes, allow_expunge=allow_expunge,
                                    recent=claim, condstore=self.condstore,
                                    qresync=self.qresync,
                                    with_uid=self.notify is not None
                                    and self.notify.reports_selected)
        if before is not None:
            # RFC 5267 4.3: the live SEARCH/SORT results change with the mailbox.
            first, last = await contexts.refresh(self, before)
            lines = [r.untagged(t) for t in first] + lines + [r.untagged(t) for t in last]
        for line in lines:
            self.send(line)

    def subscribe(self) -> None:
        if self.subscription is None and self.account is not None:
            self.subscription = self.services.bus.subscribe(self.account.id)

    def wants_wakeups(self) -> bool:
        """Whether the server should wait on the change feed as well as on the client:
        during IDLE, and with NOTIFY whenever no command is in progress (RFC 5465 3)."""
        if self.subscription is None:
            return False
        return self.idling or (self.notify is not None and self.continuation is None
                               and self.receiver.between_commands)

    async def wake(self) -> None:
        """The change feed fired (IDLE, or NOTIFY between commands): report what changed."""
        try:
            self.check_credentials()
            if self.notify is None:
                await self.poll(shared=True)
            else:
                await deliver_notifications(self)
        except Bye as bye:
            self.send(r.untagged(f"BYE {bye}"))
            self.state = State.LOGOUT

    async def wait_for_change(self) -> None:
        """Wait until the store announces a change for this account (IDLE, NOTIFY).

        Under NOTIFY the wait ends after FULL_POLL_EVERY seconds even without a hint, so
        changes another process stored (which sends this one no hint) still show."""
        assert self.subscription is not None
        if self.notify is None:
            await self.subscription.get()
            return
        if self.notify.pending:
            return  # a command's poll took the hints; the notifications are still owed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscription.get(), FULL_POLL_EVERY)

