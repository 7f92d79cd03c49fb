"""SMTP policy: what each listener accepts, from whom, for whom.

One session per connection; one transaction (envelope + body) at a time, reset after
RSET, after the end of the data, and after STARTTLS (RFC 3207 4.2). The session reacts to
events from ``proto.SmtpReader`` and talks to the world only through ``SessionIO`` (send a
reply, upgrade to TLS, close) and the store, so policy stays out of the socket code.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

from postel.auth.limits import FailureLimiter
from postel.auth.sasl import MECHANISMS, Challenge, Credentials, SaslExchange
from postel.auth.service import Authenticator
from postel.config import MailauthConfig, SmtpConfig
from postel.delivery import Envelope, deliver
from postel.mail.address import Address, AddressError, parse_email
from postel.mail.mime import ParsedMessage, parse_message_file
from postel.mailauth.authresults import copy_without_forgeries
from postel.mailauth.dns import Resolver
from postel.mailauth.inbound import Action, InboundVerdict, check_inbound
from postel.smtp import replies as r
from postel.smtp.proto import (
    Auth,
    AuthResponse,
    Bdat,
    BodyData,
    BodyEnd,
    Data,
    Ehlo,
    Event,
    Mail,
    ProtocolError,
    Rcpt,
    SimpleCommand,
    SmtpReader,
)
from postel.smtp.replies import Reply
from postel.store.blobs import BlobWriter
from postel.store.bus import InProcessBus, Subscription
from postel.store.model import Account
from postel.store.sql.store import SqlStore

log = logging.getLogger("postel.smtp")


def _flushed(spool: BlobWriter) -> Path:
    """The spool's path with everything written so far readable from it."""
    spool._file.flush()
    return spool.tmp_path


def _refusal(verdict: InboundVerdict) -> Reply | None:
    if verdict.action is Action.REJECT:
        return Reply(550, "5.7.1", verdict.reason or "rejected by DMARC policy")
    if verdict.action is Action.DEFER:
        return Reply(451, "4.7.0", verdict.reason or "authentication checks failed, try later")
    return None


class Listener(enum.Enum):
    MX = "smtp"  # port 25: mail from the internet for local users
    SUBMISSION = "submission"  # port 587: STARTTLS, then AUTH
    SUBMISSIONS = "submissions"  # port 465: implicit TLS, then AUTH


