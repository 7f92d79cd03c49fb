"""One delivery attempt: one SMTP connection carrying every recipient of one queued row.

Over aiosmtplib: EHLO with our hostname, opportunistic STARTTLS (the certificate is
verified when possible and the outcome logged; a certificate that does not verify still
gives an encrypted connection, RFC 7435), SIZE / 8BITMIME / SMTPUTF8 honoured, then MAIL,
one RCPT per recipient and DATA, or BDAT for a BODY=BINARYMIME message (RFC 3030).
Replies are sorted per recipient into delivered, temporary and permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from dataclasses import dataclass, field

import aiosmtplib

from postel.mail.xtext import encode_xtext
from postel.store.model import DsnRequest

log = logging.getLogger("postel.queue")

# A BODY=BINARYMIME message goes out in BDAT chunks of this size, each answered before
# the next is sent (RFC 3030 2 allows any sizes; one round trip per MiB costs little).
BDAT_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Failure:
    code: int  # SMTP reply code, or 0 for a local or network failure
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1"
    text: str  # what the sender is told
    remote: str = ""  # the host that answered, if any

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


@dataclass
class Outcome:
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, Failure] = field(default_factory=dict)  # recipient -> failure
    next_hop_dsn: bool = False  # the server that took `delivered` offered DSN (RFC 3461)
    remote_mta: str = ""


@dataclass(frozen=True)
class Message:
    """What to send: the envelope and the bytes (already DKIM-signed)."""

    mail_from: str
    recipients: list[str]
    data: bytes
    smtputf8: bool
    body_8bit: bool
    # DSN parameters (RFC 3461) to pass on when the next hop offers DSN: MAIL's, and
    # RCPT's per wire recipient.
    dsn_mail: list[str] = field(default_factory=list)
    dsn_rcpt: dict[str, list[str]] = field(default_factory=dict)
    requiretls: bool = False  # RFC 8689: verified TLS and REQUIRETLS at the next hop
    body_binary: bool = False  # RFC 3030 3 BODY=BINARYMIME: BDAT, sent octet for octet


def dsn_mail_options(dsn: DsnRequest) -> list[str]:
    """RET= and ENVID= (RFC 3461 4.3, 4.4) as MAIL parameters."""
    options = [f"RET={dsn.ret}"] if dsn.ret else []
    if dsn.envid:
        options.append(f"ENVID={encode_xtext(dsn.envid)}")
    return options


def dsn_rcpt_options(dsn: DsnRequest, recipient: str) -> list[str]:
    """NOTIFY= and ORCPT= (RFC 3461 4.1, 4.2) as RCPT parameters."""
    notify = dsn.notify.get(recipient)
    options = [f"NOTIFY={','.join(notify)}"] if notify else []
    orcpt = dsn.orcpt.get(recipient)
    if orcpt:
        addr_type, _, address = orcpt.partition(";")
        options.append(f"ORCPT={addr_type};{encode_xtext(address)}")
    return options


@dataclass(frozen=True)
class Target:
    host: str  # the name TLS is verified against
    address: str  # the IP to connect to (for implicit TLS: the host name itself)
    port: int
    implicit_tls: bool = False
    starttls: str = "opportunistic"  # opportunistic | required | none
    username: str = ""
    password: str = ""
    cafile: str = ""  # CA certificates to verify this host with ("" = the system's)


class AttemptFailed(Exception):
    """The connection or the session failed before any recipient got an answer."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.text)
        self.failure = failure


def _status(code: int, text: str) -> str:
    """The enhanced status in a reply (RFC 3463), or one derived from the code."""
    match = re.match(r"([245])\.(\d{1,3})\.(\d{1,3})\b", text)
    if match and match.group(1) == str(code)[0]:
        return match.group(0)
    return f"{str(code)[0]}.0.0" if code >= 400 else "4.4.0"


def _reply_failure(code: int, text: str, remote: str) -> Failure:
    text = " ".join(text.split())
    return Failure(code, _status(code, text), f"{code} {text}", remote)


def _network_failure(text: str, remote: str, status: str = "4.4.1") -> Failure:
    return Failure(0, status, text, remote)


