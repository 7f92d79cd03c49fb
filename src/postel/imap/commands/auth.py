"""Any-state and connection commands: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN,
AUTHENTICATE, ID, ENABLE, NAMESPACE, COMPRESS (RFC 9051 6.1-6.3, RFC 2971, RFC 5161,
RFC 4978, RFC 4959)."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from postel import __version__
from postel.auth.sasl import Challenge, Failed, FailureKind, SaslServer, Step
from postel.imap.capabilities import ENABLEABLE
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Authenticate, Command, Compress, Enable, Id, Login
from postel.imap.proto.cursor import Atom
from postel.imap.proto.receiver import take_buffer
from postel.imap.state import Bye, Continuation, State
from postel.net import in_networks

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

log = logging.getLogger("postel.imap")


async def capability(s: ImapSession, cmd: Command) -> None:
    s.untagged("CAPABILITY " + " ".join(s.capabilities()))
    s.ok(cmd.tag, "CAPABILITY completed")


async def noop(s: ImapSession, cmd: Command) -> None:
    await s.poll()
    s.ok(cmd.tag, "NOOP completed")


async def logout(s: ImapSession, cmd: Command) -> None:
    s.untagged("BYE logging out")
    s.ok(cmd.tag, "LOGOUT completed")
    s.state = State.LOGOUT


async def starttls(s: ImapSession, cmd: Command) -> None:
    if s.tls or not s.tls_available:
        s.bad(cmd.tag, "TLS is already active" if s.tls else "TLS is not available")
        return
    s.ok(cmd.tag, "Begin TLS negotiation now")
    await s.io.flush()
    # RFC 9051 6.2.1: anything the client pipelined after STARTTLS is discarded.
    take_buffer(s.receiver)
    await s.io.start_tls()
    s.tls = True


async def _finish_login(s: ImapSession, tag: str, username: str, password: str) -> None:
    result = await s.services.authenticator.authenticate(
        username, password, s.ip, protocol="imap"
    )
    if result.account is None:
        log.info("imap login failed", extra={"fields": {
            "user": username[:320], "ip": s.ip, "throttled": result.throttled}})
        s.auth_failures += 1
        if result.throttled:
            s.no(tag, "Too many failed logins; try again later", "UNAVAILABLE")
        else:
            s.no(tag, "Invalid credentials", "AUTHENTICATIONFAILED")
        if s.auth_failures >= s.config.max_auth_failures:
            raise Bye("Too many failed logins")
        return
    s.account = result.account
    log.info("imap login", extra={"fields": {
        "user": result.account.email, "ip": s.ip, "client": s.client_id.get("name")}})
    s.state = State.AUTHENTICATED
    s.subscribe()
    s.ok(tag, "Logged in", "CAPABILITY " + " ".join(s.capabilities()))


async def login(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Login)
    if not s.plaintext_auth_allowed():
        s.no(cmd.tag, "Use STARTTLS first", "PRIVACYREQUIRED")
        return
    await _finish_login(s, cmd.tag, args.username, args.password)


async def authenticate(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Authenticate)
    if not s.plaintext_auth_allowed():
        s.no(cmd.tag, "Use STARTTLS first", "PRIVACYREQUIRED")
        return
    mechanisms = ("PLAIN",)  # what CAPABILITY offers (AUTH=PLAIN)
    if not SaslServer.supports(args.mechanism, mechanisms):
        s.no(cmd.tag, "Unsupported mechanism", "CANNOT")
        return
    exchange = SaslServer(args.mechanism, mechanisms)

    async def step(result: Step) -> None:
        if isinstance(result, Challenge):
            s.send(f"+ {result.encoded}\r\n".encode("ascii"))  # RFC 9051 6.2.2
            s.receiver.raw_mode = True
            s.continuation = Continuation(cmd.tag, on_line)
            return
        s.receiver.raw_mode = False
        s.continuation = None
        if not isinstance(result, Failed):
            await _finish_login(s, cmd.tag, result.username, result.password)
        elif result.kind is FailureKind.AUTHZID:
            s.no(cmd.tag, "Cannot act as another user", "AUTHORIZATIONFAILED")
        elif result.kind is FailureKind.CANCELLED:
            s.bad(cmd.tag, "Authentication cancelled")
        else:
            s.bad(cmd.tag, f"Authentication failed: {result.reason}")

    async def on_line(line: bytes) -> None:
        await step(exchange.answer(line))

    await step(exchange.start(args.initial))


async def id_(s: ImapSession, cmd: Command) -> None:
    # RFC 2971: remember what the client says (for logs), tell it who we are.
    args = cmd.args
    assert isinstance(args, Id)
    if isinstance(args.params, list):
        items = args.params
        for key, value in zip(items[::2], items[1::2], strict=False):
            k = key.value if isinstance(key, Atom) else str(key)
            s.client_id[k.lower()[:64]] = None if value is None else str(value)[:256]
        _take_originating_ip(s)
    ours = ["name", "Postel", "version", __version__]
    if s.services.worker_id is not None:  # tests of the process model only
        ours += ["x-worker", str(s.services.worker_id)]
    s.untagged(b"ID " + r.value(ours))
    s.ok(cmd.tag, "ID completed")


def _take_originating_ip(s: ImapSession) -> None:
    """Dovecot's x-originating-ip ID field (RFC 2971 3.3 allows such fields): a trusted
    proxy names its client before login, and limits and logs count that address. From
    anyone else, or after login, it is only remembered like any other ID field. Once
    taken, the session's address is the client's, which is not a trusted proxy: a second
    ID (the client's own, relayed by the proxy) cannot change it again."""
    claimed = s.client_id.get("x-originating-ip")
    if claimed is None or s.state is not State.NOT_AUTHENTICATED:
        return
    if not in_networks(s.ip, s.services.connections.trusted_proxies):
        return
    try:
        client = str(ipaddress.ip_address(claimed.strip()))
    except ValueError:
        return
    log.info("client address from a trusted proxy", extra={"fields": {
        "proxy": s.ip, "ip": client}})
    s.ip = client


async def enable(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Enable)
    newly: list[str] = []
    for cap in args.capabilities:
        wanted = [cap] if cap != "QRESYNC" else ["CONDSTORE", "QRESYNC"]
        for name in wanted:
            if name in ENABLEABLE and name not in s.enabled:
                if name == "CONDSTORE":
                    s.enable_condstore()
                s.enabled.add(name)
                newly.append(name)
    if s.selected is not None and s.rev2:
        s.selected.show_recent = False
    if s.selected is not None and s.uidonly:
        s.selected.uidonly = True
    shown = [("IMAP4rev2" if n == "IMAP4REV2" else n) for n in newly
             if n in [c.upper() for c in args.capabilities]]
    s.untagged("ENABLED" + "".join(" " + n for n in shown))
    s.ok(cmd.tag, "ENABLE completed")


async def namespace(s: ImapSession, cmd: Command) -> None:
    # RFC 2342: one personal namespace, "/" as the hierarchy delimiter.
    s.untagged('NAMESPACE (("" "/")) NIL NIL')
    s.ok(cmd.tag, "NAMESPACE completed")


async def compress(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Compress)
    if s.compressed:
        s.no(cmd.tag, "Compression is already active", "COMPRESSIONACTIVE")
        return
    if args.mechanism != "DEFLATE":
        s.bad(cmd.tag, "Unknown compression mechanism")
        return
    s.ok(cmd.tag, "DEFLATE active")
    await s.io.flush()
    pending = take_buffer(s.receiver)
    s.receiver.feed(await s.io.start_compression(pending))
    s.compressed = True