class SessionIO(Protocol):
    async def send(self, data: bytes) -> None: ...
    async def start_tls(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class Services:
    """What a session needs from the rest of Postel; built once by the composition root."""

    hostname: str
    store: SqlStore
    authenticator: Authenticator
    limiter: FailureLimiter
    config: SmtpConfig
    tls_available: bool
    mailauth: MailauthConfig = field(default_factory=MailauthConfig)
    resolver: Resolver | None = None  # None: no SPF/DKIM/DMARC checks on port 25
    # Change hints; with it, a logged-in session ends when its account's password changes.
    bus: InProcessBus | None = None


@dataclass
class Transaction:
    mail_from: Address | None = None
    has_mail: bool = False
    local: dict[int, Account] = field(default_factory=dict)
    remote: list[str] = field(default_factory=list)
    rcpt_count: int = 0
    smtputf8: bool = False
    body_8bit: bool = False
    declared_size: int = 0
    writer: BlobWriter | None = None
    # The spool holds the message as received; trace headers and Authentication-Results
    # are put in front of it once the checks have run (_authenticate).
    checks_pending: bool = False
    return_path_length: int = 0
    size: int = 0
    too_big: bool = False
    bdat_refused: Reply | None = None  # set when BDAT chunks are being swallowed
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
        self.reader = SmtpReader(max_line_length=services.config.max_line_length)
        self.helo: str | None = None
        self.extended = False
        self.account: Account | None = None
        self.subscription: Subscription | None = None
        self.own_addresses: set[str] = set()
        self.transaction = Transaction()
        self.sasl: SaslExchange | None = None
        self.auth_failures = 0
        self.junk = 0
        self.closing = False  # QUIT, a fatal error, or shutdown: stop reading
        self.shutdown_requested = False

    # -- helpers -------------------------------------------------------------------------

    @property
    def is_submission(self) -> bool:
        return self.listener is not Listener.MX

    @property
    def busy(self) -> bool:
        """In the middle of a transaction that graceful shutdown should let finish."""
        return self.transaction.has_mail

    def _auth_allowed(self) -> bool:
        if not self.is_submission:
            return False
        if self.tls:
            return True
        loopback = self.peer_ip in ("127.0.0.1", "::1") or self.peer_ip.startswith("127.")
        return self.services.config.allow_plaintext_auth_on_loopback and loopback

    async def _reply(self, reply: Reply) -> None:
        await self.io.send(reply.to_bytes())

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
        self.reader.receive(data)
        while not self.closing:
            event = self.reader.next_event()
            if event is None:
                return
            await self.handle(event)

    async def handle(self, event: Event) -> None:
        match event:
            case BodyData():
                self._body_data(event.data)
            case BodyEnd():
                await self._body_end(event)
            case Ehlo():
                await self._ehlo(event)
            case Mail():
                await self._mail(event)
            case Rcpt():
                await self._rcpt(event)
            case Data():
                await self._data()
            case Bdat():
                await self._bdat(event)
            case Auth():
                await self._auth(event)
            case AuthResponse():
                await self._auth_response(event)
            case SimpleCommand():
                await self._simple(event)
            case ProtocolError():
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
            "ENHANCEDSTATUSCODES",
        ]
        if not self.tls and self.services.tls_available:
            lines.append("STARTTLS")
        if self._auth_allowed() and self.account is None:
            lines.append("AUTH " + " ".join(MECHANISMS))
        return lines

    async def _ehlo(self, event: Ehlo) -> None:
        self._reset()
        self.helo = event.domain
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
            await self._reply(Reply(220, "2.0.0", "ready to start TLS"))
            # RFC 3207 4.2: forget everything learned before TLS, including pipelined
            # plaintext that followed the command.
            self.reader.discard_buffer()
            self._reset()
            self.helo = None
            await self.io.start_tls()
            self.tls = True

    async def _auth(self, event: Auth) -> None:
        if not self.is_submission:
            await self._junk(Reply(503, "5.5.1", "AUTH is not offered on this port"))
            return
        if not self._auth_allowed():
            await self._junk(r.TLS_REQUIRED)
            return
        if self.helo is None:
            await self._junk(r.NEED_HELO)
            return
        if self.account is not None:
            await self._junk(Reply(503, "5.5.1", "already authenticated"))
            return
        if self.transaction.has_mail:
            await self._junk(Reply(503, "5.5.1", "AUTH not allowed during a mail transaction"))
            return
        if event.mechanism not in MECHANISMS:
            await self._junk(Reply(504, "5.5.4", "mechanism not supported"))
            return
        self.sasl = SaslExchange(event.mechanism)
        await self._sasl_step(self.sasl.start(event.initial_response))

    async def _auth_response(self, event: AuthResponse) -> None:
        if self.sasl is None:  # pragma: no cover - the reader only yields this after 334
            return
        await self._sasl_step(self.sasl.step(event.line))

    async def _sasl_step(self, step: Challenge | Credentials | object) -> None:
        if isinstance(step, Challenge):
            self.reader.expect_auth_response()
            await self._reply(Reply(334, "", base64.b64encode(step.data).decode("ascii")))
            return
        self.sasl = None
        if not isinstance(step, Credentials):
            await self._auth_failed(Reply(501, "5.5.2", "cannot decode the AUTH response"))
            return
        if step.authzid and step.authzid.lower() != step.username.lower():
            await self._auth_failed(Reply(535, "5.7.8", "authorization identity not allowed"))
            return
        result = await asyncio.to_thread(
            self.services.authenticator.login, step.username, step.password, self.peer_ip
        )
        if result.throttled:
            await self._fatal(Reply(421, "4.7.0", "too many failed logins, try again later"))
            return
        if result.account is None:
            await self._auth_failed(r.AUTH_FAILED)
            return
        self.account = result.account
        if self.services.bus is not None:
            self.subscription = self.services.bus.subscribe(result.account.id)
        self.own_addresses = await asyncio.to_thread(
            self.services.store.addresses_of, result.account
        )
        log.info(
            "authenticated",
            extra={"fields": {"user": result.account.email, "ip": self.peer_ip}},
        )
        await self._reply(r.AUTH_OK)

    async def _auth_failed(self, reply: Reply) -> None:
        self.auth_failures += 1
        log.info("authentication failed", extra={"fields": {"ip": self.peer_ip}})
        if self.auth_failures >= self.services.config.max_auth_failures:
            await self._reply(reply)
            await self._fatal(Reply(421, "4.7.0", "too many failed logins, closing connection"))
        else:
            await self._reply(reply)

    # -- envelope ---------------------------------------------------------------------

    async def _mail(self, event: Mail) -> None:
        config = self.services.config
        if self.helo is None:
            await self._junk(r.NEED_HELO)
            return
        if self.transaction.has_mail:
            await self._junk(Reply(503, "5.5.1", "nested MAIL command"))
            return
        if self.is_submission and self.account is None:
            await self._junk(r.TLS_REQUIRED if not self._auth_allowed() else r.AUTH_REQUIRED)
            return
        if self.subscription is not None and self.subscription.revoked:
            # The password changed (or the account was disabled) since AUTH.
            await self._fatal(Reply(421, "4.7.0", "your password was changed; log in again"))
            return
        params = dict(event.params)
        smtputf8 = "SMTPUTF8" in params
        if smtputf8 and params.pop("SMTPUTF8") is not None:
            await self._junk(Reply(501, "5.5.4", "SMTPUTF8 takes no value"))
            return
        body = (params.pop("BODY", None) or "7BIT").upper()
        if body not in ("7BIT", "8BITMIME"):
            await self._junk(Reply(501, "5.5.4", f"BODY={body} is not supported"))
            return
        size_text = params.pop("SIZE", None)
        declared = 0
        if size_text is not None:
            if not size_text.isdigit() or len(size_text) > 15:
                await self._junk(Reply(501, "5.5.4", "SIZE needs a number"))
                return
            declared = int(size_text)
            if declared > config.max_message_size:
                await self._reply(r.SIZE_EXCEEDED)
                return
        params.pop("AUTH", None)  # RFC 4954 5: accepted and ignored
        if params:
            unknown = ", ".join(params)
            await self._junk(Reply(555, "5.5.4", f"unsupported MAIL parameter: {unknown}"))
            return
        sender = event.reverse_path
        if sender is not None and sender.needs_smtputf8 and not smtputf8:
            await self._reply(Reply(553, "5.6.7", "non-ASCII address needs SMTPUTF8"))
            return
        if self.is_submission and (sender is None or sender.key not in self.own_addresses):
            await self._reply(
                Reply(553, "5.7.1", "you may only send as your own address or its aliases")
            )
            return
        self.transaction = Transaction(
            mail_from=sender,
            has_mail=True,
            smtputf8=smtputf8,
            body_8bit=body == "8BITMIME",
            declared_size=declared,
        )
        await self._reply(r.SENDER_OK)

    async def _rcpt(self, event: Rcpt) -> None:
        transaction = self.transaction
        if not transaction.has_mail:
            await self._junk(r.NEED_MAIL)
            return
        if event.params:
            await self._junk(Reply(555, "5.5.4", "RCPT parameters are not supported"))
            return
        if transaction.rcpt_count >= self.services.config.max_recipients:
            await self._reply(r.TOO_MANY_RECIPIENTS)
            return
        rcpt = event.forward_path
        if rcpt.needs_smtputf8 and not transaction.smtputf8:
            await self._reply(Reply(553, "5.6.7", "non-ASCII address needs SMTPUTF8"))
            return
        store = self.services.store
        if await asyncio.to_thread(store.is_local_domain, rcpt.domain):
            reply = await self._local_rcpt(rcpt)
        elif self.account is not None:
            transaction.remote.append(str(rcpt))
            reply = r.RECIPIENT_OK
        else:
            reply = r.RELAY_DENIED
        if reply.is_positive:
            transaction.rcpt_count += 1
            await self._reply(reply)
        else:
            await self._junk(reply)

    async def _local_rcpt(self, rcpt: Address) -> Reply:
        store = self.services.store
        resolved = await asyncio.to_thread(store.resolve, rcpt.key)
        if resolved is None:
            return r.UNKNOWN_USER
        accounts, remote = resolved
        if not accounts and not remote:
            return Reply(550, "5.2.1", "mailbox unavailable")
        for account in accounts:
            if account.quota_bytes:
                used = await asyncio.to_thread(store.account_usage, account.id)
                if used + self.transaction.declared_size > account.quota_bytes:
                    return Reply(452, "4.2.2", f"mailbox of {rcpt} is full")
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
        if self.listener is Listener.MX and self.services.resolver is not None:
            transaction.checks_pending = True
            return
        writer.write(self._trace_headers())

    def _trace_headers(self) -> bytes:
        """Return-Path (only for final delivery) and Received."""
        transaction = self.transaction
        sender = str(transaction.mail_from) if transaction.mail_from else ""
        return_path = f"Return-Path: <{sender}>\r\n".encode() if transaction.local else b""
        transaction.return_path_length = len(return_path)
        return return_path + self._received_header().encode("utf-8")

    def _received_header(self) -> str:
        transaction = self.transaction
        protocol = "ESMTP" if self.extended else "SMTP"
        if transaction.smtputf8:
            protocol = "UTF8SMTP"  # RFC 6531 3.7.3
        if self.tls:
            protocol += "S"
        if self.account is not None:
            protocol += "A"
        recipients = [*(a.email for a in transaction.local.values()), *transaction.remote]
        for_clause = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
        stamp = format_datetime(datetime.now(UTC))
        helo = self.helo or "unknown"
        return (
            f"Received: from {helo} ([{self.peer_ip}])\r\n"
            f"\tby {self.services.hostname} (Postel) with {protocol}\r\n"
            f"\tid {transaction.queue_id}{for_clause};\r\n\t{stamp}\r\n"
        )

    def _has_recipients(self) -> bool:
        return bool(self.transaction.local or self.transaction.remote)

    async def _data(self) -> None:
        if not self.transaction.has_mail:
            await self._junk(r.NEED_MAIL)
            return
        if not self._has_recipients():
            await self._junk(r.NEED_RCPT)
            return
        if self.transaction.writer is not None:  # BDAT already started this transaction
            await self._junk(Reply(503, "5.5.1", "DATA after BDAT"))
            return
        self._open_body()
        self.reader.start_data()
        await self._reply(r.START_DATA)

    async def _bdat(self, event: Bdat) -> None:
        # The reader consumes the chunk whatever we decide; a refusal is answered after it.
        transaction = self.transaction
        if not transaction.has_mail:
            transaction.bdat_refused = r.NEED_MAIL
        elif not self._has_recipients():
            transaction.bdat_refused = r.NEED_RCPT
        elif transaction.writer is None and not transaction.too_big:
            self._open_body()  # the first chunk; later ones append to the same spool

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
        if transaction.bdat_refused is not None:
            refusal = transaction.bdat_refused
            if event.last or transaction.has_mail:
                self._reset()
            await self._junk(refusal)
            return
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
                verdict, writer = await self._authenticate(writer)
                refusal = _refusal(verdict)
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
                mailbox="Junk" if verdict and verdict.action is Action.QUARANTINE else "INBOX",
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
                used = await asyncio.to_thread(store.account_usage, account.id)
                if used + self.transaction.size > account.quota_bytes:
                    # RFC 3463 3.3: X.2.2 mailbox full; 552 as RFC 5321 4.2.2 lists it.
                    return Reply(552, "5.2.2", f"mailbox of {account.email} is full")
        return None

    async def _authenticate(self, spool: BlobWriter) -> tuple[InboundVerdict, BlobWriter]:
        """SPF, DKIM and DMARC on the message as received (mailauth.inbound), then its
        stored form: trace headers, our Authentication-Results, and the message without
        any Authentication-Results forged in our name (RFC 8601 5). Streams; the spool
        is dropped either way."""
        services = self.services
        assert services.resolver is not None
        transaction = self.transaction
        try:
            path = await asyncio.to_thread(_flushed, spool)
            verdict = await check_inbound(
                services.resolver,
                services.mailauth,
                services.hostname,
                path,
                ip=self.peer_ip,
                helo=self.helo or "",
                mail_from=str(transaction.mail_from) if transaction.mail_from else "",
            )
            final = await asyncio.to_thread(self._stamp, path, verdict.header)
        finally:
            spool.abort()
        return verdict, final

    def _stamp(self, spool_path: Path, results_header: bytes) -> BlobWriter:
        final = self.services.store.blobs.writer()
        try:
            final.write(self._trace_headers() + results_header)
            with spool_path.open("rb") as handle:
                copy_without_forgeries(handle, final.write, self.services.hostname)
        except BaseException:
            final.abort()
            raise
        return final

    def _check_from_header(self, parsed: ParsedMessage) -> Reply | None:
        """On submission the From header must be one of the user's addresses too."""
        if not self.is_submission:
            return None
        from_list = parsed.envelope[2] or []
        for entry in from_list:
            mailbox, host = entry[2], entry[3]
            if mailbox is None or host is None:
                continue  # group syntax markers
            try:
                key = parse_email(f"{mailbox}@{host}").key
            except AddressError:
                key = ""
            if key not in self.own_addresses:
                return Reply(550, "5.7.1", f"From: {mailbox}@{host} is not one of your addresses")
        return None

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