def _verifying_context(cafile: str = "") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile or None)
    context.check_hostname = True
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def deliver(
    target: Target,
    message: Message,
    *,
    local_hostname: str,
    connect_timeout: float,
    command_timeout: float,
) -> tuple[Outcome, dict[str, object]]:
    """Try `target`. Returns the per-recipient outcome and facts for the log line
    (tls, verified). Raises AttemptFailed when the next host should be tried."""
    facts: dict[str, object] = {"mx": target.host, "ip": target.address}
    verify = True
    for _ in range(2):  # a second round only when STARTTLS verification failed
        try:
            outcome = await _session(
                target, message, facts, verify=verify, local_hostname=local_hostname,
                connect_timeout=connect_timeout, command_timeout=command_timeout,
            )
            return outcome, facts
        except ssl.SSLCertVerificationError as exc:
            if message.requiretls:
                # RFC 8689 4.2.1: no unverified fallback for a REQUIRETLS message.
                raise AttemptFailed(Failure(
                    0, "5.7.30", f"REQUIRETLS: TLS certificate of {target.host} did not "
                    f"verify: {exc.verify_message}", target.host)) from None
            # Opportunistic TLS may go on unverified (RFC 7435), but never with our
            # credentials: AUTH to an unverified peer would hand them to a MITM.
            if target.username:
                raise AttemptFailed(_network_failure(
                    f"TLS certificate of {target.host} did not verify: {exc.verify_message}",
                    target.host, "4.7.5")) from None
            facts["tls_verify_error"] = exc.verify_message
            verify = False
    raise AttemptFailed(_network_failure("TLS failed twice", target.host))  # pragma: no cover


