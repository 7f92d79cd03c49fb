"""One SMTP connection: the envelope, the body on its way to the store, AUTH, logging.

One session per connection; one transaction (envelope + body) at a time, reset after
RSET, after the end of the data, and after STARTTLS (RFC 3207 4.2). The session reacts to
events from ``state.SmtpConnection`` (which has already refused commands out of order and
parsed MAIL/RCPT parameters), asks its listener's ``policy`` who may do what, and talks to
the world only through ``SessionIO`` (send a reply, upgrade to TLS, close) and the store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from postel import imapurl
from postel.auth.limits import FailureLimiter
from postel.auth.sasl import MECHANISMS, Challenge, Failed, FailureKind, SaslServer, Step
from postel.auth.service import Authenticator, login_key
from postel.config import ConnectionsConfig, MailauthConfig, SmtpConfig
from postel.delivery import Envelope, deliver
from postel.mail.address import Address
from postel.mail.mime import ParsedMessage, parse_message_file
from postel.mailauth.dns import Resolver
from postel.mailauth.inbound import Action, InboundVerdict
from postel.net import in_networks
from postel.sessionlimits import CommandRate
from postel.smtp import checks
from postel.smtp import replies as r
from postel.smtp.authorship import author_refusal
from postel.smtp.policy import Client, Listener, ListenerPolicy, policy_for
from postel.smtp.proto import (
    Auth,
    AuthResponse,
    Bdat,
    BodyData,
    BodyEnd,
    Burl,
    Data,
    Ehlo,
    ProtocolError,
    SimpleCommand,
)
from postel.smtp.replies import Reply
from postel.smtp.state import ConnectionEvent, MailFrom, RcptTo, SmtpConnection
from postel.smtp.trace import Received, return_path, with_protocol
from postel.smtp.xclient import ATTRIBUTES as XCLIENT_ATTRIBUTES
from postel.smtp.xclient import XclientError, parse_xclient
from postel.store.api import Store
from postel.store.blobs import BlobWriter
from postel.store.bus import Bus, Subscription
from postel.store.model import Account, DsnRequest
from postel.submission import Refusal, route_local

log = logging.getLogger("postel.smtp")


class SessionIO(Protocol):
    async def send(self, data: bytes) -> None: ...
    async def start_tls(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class Services:
    """What a session needs from the rest of Postel; built once by the composition root."""

    hostname: str
    store: Store
    authenticator: Authenticator
    limiter: FailureLimiter
    config: SmtpConfig
    tls_available: bool
    mailauth: MailauthConfig = field(default_factory=MailauthConfig)
    resolver: Resolver | None = None  # None: no SPF/DKIM/DMARC checks on port 25
    # Change hints; with it, a logged-in session ends when its account's password changes.
    bus: Bus | None = None
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)


@dataclass
class Transaction:
    mail_from: Address | None = None
    local: dict[int, Account] = field(default_factory=dict)
    remote: list[str] = field(default_factory=list)
    rcpt_count: int = 0
    smtputf8: bool = False
    body_8bit: bool = False
    body_binary: bool = False  # RFC 3030 3 BODY=BINARYMIME (the body came by BDAT, raw)
    declared_size: int = 0
    # DSN (RFC 3461): MAIL's RET / ENVID, RCPT's NOTIFY / ORCPT per remote recipient.
    dsn_ret: str | None = None
    dsn_envid: str | None = None
    dsn_notify: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dsn_orcpt: dict[str, str] = field(default_factory=dict)
    local_rcpts: list[str] = field(default_factory=list)  # RCPT addresses delivered here
    requiretls: bool = False  # RFC 8689: MAIL REQUIRETLS
    writer: BlobWriter | None = None
    # The spool holds the message as received; trace headers and Authentication-Results
    # are put in front of it once the checks have run (_authenticate).
    checks_pending: bool = False
    return_path_length: int = 0
    size: int = 0
    too_big: bool = False
    queue_id: str = field(default_factory=lambda: secrets.token_hex(6).upper())

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


class SmtpSession:
    def __init__(
        self,
        services: Services,
        io: SessionIO,
        listener: Listener,
        peer_ip: str,
        *,
        tls: bool,
    ) -> None:
        self.services = services
        self.io = io
        self.listener = listener
        self.peer_ip = peer_ip
        self.tls = tls
        self.connection = SmtpConnection(max_line_length=services.config.max_line_length)
        self.policy: ListenerPolicy = policy_for(
            listener, services.config, checks_inbound=services.resolver is not None
        )
        self.helo: str | None = None
        self.extended = False
        self.account: Account | None = None
        self.subscription: Subscription | None = None
        self.own_addresses: set[str] = set()
        self.transaction = Transaction()
        self.sasl: SaslServer | None = None
        self.auth_failures = 0
        self.junk = 0
        self.transactions = 0  # MAIL commands accepted (LIMITS MAILMAX, RFC 9422 4.1)
        self.closing = False  # QUIT, a fatal error, or shutdown: stop reading
        self.shutdown_requested = False
        connections = services.connections
        self.rate = CommandRate(connections.max_commands_per_second, connections.command_burst)
        # XCLIENT is for the proxies the operator trusts, judged by the connection's own
        # address (an XCLIENT ADDR replaces peer_ip, not this).
        self.proxy_trusted = in_networks(peer_ip, connections.trusted_proxies)
        self.xclient_helo: str | None = None

    # -- helpers -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """In the middle of a transaction that graceful shutdown should let finish."""
        return self.connection.in_transaction

    @property
    def client(self) -> Client:
        return Client(self.peer_ip, self.tls, self.account, frozenset(self.own_addresses))

    async def _reply(self, reply: Reply) -> None:
        await self.io.send(self.connection.send(reply))

    async def _fatal(self, reply: Reply) -> None:
        await self._reply(reply)
        self.closing = True
        self.transaction.abort()
        self.io.close()

    async def _junk(self, reply: Reply) -> None:
        self.junk += 1
        if self.junk > self.services.config.max_junk_commands:
            await self._fatal(Reply(421, "4.7.0", "too many errors, closing connection"))
        else:
            await self._reply(reply)

    def end(self) -> None:
        """The connection is over: drop the transaction and the change subscription."""
        self.transaction.abort()
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None

    def _reset(self) -> None:
        self.transaction.abort()
        self.transaction = Transaction()

    async def greet(self) -> None:
        await self._reply(Reply(220, "", f"{self.services.hostname} ESMTP Postel"))

    async def request_shutdown(self) -> None:
        """Graceful stop: idle sessions are told 421 now, busy ones after their transaction."""
        self.shutdown_requested = True
        if not self.busy and not self.closing:
            await self._fatal(r.SHUTTING_DOWN)

    # -- dispatch ------------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        self.connection.receive(data)
        while not self.closing:
            event = self.connection.next_event()
            if event is None:
                return
            # Message data is not a command: BDAT chunks of a big message come fast.
            counted = not isinstance(event, BodyData | BodyEnd | Bdat)
            if counted and not self.rate.take():
                log.info("command flood", extra={"fields": {"ip": self.peer_ip}})
                await self._fatal(Reply(421, "4.7.0", "too many commands, slow down"))
                return
            await self.handle(event)

    async def handle(self, event: ConnectionEvent) -> None:
        match event:
            case BodyData():
                self._body_data(event.data)
            case BodyEnd():
                await self._body_end(event)
            case Ehlo():
                await self._ehlo(event)
            case MailFrom():
                await self._mail(event)
            case RcptTo():
                await self._rcpt(event)
            case Data():
                await self._data()
            case Bdat():
                self._bdat()
            case Burl():
                await self._burl(event)
            case Auth():
                await self._auth(event)
            case AuthResponse():
                await self._auth_response(event)
            case SimpleCommand():
                await self._simple(event)
            case ProtocolError():
                if not self.connection.in_transaction:
                    self._reset()  # a refused BDAT ends its transaction (RFC 3030 2)
                await self._junk(Reply(event.code, event.enhanced, event.text))

    async def _simple(self, event: SimpleCommand) -> None:
        verb = event.verb
        if verb == "QUIT":
            await self._fatal(Reply(221, "2.0.0", f"{self.services.hostname} closing connection"))
        elif verb == "RSET":
            self._reset()
            await self._reply(r.OK)
        elif verb == "NOOP":
            await self._junk(r.OK)
        elif verb == "STARTTLS":
            await self._starttls(event.argument)
        elif verb == "XCLIENT":
            await self._xclient(event.argument)
        elif verb == "HELP":
            await self._junk(Reply(214, "2.0.0", "see RFC 5321; https://www.rfc-editor.org"))
        else:  # VRFY, EXPN: RFC 5321 3.5.3 allows 252 so addresses cannot be harvested
            await self._junk(Reply(252, "2.5.0", "cannot verify the user, but will try delivery"))

    # -- greeting, TLS, AUTH ----------------------------------------------------------

    def _extensions(self) -> list[str]:
        config = self.services.config
        lines = [
            f"SIZE {config.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "PIPELINING",
            "CHUNKING",
            "BINARYMIME",  # RFC 3030 3: with CHUNKING, binary bodies are kept as sent
            "ENHANCEDSTATUSCODES",
            "DSN",  # RFC 3461: RET, ENVID, NOTIFY, ORCPT
            # RFC 9422 4: the limits this session applies, so clients can adapt.
            f"LIMITS RCPTMAX={config.max_recipients} MAILMAX={config.max_transactions}",
        ]
        if not self.tls and self.services.tls_available:
            lines.append("STARTTLS")
        if self.tls:
            lines.append("REQUIRETLS")  # RFC 8689 4.1: offered only over TLS
        if self.account is None and self.policy.auth_refusal(self.client) is None:
            lines.append("AUTH " + " ".join(MECHANISMS))
        if self.policy.offers_burl:
            lines.append("BURL imap")  # RFC 4468 3: IMAP URLs with URLAUTH
        if self.proxy_trusted:
            lines.append("XCLIENT " + " ".join(XCLIENT_ATTRIBUTES))  # to trusted proxies only
        return lines

    async def _xclient(self, argument: str) -> None:
        """Postfix's XCLIENT from a trusted proxy: the client's address, HELO name and
        login replace the proxy's; answered with a new greeting (XCLIENT_README)."""
        if not self.proxy_trusted:
            await self._junk(Reply(550, "5.7.0", "insufficient authorization"))
            return
        if self.connection.in_transaction:
            await self._junk(Reply(503, "5.5.1", "mail transaction in progress"))
            return
        try:
            attributes = parse_xclient(argument)
        except XclientError as exc:
            await self._junk(Reply(501, "5.5.4", str(exc)))
            return
        account = None
        if attributes.login is not None:
            key = login_key(attributes.login)
            account = await asyncio.to_thread(
                self.services.store.directory.get_account, key
            ) if key else None
            if account is None or account.disabled:
                await self._junk(Reply(550, "5.7.0", "XCLIENT LOGIN names no account"))
                return
        log.info("client named by XCLIENT", extra={"fields": {
            "proxy": self.peer_ip, "ip": attributes.addr, "name": attributes.name,
            "user": attributes.login}})
        self._reset()
        self.helo = None
        if attributes.addr is not None:
            self.peer_ip = attributes.addr
        self.xclient_helo = attributes.helo
        if account is not None:
            await self._logged_in(account)
        await self.greet()

    async def _ehlo(self, event: Ehlo) -> None:
        self._reset()
        self.helo = self.xclient_helo or event.domain
        self.extended = event.extended
        greeting = f"{self.services.hostname} greets {event.domain}"
        if not event.extended:
            await self._reply(Reply(250, "", greeting))
            return
        await self._reply(Reply(250, "", (greeting, *self._extensions())))

    async def _starttls(self, argument: str) -> None:
        if argument:
            await self._junk(Reply(501, "5.5.4", "STARTTLS takes no argument"))
        elif self.tls:
            await self._junk(Reply(503, "5.5.1", "TLS already active"))
        elif not self.services.tls_available:
            await self._junk(Reply(454, "4.7.0", "TLS not available"))
        else:
            # RFC 3207 4.2: forget everything learned before TLS; the connection drops the
            # plaintext pipelined after the command when it sends the 220.
            await self._reply(Reply(220, "2.0.0", "ready to start TLS"))
            self._reset()
            self.helo = None
            await self.io.start_tls()
            self.tls = True

    async def _auth(self, event: Auth) -> None:
        # EHLO first, not twice, not inside a transaction: the connection checked that.
        refusal = self.policy.auth_refusal(self.client)
        if refusal is not None:
            await self._junk(refusal)
            return
        if not SaslServer.supports(event.mechanism):
            await self._junk(Reply(504, "5.5.4", "mechanism not supported"))
            return
        self.sasl = SaslServer(event.mechanism)
        await self._sasl_step(self.sasl.start(event.initial_response))

    async def _auth_response(self, event: AuthResponse) -> None:
        if self.sasl is None:  # pragma: no cover - the reader only yields this after 334
            return
        await self._sasl_step(self.sasl.answer(event.line))

    async def _sasl_step(self, step: Step) -> None:
        if isinstance(step, Challenge):
            await self._reply(Reply(334, "", step.encoded))  # RFC 4954 4
            return
        self.sasl = None
        if isinstance(step, Failed):
            if step.kind is FailureKind.AUTHZID:
                await self._auth_failed(Reply(535, "5.7.8", "authorization identity not allowed"))
            else:  # RFC 4954 4: a cancelled exchange or bad base64 is answered 501
                await self._auth_failed(Reply(501, "5.5.2", "cannot decode the AUTH response"))
            return
        result = await self.services.authenticator.authenticate(
            step.username, step.password, self.peer_ip, protocol="smtp"
        )
        if result.throttled:
            await self._fatal(Reply(421, "4.7.0", "too many failed logins, try again later"))
            return
        if result.account is None:
            await self._auth_failed(r.AUTH_FAILED)
            return
        await self._logged_in(result.account)
        log.info(
            "authenticated",
            extra={"fields": {"user": result.account.email, "ip": self.peer_ip}},
        )
        await self._reply(r.AUTH_OK)

    async def _logged_in(self, account: Account) -> None:
        """AUTH succeeded (or a trusted proxy's XCLIENT LOGIN named the user)."""
        if self.subscription is not None:
            self.subscription.close()
        self.account = account
        if self.services.bus is not None:
            self.subscription = self.services.bus.subscribe(account.id)
        self.own_addresses = await asyncio.to_thread(
            self.services.store.directory.addresses_of, account
        )

    async def _auth_failed(self, reply: Reply) -> None:
        self.auth_failures += 1
        log.info("authentication failed", extra={"fields": {"ip": self.peer_ip}})
        if self.auth_failures >= self.services.config.max_auth_failures:
            await self._reply(reply)
            await self._fatal(Reply(421, "4.7.0", "too many failed logins, closing connection"))
        else:
            await self._reply(reply)

    # -- envelope ---------------------------------------------------------------------

    async def _mail(self, event: MailFrom) -> None:
        # EHLO first, no nested MAIL, parameter syntax: the connection checked those.
        refusal = self.policy.mail_refusal(self.client)
        if refusal is not None:
            await self._junk(refusal)
            return
        if self.subscription is not None and self.subscription.revoked:
            # The password changed (or the account was disabled) since AUTH.
            await self._fatal(Reply(421, "4.7.0", "your password was changed; log in again"))
            return
        if self.transactions >= self.services.config.max_transactions:
            # RFC 9422 4.1: past MAILMAX the client continues in a new session.
            await self._fatal(Reply(421, "4.7.0", "too many transactions, reconnect"))
            return
        params = event.params
        if params.size is not None and params.size > self.services.config.max_message_size:
            await self._reply(r.SIZE_EXCEEDED)  # RFC 1870 6.1
            return
        sender = event.reverse_path
        if sender is not None and sender.needs_smtputf8 and not params.smtputf8:
            # RFC 6531 3.5: a non-ASCII path needs the SMTPUTF8 parameter.
            await self._reply(Reply(553, "5.6.7", "non-ASCII address needs SMTPUTF8"))
            return
        if params.requiretls and not self.tls:
            # RFC 8689 4.1: REQUIRETLS is valid only on a TLS session.
            await self._reply(Reply(530, "5.7.10", "REQUIRETLS needs TLS"))
            return
        refusal = self.policy.sender_refusal(self.client, sender)
        if refusal is not None:
            await self._reply(refusal)
            return
        self.transaction = Transaction(
            mail_from=sender,
            smtputf8=params.smtputf8,
            body_8bit=params.eight_bit,
            body_binary=params.binary,
            declared_size=params.size or 0,
            dsn_ret=params.ret.value if params.ret else None,
            dsn_envid=params.envid,
            requiretls=params.requiretls,
        )
        self.transactions += 1
        await self._reply(r.SENDER_OK)

    async def _rcpt(self, event: RcptTo) -> None:
        # After MAIL, with no parameters: the connection checked those.
        transaction = self.transaction
        if transaction.rcpt_count >= self.services.config.max_recipients:
            await self._reply(r.TOO_MANY_RECIPIENTS)
            return
        rcpt = event.forward_path
        if rcpt.needs_smtputf8 and not transaction.smtputf8:
            await self._reply(Reply(553, "5.6.7", "non-ASCII address needs SMTPUTF8"))
            return
        store = self.services.store
        if await asyncio.to_thread(store.directory.is_local_domain, rcpt.domain):
            reply = await self._local_rcpt(rcpt)
            if reply.is_positive:
                transaction.local_rcpts.append(str(rcpt))
                self._note_dsn(str(rcpt), event)
        else:
            reply = self.policy.remote_recipient(self.client)
            if reply.is_positive:
                transaction.remote.append(str(rcpt))
                self._note_dsn(str(rcpt), event)
        if reply.is_positive:
            transaction.rcpt_count += 1
            await self._reply(reply)
        else:
            await self._junk(reply)

    def _note_dsn(self, recipient: str, event: RcptTo) -> None:
        """Keep RCPT's NOTIFY / ORCPT (RFC 3461 4.1, 4.2) for the queued copy."""
        params = event.params
        if params.notify:
            self.transaction.dsn_notify[recipient] = tuple(sorted(n.value for n in params.notify))
        if params.orcpt:
            self.transaction.dsn_orcpt[recipient] = params.orcpt

    def _dsn_request(self) -> DsnRequest:
        transaction = self.transaction
        return DsnRequest(
            ret=transaction.dsn_ret,
            envid=transaction.dsn_envid,
            notify=transaction.dsn_notify,
            orcpt=transaction.dsn_orcpt,
        )

    async def _local_rcpt(self, rcpt: Address) -> Reply:
        routed = await asyncio.to_thread(route_local, self.services.store, rcpt.key,
                                         self.transaction.declared_size)
        if routed is Refusal.UNKNOWN_USER:
            return r.UNKNOWN_USER
        if routed is Refusal.UNAVAILABLE:
            return Reply(550, "5.2.1", "mailbox unavailable")
        if routed is Refusal.FULL:
            return Reply(452, "4.2.2", f"mailbox of {rcpt} is full")
        assert not isinstance(routed, Refusal)
        accounts, remote = routed
        for account in accounts:
            self.transaction.local[account.id] = account
        # Forwarding aliases relay onward; that needs the queue, which accepts them.
        self.transaction.remote.extend(a for a in remote if a not in self.transaction.remote)
        return r.RECIPIENT_OK

    # -- body -------------------------------------------------------------------------

    def _open_body(self) -> None:
        """Start the spool file with our trace headers (RFC 5321 4.4), or, when the
        message is to be checked, with nothing: the checks read it as the sender wrote it."""
        transaction = self.transaction
        writer = self.services.store.blobs.writer()
        transaction.writer = writer
        if self.policy.checks_inbound:
            transaction.checks_pending = True
            return
        writer.write(self._trace_headers())

    def _trace_headers(self) -> bytes:
        """Return-Path (only for final delivery, RFC 5321 4.4) and Received."""
        transaction = self.transaction
        path = return_path(transaction.mail_from) if transaction.local else b""
        transaction.return_path_length = len(path)
        received = Received(
            helo=self.helo,
            peer_ip=self.peer_ip,
            hostname=self.services.hostname,
            protocol=with_protocol(
                extended=self.extended,
                smtputf8=transaction.smtputf8,
                tls=self.tls,
                authenticated=self.account is not None,
            ),
            queue_id=transaction.queue_id,
            recipients=(*(a.email for a in transaction.local.values()), *transaction.remote),
            when=datetime.now(UTC),
        )
        return path + received.to_bytes()

    async def _data(self) -> None:
        # After MAIL and an accepted RCPT, not after BDAT: the connection checked those,
        # and starts reading the body when it sees the 354.
        self._open_body()
        await self._reply(r.START_DATA)

    def _bdat(self) -> None:
        # The order was checked; the chunk follows and is answered at its end.
        transaction = self.transaction
        if transaction.writer is None and not transaction.too_big:
            self._open_body()  # the first chunk; later ones append to the same spool

    async def _burl(self, event: Burl) -> None:
        """RFC 4468: the URL's bytes are the next chunk of the message, fetched straight
        from the store; the last one ends the message as BDAT LAST does, with the same
        sender checks as DATA."""
        if not self.policy.offers_burl or self.account is None:
            self._reset()
            await self._junk(Reply(500, "5.5.2", "BURL is not offered on this port"))
            return
        try:
            data = await asyncio.to_thread(self._fetch_url, event.url, self.account.email)
        except imapurl.UrlError as exc:
            self._log("refused-burl", r.BURL_REFUSED, reason=str(exc))
            self._reset()  # RFC 4468 6: a URL that fails ends the transaction
            await self._reply(r.BURL_REFUSED)
            return
        self._bdat()
        self._body_data(data)
        await self._body_end(BodyEnd(last=event.last))

    def _fetch_url(self, text: str, login: str) -> bytes:
        """Blocking: the bytes of a URLAUTH URL the user may have fetched on its behalf
        (RFC 4468 3: only URLs with a URLAUTH token; RFC 4467 3 submit+ access)."""
        store = self.services.store
        url = imapurl.parse_url(text)
        if url.user is None:
            raise imapurl.UrlError("BURL needs an absolute imap:// URL")
        target = imapurl.verify(store, url, login=login, submit=True)
        return imapurl.read_target(store, target, url.section)

    def _body_data(self, data: bytes) -> None:
        transaction = self.transaction
        transaction.size += len(data)
        if transaction.size > self.services.config.max_message_size and not transaction.too_big:
            # Keep reading to the end of the data (RFC 5321 4.5.3.1.10 answers 552 after
            # it), but stop writing and give the spool space back now.
            transaction.too_big = True
            transaction.abort()
        if transaction.writer is not None:
            transaction.writer.write(data)

    async def _body_end(self, event: BodyEnd) -> None:
        transaction = self.transaction
        if not event.last:  # a BDAT chunk that is not the last one
            await self._reply(Reply(250, "2.0.0", f"{transaction.size} octets received"))
            return
        if event.smuggling:
            await self._finish(r.SMUGGLING, "refused-smuggling")
        elif transaction.too_big:
            await self._finish(r.SIZE_EXCEEDED, "refused-size")
        else:
            await self._finish(await self._store_message(), None)

    async def _finish(self, reply: Reply, result: str | None) -> None:
        if result is not None:
            self._log(result, reply)
        self._reset()
        await self._reply(reply)
        if self.shutdown_requested:
            await self._fatal(r.SHUTTING_DOWN)

    async def _store_message(self) -> Reply:
        transaction = self.transaction
        writer = transaction.writer
        assert writer is not None
        transaction.writer = None
        started = time.monotonic()
        verdict: InboundVerdict | None = None
        try:
            if transaction.checks_pending:
                verdict, writer = await self._check_and_stamp(writer)
                refusal = checks.refusal(verdict)
                if refusal is not None:
                    writer.abort()
                    self._log("refused-mailauth", refusal, reason=verdict.reason)
                    return refusal
            refusal = await self._check_quota()
            if refusal is not None:
                writer.abort()
                self._log("refused-quota", refusal)
                return refusal
            blob = await asyncio.to_thread(writer.commit)
            path = self.services.store.blobs.path(blob.sha256)
            parsed = await asyncio.to_thread(parse_message_file, path)
            refusal = self._check_from_header(parsed)
            if refusal is not None:
                self._log("refused-from", refusal)
                return refusal
            envelope = Envelope(
                queue_id=transaction.queue_id,
                mail_from=str(transaction.mail_from) if transaction.mail_from else "",
                local=list(transaction.local.values()),
                remote=transaction.remote,
                account_id=self.account.id if self.account else None,
                smtputf8=transaction.smtputf8,
                body_8bit=transaction.body_8bit,
                body_binary=transaction.body_binary,
                mailbox="Junk" if verdict and verdict.action is Action.QUARANTINE else "INBOX",
                dsn=self._dsn_request(),
                local_recipients=transaction.local_rcpts,
                requiretls=transaction.requiretls,
                hostname=self.services.hostname,
            )
            await asyncio.to_thread(
                deliver,
                self.services.store,
                blob,
                parsed,
                envelope,
                return_path_length=transaction.return_path_length,
            )
        except Exception:
            writer.abort()
            log.exception("storing a message failed", extra={"fields": self._fields()})
            return r.TEMP_FAILURE
        reply = Reply(250, "2.0.0", f"OK queued as {transaction.queue_id}")
        extra: dict[str, object] = {"ms": round((time.monotonic() - started) * 1000, 1)}
        if verdict is not None and verdict.dmarc is not None:
            extra.update(dmarc=verdict.dmarc.result.value, action=verdict.action.value)
        self._log("delivered", reply, **extra)
        return reply

    async def _check_quota(self) -> Reply | None:
        """The quota again with the real size: RCPT could check only SIZE=, which a
        client may leave out (issue 15 item 10). One full mailbox refuses the message,
        since one reply to the data covers every recipient (RFC 5321 4.2.5)."""
        store = self.services.store
        for account in self.transaction.local.values():
            if account.quota_bytes:
                used = await asyncio.to_thread(store.directory.account_usage, account.id)
                if used + self.transaction.size > account.quota_bytes:
                    # RFC 3463 3.3: X.2.2 mailbox full; 552 as RFC 5321 4.2.2 lists it.
                    return Reply(552, "5.2.2", f"mailbox of {account.email} is full")
        return None

    async def _check_and_stamp(self, spool: BlobWriter) -> tuple[InboundVerdict, BlobWriter]:
        services = self.services
        assert services.resolver is not None
        sender = self.transaction.mail_from
        return await checks.check_and_stamp(
            spool,
            blobs=services.store.blobs,
            resolver=services.resolver,
            config=services.mailauth,
            hostname=services.hostname,
            ip=self.peer_ip,
            helo=self.helo or "",
            mail_from=str(sender) if sender else "",
            trace=self._trace_headers(),
        )

    def _check_from_header(self, parsed: ParsedMessage) -> Reply | None:
        """On submission the author fields must name the user's own addresses too."""
        if not self.policy.checks_from_header:
            return None
        return author_refusal(parsed, self.own_addresses)

    def _fields(self) -> dict[str, object]:
        transaction = self.transaction
        return {
            "queue_id": transaction.queue_id,
            "ip": self.peer_ip,
            "listener": self.listener.value,
            "user": self.account.email if self.account else None,
            "from": str(transaction.mail_from) if transaction.mail_from else "",
            "to": [a.email for a in transaction.local.values()] + transaction.remote,
            "size": transaction.size,
        }

    def _log(self, result: str, reply: Reply, **extra: object) -> None:
        fields = self._fields()
        fields.update(result=result, reply=reply.code, **extra)
        log.info("transaction", extra={"fields": fields})
