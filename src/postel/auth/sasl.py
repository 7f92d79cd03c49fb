"""Sans-IO SASL shared by SMTP AUTH, POP3 AUTH and IMAP AUTHENTICATE: PLAIN (RFC 4616)
and LOGIN.

``SaslServer`` is the one driver of the challenge/response loop (RFC 4954 4, RFC 5034 4,
RFC 9051 6.2.2): the protocol layer hands over the initial response and then each line the
client answers with, and gets back a challenge to send (it frames it: ``334`` or ``+``),
the credentials to check, or a failure whose ``kind`` picks the protocol's reply. It never
sees mechanism details; ``SaslExchange`` below holds those.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass, field

MECHANISMS = ("PLAIN", "LOGIN")


@dataclass(frozen=True)
class Challenge:
    data: bytes  # raw bytes; the protocol sends them base64-encoded (``encoded``)

    @property
    def encoded(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class Credentials:
    authzid: str
    username: str
    password: str


class FailureKind(enum.Enum):
    MALFORMED = "malformed"  # bad base64, bad PLAIN message, not UTF-8
    CANCELLED = "cancelled"  # the client answered "*"
    AUTHZID = "authzid"  # asked to act as someone else (no proxy authorization here)


CANCELLED = "authentication cancelled"


@dataclass(frozen=True)
class Failed:
    reason: str
    # Not compared: the reason says it already; the kind is for choosing a reply.
    kind: FailureKind = field(default=FailureKind.MALFORMED, compare=False)


Step = Challenge | Credentials | Failed


def _decode(line: str) -> bytes | None:
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


class SaslExchange:
    """One AUTH exchange. Call start() with the initial response (or None), then step()."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism.upper()
        if self.mechanism not in MECHANISMS:
            raise ValueError(mechanism)
        self._username: str | None = None

    def start(self, initial: str | None) -> Step:
        if self.mechanism == "PLAIN":
            # RFC 4954 4: "=" is an empty initial response; none means "send a challenge".
            if initial is None:
                return Challenge(b"")
            return self._plain("" if initial == "=" else initial)
        if initial is not None and initial != "=":
            return self._login_username(initial)
        return Challenge(b"Username:")

    def step(self, line: str) -> Step:
        if line.strip() == "*":
            return Failed(CANCELLED, FailureKind.CANCELLED)
        if self.mechanism == "PLAIN":
            return self._plain(line)
        if self._username is None:
            return self._login_username(line)
        raw = _decode(line)
        if raw is None:
            return Failed("invalid base64")
        try:
            password = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Failed("password is not UTF-8")
        return Credentials("", self._username, password)

    def _login_username(self, line: str) -> Step:
        raw = _decode(line)
        if raw is None:
            return Failed("invalid base64")
        try:
            self._username = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Failed("user name is not UTF-8")
        return Challenge(b"Password:")

    def _plain(self, line: str) -> Step:
        raw = _decode(line)
        if raw is None:
            return Failed("invalid base64")
        parts = raw.split(b"\0")
        if len(parts) != 3:
            return Failed("malformed PLAIN response")
        try:
            authzid, username, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return Failed("credentials are not UTF-8")
        if not username:
            return Failed("empty user name")
        return Credentials(authzid, username, password)


class SaslServer:
    """One AUTH / AUTHENTICATE exchange, the same in every protocol.

    ``start(initial)`` with the initial response (None when the command had none; "="
    stands for an empty one, RFC 4954 4 / RFC 4959 3), then ``answer(line)`` for each line
    the client sends after a challenge, until a ``Credentials`` or a ``Failed`` comes back.
    Answers may be bytes straight off the wire: base64 is ASCII, anything else fails.
    """

    def __init__(self, mechanism: str, mechanisms: tuple[str, ...] = MECHANISMS) -> None:
        if mechanism.upper() not in mechanisms:
            raise ValueError(mechanism)
        self._exchange = SaslExchange(mechanism)

    @staticmethod
    def supports(mechanism: str, mechanisms: tuple[str, ...] = MECHANISMS) -> bool:
        return mechanism.upper() in mechanisms

    @property
    def mechanism(self) -> str:
        return self._exchange.mechanism

    def start(self, initial: str | None) -> Step:
        return self._finish(self._exchange.start(initial))

    def answer(self, line: str | bytes) -> Step:
        if isinstance(line, bytes):
            try:
                line = line.decode("ascii")
            except UnicodeDecodeError:
                return self._finish(Failed("invalid base64"))
        return self._finish(self._exchange.step(line))

    def _finish(self, step: Step) -> Step:
        if isinstance(step, Challenge):
            return step
        # RFC 4616 2: an authzid other than the user itself asks for proxy authorization,
        # which no account here has.
        if (isinstance(step, Credentials) and step.authzid
                and step.authzid.lower() != step.username.lower()):
            return Failed("authorization identity not allowed", FailureKind.AUTHZID)
        return step