async def _session(
    target: Target,
    message: Message,
    facts: dict[str, object],
    *,
    verify: bool,
    local_hostname: str,
    connect_timeout: float,
    command_timeout: float,
) -> Outcome:
    host = target.host
    context = _verifying_context(target.cafile) if verify else _unverified_context()
    client = aiosmtplib.SMTP(
        hostname=target.address,
        port=target.port,
        local_hostname=local_hostname,
        timeout=command_timeout,
        use_tls=target.implicit_tls,
        start_tls=False,
        tls_context=context if target.implicit_tls else None,
    )
    try:
        try:
            await client.connect(timeout=connect_timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise AttemptFailed(_reply_failure(exc.code, exc.message, host)) from None
        except ssl.SSLCertVerificationError:
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise AttemptFailed(_network_failure(f"cannot connect to {host} "
                                                 f"[{target.address}]: {exc}", host)) from None
        facts["tls"] = "implicit" if target.implicit_tls else "none"
        return await _transaction(client, target, message, facts, context)
    except ssl.SSLCertVerificationError:
        raise
    except AttemptFailed:
        raise
    except aiosmtplib.SMTPResponseException as exc:
        raise AttemptFailed(_reply_failure(exc.code, exc.message, host)) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
        raise AttemptFailed(_network_failure(f"{host}: {exc or type(exc).__name__}",
                                             host)) from None
    finally:
        client.close()


async def _command(client: aiosmtplib.SMTP, *args: bytes) -> tuple[int, str]:
    response = await client.execute_command(*args)
    return response.code, response.message


async def _transaction(
    client: aiosmtplib.SMTP,
    target: Target,
    message: Message,
    facts: dict[str, object],
    context: ssl.SSLContext,
) -> Outcome:
    host = target.host
    await client.ehlo()
    if not target.implicit_tls and target.starttls != "none":
        if client.supports_extension("starttls"):
            await client.starttls(tls_context=context, server_hostname=host)
            facts["tls"] = "starttls"
            facts["verified"] = context.verify_mode == ssl.CERT_REQUIRED
            await client.ehlo()  # RFC 3207 4.2: forget what was learned before TLS
        elif target.starttls == "required":
            raise AttemptFailed(_network_failure(f"{host} does not offer STARTTLS", host,
                                                 "4.7.10"))
    if target.username:
        try:
            await client.login(target.username, target.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AttemptFailed(_reply_failure(exc.code, exc.message, host)) from None
    if message.requiretls:
        _check_requiretls(client, target, facts)
    size = len(message.data)
    limit = client.esmtp_extensions.get("size", "")
    if limit.isdigit() and int(limit) and size > int(limit):
        raise AttemptFailed(Failure(552, "5.3.4", f"message of {size} bytes is larger than "
                                    f"{host} accepts ({limit})", host))
    options = [f"SIZE={size}"] if "size" in client.esmtp_extensions else []
    if message.body_binary:
        options.append(_binarymime_option(client, host))
    elif message.body_8bit:
        if client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        elif not _seven_bit(message.data):
            # RFC 6152 3: 8-bit content must not go to a server without 8BITMIME; we do
            # not downgrade it, so it bounces with 5.6.3 (conversion not supported).
            raise AttemptFailed(Failure(554, "5.6.3", f"{host} does not accept 8-bit "
                                        "content (no 8BITMIME)", host))
        # Declared 8BITMIME but 7-bit in fact (our own DSNs, plain ASCII mail): it goes
        # as it is, without the parameter the server does not know (RFC 6152 3).
    if message.smtputf8:
        if not client.supports_extension("smtputf8"):
            # RFC 6531 3.2: without SMTPUTF8 at the next hop the message cannot travel.
            raise AttemptFailed(Failure(553, "5.6.7", f"{host} does not support SMTPUTF8, "
                                        "which this message needs", host))
        options.append("SMTPUTF8")
    encoding = "utf-8" if message.smtputf8 else "ascii"
    sender = f"<{message.mail_from}>".encode(encoding)
    # RFC 3461 5.2: DSN requests go on to a next hop that offers DSN.
    dsn = client.supports_extension("dsn")
    if dsn:
        options += message.dsn_mail
    if message.requiretls:
        options.append("REQUIRETLS")  # RFC 8689 4.2.1: the requirement travels on
    code, text = await _command(client, b"MAIL", b"FROM:" + sender,
                                *(o.encode() for o in options))
    if code != 250:
        raise AttemptFailed(_reply_failure(code, text, host))
    outcome = Outcome(next_hop_dsn=dsn)
    accepted: list[str] = []
    for rcpt in message.recipients:
        rcpt_options = message.dsn_rcpt.get(rcpt, []) if dsn else []
        code, text = await _command(client, b"RCPT", f"TO:<{rcpt}>".encode(encoding),
                                    *(o.encode() for o in rcpt_options))
        if code in (250, 251):
            accepted.append(rcpt)
        else:
            outcome.failed[rcpt] = _reply_failure(code, text, host)
    if not accepted:
        await _quit(client)
        return outcome
    try:
        if message.body_binary:
            await _send_chunks(client, message.data)
        else:
            await client.data(message.data)
    except aiosmtplib.SMTPDataError as exc:
        failure = _reply_failure(exc.code, exc.message, host)
        for rcpt in accepted:
            outcome.failed[rcpt] = failure
        return outcome
    outcome.delivered = accepted
    await _quit(client)
    return outcome


def _seven_bit(data: bytes) -> bool:
    """US-ASCII without NUL (RFC 2045 2.7 7bit data), safe for a 7-bit server."""
    return data.isascii() and b"\0" not in data


def _binarymime_option(client: aiosmtplib.SMTP, host: str) -> str:
    """BODY=BINARYMIME for a next hop that takes it; otherwise the message cannot go.

    We do not downgrade binary MIME to base64: that means rewriting every part (and
    breaking any DKIM signature on it), and a part that is binary without saying so (the
    case BINARYMIME exists for) cannot be re-encoded faithfully. RFC 3030 3 leaves the
    choice to us; RFC 3463 3.6 names the failure: 5.6.3, conversion required but not
    supported."""
    if not (client.supports_extension("binarymime") and client.supports_extension("chunking")):
        raise AttemptFailed(Failure(554, "5.6.3", f"{host} does not accept binary content "
                                    "(no BINARYMIME with CHUNKING)", host))
    return "BODY=BINARYMIME"


async def _send_chunks(client: aiosmtplib.SMTP, data: bytes) -> None:
    """RFC 3030 2: the data as BDAT chunks, raw (no dot-stuffing, no line-ending
    changes). Each chunk's reply is read before the next goes; a refusal ends it."""
    protocol = client.protocol
    if protocol is None:  # pragma: no cover - connected by now
        raise aiosmtplib.SMTPServerDisconnected("not connected")
    offset = 0
    while True:
        chunk = data[offset : offset + BDAT_CHUNK]
        offset += len(chunk)
        last = offset >= len(data)
        command = b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"")
        protocol.write(command + chunk)
        response = await protocol.read_response(timeout=client.timeout)
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        if last:
            return


def _check_requiretls(client: aiosmtplib.SMTP, target: Target,
                      facts: dict[str, object]) -> None:
    """RFC 8689 4.2.1: a REQUIRETLS message goes only over TLS whose certificate verified,
    to a server that offers REQUIRETLS; otherwise it is refused with 5.7.30 (RFC 8689 5)."""
    host = target.host
    if facts.get("tls") == "none":
        raise AttemptFailed(Failure(0, "5.7.30", f"REQUIRETLS: {host} offers no TLS", host))
    if not facts.get("verified", target.implicit_tls):
        raise AttemptFailed(Failure(0, "5.7.30", f"REQUIRETLS: TLS to {host} is not "
                                    "verified", host))
    if not client.supports_extension("requiretls"):
        raise AttemptFailed(Failure(0, "5.7.30", f"REQUIRETLS: {host} does not offer "
                                    "REQUIRETLS", host))


async def _quit(client: aiosmtplib.SMTP) -> None:
    # The outcome is known already; a rude goodbye changes nothing.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.quit(), 5)
