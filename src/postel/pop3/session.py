"""POP3 policy: who may log in, and what each command does to the maildrop.

One session per connection, in one of the RFC 1939 states: AUTHORIZATION (USER/PASS,
AUTH, STLS, UTF8), TRANSACTION (the maildrop snapshot is open and locked) and UPDATE
(after QUIT: marked messages are expunged, durably, then the connection closes). The session
reacts to events from ``proto.Pop3Reader`` and talks to the world only through
``SessionIO`` (send bytes, upgrade to TLS, close) and the store, so policy stays out of the
socket code and is tested without sockets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from postel.auth.sasl import MECHANISMS, Challenge, Failed, FailureKind, SaslServer, Step
from postel.auth.service import Authenticator
from postel.config import ConnectionsConfig, Pop3Config
from postel.net import is_loopback
from postel.pop3.maildrop import (
    Maildrop,
    MaildropLocks,
    MaildropMessage,
    TransferSizes,
    load_maildrop,
)
from postel.pop3.proto import (
    Auth,
    AuthResponse,
    Continuation,
    Dele,
    Event,
    Listing,
    Pass,
    Pop3Reader,
    ProtocolError,
    Reply,
    Retr,
    Simple,
    Top,
    User,
    err,
    ok,
)
from postel.pop3.transfer import READ_CHUNK, MessageEncoder
from postel.sessionlimits import CommandRate
from postel.store.api import Store
from postel.store.bus import Bus, Subscription
from postel.store.model import Account

log = logging.getLogger("postel.pop3")

IMPLEMENTATION = "Postel"


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"


class SessionIO(Protocol):
    async def send(self, data: bytes) -> None: ...
    async def start_tls(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class Services:
    """What a session needs from the rest of Postel; built once by the service."""

    hostname: str
    store: Store
    authenticator: Authenticator
    config: Pop3Config
    locks: MaildropLocks
    sizes: TransferSizes
    tls_available: bool  # STLS can be offered (port 110); False on 995, already TLS
    # Change hints; with it, a session signs out when its account's password changes.
    bus: Bus | None = None
    # This worker's index for CAPA's IMPLEMENTATION (server.expose_worker_id); None: not shown.
    worker_id: int | None = None
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)


class _BlobReadError(Exception):
    """A message body could not be read in the middle of a transfer."""


class Pop3Session:
    def __init__(self, services: Services, io: SessionIO, peer_ip: str, *, tls: bool) -> None:
        self.services = services
        self.io = io
        self.peer_ip = peer_ip
        self.tls = tls
        self.reader = Pop3Reader(max_line_length=services.config.max_line_length)
        self.state = State.AUTHORIZATION
        self.user: str | None = None  # the name given by USER, waiting for PASS
        self.utf8 = False  # RFC 6856: the client announced UTF-8 mode
        self.sasl: SaslServer | None = None
        self.auth_failures = 0
        self.account: Account | None = None
        self.maildrop: Maildrop | None = None
        self.subscription: Subscription | None = None
        self.busy = False  # a command is being answered (graceful shutdown lets it finish)
        connections = services.connections
        self.rate = CommandRate(connections.max_commands_per_second, connections.command_burst)
        self.closing = False  # QUIT, a fatal error or shutdown: stop reading

    # -- plumbing ------------------------------------------------------------------------

    async def _send(self, reply: Reply | Continuation) -> None:
        await self.io.send(reply.to_bytes())

    async def _close(self, reply: Reply | None = None) -> None:
        if reply is not None:
            await self._send(reply)
        self.closing = True
        self.end()
        self.io.close()

    def end(self) -> None:
        """The connection is over. Outside the UPDATE state this deletes nothing
        (RFC 1939 6: only QUIT from TRANSACTION removes messages); it frees the lock."""
        if self.account is not None and self.maildrop is not None:
            self.services.locks.release(self.account.id)
            self.maildrop = None
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None

    def _plaintext_allowed(self) -> bool:
        # RFC 2595 2.3: no clear-text password over an unencrypted connection, unless the
        # operator allows it from loopback (local tools).
        if self.tls:
            return True
        config = self.services.config
        return config.allow_plaintext_auth_on_loopback and is_loopback(self.peer_ip)

    def _implementation(self) -> str:
        # RFC 2449 6.9: free text. The worker's index only when a test config asks
        # (server.expose_worker_id), so a test can tell which process serves it.
        worker = self.services.worker_id
        return IMPLEMENTATION if worker is None else f"{IMPLEMENTATION} x-worker={worker}"

    async def greet(self) -> None:
        # No APOP timestamp in the greeting: APOP needs the plaintext password stored.
        await self._send(ok(f"{self.services.hostname} {IMPLEMENTATION} POP3 server ready"))

    async def request_shutdown(self) -> None:
        """Graceful stop: an idle session closes now, deleting nothing; a busy one after
        the command it is answering (a QUIT in progress completes its UPDATE)."""
        self.closing = True
        if not self.busy:
            self.end()
            self.io.close()

    # -- dispatch ------------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        self.reader.receive(data)
        while not self.closing:
            event = self.reader.next_event()
            if event is None:
                return
            if not self.rate.take():
                log.info("command flood", extra={"fields": {"ip": self.peer_ip}})
                await self._close(err("too many commands, slow down"))
                break
            self.busy = True
            try:
                await self.handle(event)
            finally:
                self.busy = False
        if self.closing:
            self.end()

    async def handle(self, event: Event) -> None:
        if self.subscription is not None and self.subscription.revoked:
            # The password changed (or the account was disabled) since login: sign out
            # without entering UPDATE, so nothing marked is deleted.
            await self._close(err("your password was changed; please log in again", "AUTH"))
            return
        if isinstance(event, ProtocolError):
            await self._protocol_error(event)
        elif isinstance(event, AuthResponse):
            await self._auth_response(event)
        elif isinstance(event, Simple) and event.verb in ("CAPA", "QUIT", "NOOP"):
            await self._anytime(event.verb)
        elif self.state is State.AUTHORIZATION:
            await self._authorization(event)
        else:
            await self._transaction(event)

    async def _protocol_error(self, event: ProtocolError) -> None:
        if self.sasl is not None:  # a SASL answer that was cut off ends the exchange
            self.sasl = None
            await self._auth_failed(err(event.text, "AUTH"))
            return
        await self._send(err(event.text))

    async def _anytime(self, verb: str) -> None:
        if verb == "CAPA":
            await self._send(Reply(True, "capability list follows", lines=self._capabilities()))
        elif verb == "NOOP":
            if self.state is State.AUTHORIZATION:
                await self._send(err("NOOP is valid after login only"))
            else:
                await self._send(ok())
        elif self.state is State.TRANSACTION:
            await self._update()
        else:
            await self._close(ok(f"{self.services.hostname} POP3 server signing off"))

    def _capabilities(self) -> tuple[str, ...]:
        """RFC 2449 5; what is offered depends on the state and on TLS (RFC 2595 2.3, 4)."""
        lines: list[str] = []
        if self.state is State.AUTHORIZATION and not self.tls and self.services.tls_available:
            lines.append("STLS")
        if self._plaintext_allowed():
            # RFC 2449 6.3 and 6.8: USER and SASL are announced in both states.
            lines.append("USER")
            lines.append("SASL " + " ".join(MECHANISMS))
        if self.state is State.AUTHORIZATION:
            # RFC 6856: UTF-8 in USER/PASS (the USER argument); UTF8 is valid before login.
            lines.append("UTF8 USER")
        lines += [
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",  # RFC 3206 5
            "PIPELINING",
            "EXPIRE NEVER",  # the server never deletes mail on its own (RFC 2449 6.7)
            "LOGIN-DELAY 0",  # RFC 2449 6.5
            f"IMPLEMENTATION {self._implementation()}",
        ]
        return tuple(lines)

    # -- AUTHORIZATION -------------------------------------------------------------------

    async def _authorization(self, event: Event) -> None:
        if isinstance(event, Simple) and event.verb == "STLS":
            await self._stls()
        elif isinstance(event, Simple) and event.verb == "UTF8":
            self.utf8 = True
            await self._send(ok("UTF-8 mode enabled"))  # RFC 6856
        elif isinstance(event, User | Pass | Auth) and not self._plaintext_allowed():
            await self._send(err("plaintext login is disabled; use STLS first", "SYS/PERM"))
        elif isinstance(event, User):
            self.user = event.name
            # RFC 1939 7 allows -ERR for an unknown name; +OK always, so nobody can probe
            # which addresses exist.
            await self._send(ok("send PASS"))
        elif isinstance(event, Pass):
            user, self.user = self.user, None
            if user is None:
                await self._send(err("USER first"))
            else:
                await self._login(user, event.password)
        elif isinstance(event, Auth):
            await self._auth(event)
        else:
            await self._send(err("command not valid before login"))

    async def _stls(self) -> None:
        if self.tls:
            await self._send(err("TLS already active"))
        elif not self.services.tls_available:
            await self._send(err("TLS not available"))
        else:
            await self._send(ok("begin TLS negotiation"))
            # RFC 2595 4: forget what was learned before TLS, including pipelined plaintext.
            self.reader.discard_buffer()
            self.user = None
            self.utf8 = False
            await self.io.start_tls()
            self.tls = True

    async def _auth(self, event: Auth) -> None:
        if event.mechanism is None:
            # RFC 1734 style: list the mechanisms (Outlook and others still ask this way).
            await self._send(Reply(True, "mechanisms follow", lines=MECHANISMS))
            return
        if not SaslServer.supports(event.mechanism):
            await self._send(err(f"mechanism {event.mechanism} is not supported"))
            return
        self.user = None
        self.sasl = SaslServer(event.mechanism)
        await self._sasl_step(self.sasl.start(event.initial_response))

    async def _auth_response(self, event: AuthResponse) -> None:
        if self.sasl is None:  # pragma: no cover - the reader yields this only after "+ "
            return
        await self._sasl_step(self.sasl.answer(event.line))

    async def _sasl_step(self, step: Step) -> None:
        if isinstance(step, Challenge):
            self.reader.expect_auth_response()
            await self._send(Continuation(step.encoded))  # RFC 5034 4
            return
        self.sasl = None
        if isinstance(step, Failed):
            if step.kind is FailureKind.AUTHZID:
                await self._auth_failed(err("authorization identity not allowed", "AUTH"))
            else:  # RFC 5034 4: "*" cancels, and the answer is -ERR; so is bad base64.
                await self._auth_failed(err(f"authentication failed: {step.reason}", "AUTH"))
            return
        await self._login(step.username, step.password)

    async def _login(self, username: str, password: str) -> None:
        """The login is the full email address (the Authenticator resolves it)."""
        services = self.services
        result = await services.authenticator.authenticate(
            username, password, self.peer_ip, protocol="pop3"
        )
        if result.throttled:
            # Brute-force protection tripped for this IP or account. SYS/TEMP (RFC 3206 4)
            # rather than AUTH, so the owner's phone retries later instead of asking for a
            # new password.
            log.info("login throttled", extra={"fields": {"ip": self.peer_ip}})
            await self._close(err("too many failed logins, try again later", "SYS/TEMP"))
            return
        account = result.account
        if account is None:
            await self._auth_failed(err("invalid user name or password", "AUTH"))
            return
        if not await services.locks.acquire(account.id):
            # RFC 2449 8.1.1; the session stays in AUTHORIZATION (RFC 1939 4, 7 PASS).
            await self._send(err("maildrop is locked by another POP3 session", "IN-USE"))
            return
        opened = False
        try:
            maildrop = await asyncio.to_thread(
                load_maildrop, services.store, account.id, services.sizes
            )
            opened = True
        except Exception:
            log.exception("cannot open maildrop", extra={"fields": {"user": account.email}})
            await self._send(err("cannot open the maildrop, try again later", "SYS/TEMP"))
            return
        finally:
            if not opened:  # also when the task is cancelled at shutdown
                services.locks.release(account.id)
        self.account = account
        self.maildrop = maildrop
        if services.bus is not None:
            self.subscription = services.bus.subscribe(account.id)
        self.state = State.TRANSACTION
        count, octets = maildrop.stat()
        log.info("logged in", extra={"fields": {
            "user": account.email, "ip": self.peer_ip, "messages": count}})
        await self._send(ok(f"maildrop has {count} messages ({octets} octets)"))

    async def _auth_failed(self, reply: Reply) -> None:
        self.auth_failures += 1
        log.info("authentication failed", extra={"fields": {"ip": self.peer_ip}})
        if self.auth_failures >= self.services.config.max_auth_failures:
            await self._close(
                Reply(False, f"{reply.text}; too many failures, closing connection", reply.code)
            )
        else:
            await self._send(reply)

    # -- TRANSACTION ---------------------------------------------------------------------

    async def _transaction(self, event: Event) -> None:
        maildrop = self.maildrop
        assert maildrop is not None
        if isinstance(event, Simple) and event.verb == "STAT":
            count, octets = maildrop.stat()
            await self._send(ok(f"{count} {octets}"))  # RFC 1939 5: exactly two numbers
        elif isinstance(event, Simple) and event.verb == "RSET":
            maildrop.reset()
            count, octets = maildrop.stat()
            await self._send(ok(f"maildrop has {count} messages ({octets} octets)"))
        elif isinstance(event, Listing):
            await self._listing(maildrop, event)
        elif isinstance(event, Retr):
            await self._retrieve(maildrop, event.number, None)
        elif isinstance(event, Top):
            await self._retrieve(maildrop, event.number, event.lines)
        elif isinstance(event, Dele):
            found = maildrop.get(event.number)
            if isinstance(found, str):
                await self._send(err(found))
            else:
                found.deleted = True  # RFC 1939 5: marked now, removed in UPDATE
                await self._send(ok(f"message {event.number} deleted"))
        else:
            await self._send(err("command not valid after login"))

    def _listing_value(self, maildrop: Maildrop, verb: str, message: MaildropMessage) -> str:
        return str(message.size) if verb == "LIST" else maildrop.unique_id(message)

    async def _listing(self, maildrop: Maildrop, event: Listing) -> None:
        """LIST and UIDL (RFC 1939 5, 7): scan lines "n value", deleted messages left out."""
        if event.number is not None:
            found = maildrop.get(event.number)
            if isinstance(found, str):
                await self._send(err(found))
            else:
                value = self._listing_value(maildrop, event.verb, found)
                await self._send(ok(f"{event.number} {value}"))
            return
        live = maildrop.live()
        lines = tuple(f"{n} {self._listing_value(maildrop, event.verb, m)}" for n, m in live)
        if event.verb == "LIST":
            count, octets = maildrop.stat()
            text = f"{count} messages ({octets} octets)"
        else:
            text = "unique-id listing follows"
        await self._send(Reply(True, text, lines=lines))

    async def _retrieve(self, maildrop: Maildrop, number: int, body_lines: int | None) -> None:
        """RETR (body_lines None) and TOP: stream the blob in chunks, never whole."""
        found = maildrop.get(number)
        if isinstance(found, str):
            await self._send(err(found))
            return
        try:
            handle = await asyncio.to_thread(self.services.store.blobs.open, found.blob_sha256)
        except (OSError, ValueError) as exc:
            log.warning("message body unreadable", extra={"fields": {
                "mailbox": maildrop.mailbox_id, "uid": found.uid, "error": str(exc)}})
            await self._send(err("message body is unavailable", "SYS/TEMP"))
            return
        head = f"{found.size} octets" if body_lines is None else "top of message follows"
        try:
            await self._stream(handle, ok(head).to_bytes(), MessageEncoder(body_lines))
        except _BlobReadError as exc:
            # +OK and part of the body are out; no -ERR can follow inside a multi-line
            # response, so the only honest signal left is closing the connection.
            log.error("message body read failed mid-transfer", extra={"fields": {
                "mailbox": maildrop.mailbox_id, "uid": found.uid, "error": str(exc.__cause__)}})
            await self._close()
        finally:
            handle.close()

    async def _stream(self, handle: BinaryIO, head: bytes, encoder: MessageEncoder) -> None:
        # At most about two chunks are in memory at a time; drain() in send() applies the
        # client's back-pressure between them.
        pending = head
        while not encoder.done:
            try:
                chunk = await asyncio.to_thread(handle.read, READ_CHUNK)
            except OSError as exc:
                raise _BlobReadError() from exc
            if not chunk:
                break
            pending += encoder.feed(chunk)
            if len(pending) >= READ_CHUNK:
                await self.io.send(pending)
                pending = b""
        await self.io.send(pending + encoder.finish())

    async def _update(self) -> None:
        """RFC 1939 6: QUIT in TRANSACTION enters UPDATE; marked messages are removed in
        one store transaction (durable before +OK; IMAP sessions see them as expunges)."""
        maildrop = self.maildrop
        assert maildrop is not None
        self.state = State.UPDATE
        uids = maildrop.marked_uids()
        remaining = len(maildrop.messages) - len(uids)
        try:
            if uids:
                await asyncio.to_thread(self.services.store.mail.expunge, maildrop.mailbox_id, uids)
        except Exception:
            log.exception("UPDATE failed", extra={"fields": {"mailbox": maildrop.mailbox_id}})
            reply = err("some deleted messages not removed", "SYS/TEMP")
        else:
            reply = ok(f"{self.services.hostname} POP3 server signing off "
                       f"({len(uids)} deleted, {remaining} left)")
        # Release the lock before answering, so a client that reconnects as soon as it
        # reads +OK never meets its own old session's lock.
        self.end()
        await self._close(reply)
