"""Sans-IO POP3 server protocol: command lines in, typed commands out; replies to bytes.

Bytes go in with ``Pop3Reader.receive()``; ``next_event()`` returns one command event, a
``ProtocolError`` (the client broke the protocol: the session answers ``-ERR`` and goes on
serving) or ``None`` ("need more data"). Nothing here touches a socket, a clock or the store,
so the same input fed whole or one byte at a time yields the same events; the tests prove
it, and a Hypothesis test proves that no input makes the reader raise.

The reader has two modes: command lines (several may be buffered, RFC 2449 6.6 PIPELINING),
and one line of a SASL exchange after a ``+`` continuation (RFC 5034 4).

How message bodies are framed on the way out lives in ``postel.pop3.transfer``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.mail.lines import TOO_LONG, LineReader

# RFC 1939 3: message numbers and line counts are decimal; ten digits are more than any
# maildrop or message holds, and keep a hostile "RETR 999...9" from building a huge int.
MAX_NUMBER_DIGITS = 10


class Mode(enum.Enum):
    COMMAND = "command"
    AUTH = "auth"  # the next line answers a SASL "+ " challenge


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str


@dataclass(frozen=True)
class Pass:
    password: str


@dataclass(frozen=True)
class Auth:
    """AUTH with no mechanism lists the mechanisms (the RFC 1734 form many clients use)."""

    mechanism: str | None
    initial_response: str | None = None


@dataclass(frozen=True)
class AuthResponse:
    line: str


@dataclass(frozen=True)
class Simple:
    """A command without arguments: STAT, NOOP, RSET, QUIT, CAPA, STLS, UTF8."""

    verb: str


@dataclass(frozen=True)
class Listing:
    """LIST or UIDL, for one message or (number None) for the whole maildrop."""

    verb: str
    number: int | None


@dataclass(frozen=True)
class Retr:
    number: int


@dataclass(frozen=True)
class Dele:
    number: int


@dataclass(frozen=True)
class Top:
    number: int
    lines: int


@dataclass(frozen=True)
class ProtocolError:
    """The client broke the protocol; the session answers ``-ERR text`` and goes on."""

    text: str


Event = User | Pass | Auth | AuthResponse | Simple | Listing | Retr | Dele | Top | ProtocolError

SIMPLE_VERBS = frozenset({"STAT", "NOOP", "RSET", "QUIT", "CAPA", "STLS", "UTF8"})


def _number(word: str) -> int | None:
    if not word.isascii() or not word.isdigit() or len(word) > MAX_NUMBER_DIGITS:
        return None
    return int(word)


def parse_command(line: bytes) -> Event:
    """Turn one command line (without its line ending) into an event."""
    try:
        # RFC 6856: UTF-8 user names and passwords; everything else is ASCII anyway.
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return ProtocolError("command line is not valid UTF-8")
    if "\0" in text:
        return ProtocolError("NUL in command line")
    # RFC 1939 3: a keyword, then arguments separated by single spaces. Clients that pad
    # with more spaces or a trailing blank are forgiven, except in PASS (below).
    verb, _, rest = text.partition(" ")
    verb = verb.upper()
    args = rest.split()
    if verb == "PASS":
        # RFC 1939 7: "since the PASS command has exactly one argument, a POP3 server may
        # treat spaces in the argument as part of the password". We do: the password is
        # everything after the first space, verbatim.
        if not rest:
            return ProtocolError("syntax: PASS <password>")
        return Pass(rest)
    if verb == "USER":
        name = rest.strip()
        if not name:
            return ProtocolError("syntax: USER <email address>")
        return User(name)
    if verb in SIMPLE_VERBS:
        if args:
            return ProtocolError(f"{verb} takes no argument")
        return Simple(verb)
    if verb in ("LIST", "UIDL"):
        if not args:
            return Listing(verb, None)
        number = _number(args[0])
        if len(args) > 1 or number is None:
            return ProtocolError(f"syntax: {verb} [message number]")
        return Listing(verb, number)
    if verb in ("RETR", "DELE"):
        number = _number(args[0]) if len(args) == 1 else None
        if number is None:
            return ProtocolError(f"syntax: {verb} <message number>")
        return Retr(number) if verb == "RETR" else Dele(number)
    if verb == "TOP":
        numbers = [_number(a) for a in args]
        if len(numbers) != 2 or numbers[0] is None or numbers[1] is None:
            return ProtocolError("syntax: TOP <message number> <number of lines>")
        return Top(numbers[0], numbers[1])
    if verb == "AUTH":
        # RFC 5034 4: AUTH mechanism [initial-response]
        if not args:
            return Auth(None)
        if len(args) > 2:
            return ProtocolError("syntax: AUTH <mechanism> [initial-response]")
        return Auth(args[0].upper(), args[1] if len(args) == 2 else None)
    if not verb:
        return ProtocolError("empty command")
    return ProtocolError("unknown command")


class Pop3Reader:
    """Splits the client's bytes into command lines and parses them."""

    def __init__(self, *, max_line_length: int = 1024) -> None:
        self._lines = LineReader(max_line_length)
        self.mode = Mode.COMMAND

    @property
    def max_line_length(self) -> int:
        return self._lines.max_line_length

    def receive(self, data: bytes) -> None:
        self._lines.receive(data)

    @property
    def buffered(self) -> int:
        return self._lines.buffered

    def discard_buffer(self) -> None:
        """After STLS: plaintext pipelined behind the command must not survive into the
        TLS session (RFC 2595 4; the CVE-2011-0411 class of command injection)."""
        self._lines.discard()

    def expect_auth_response(self) -> None:
        """A ``+`` challenge was sent: the next line is the client's SASL answer."""
        self.mode = Mode.AUTH

    def next_event(self) -> Event | None:
        line = self._next_line()
        if line is None or isinstance(line, ProtocolError):
            if isinstance(line, ProtocolError):
                # A cut-off SASL answer is no answer: leave the exchange (RFC 5034 4).
                self.mode = Mode.COMMAND
            return line
        if self.mode is Mode.AUTH:
            self.mode = Mode.COMMAND
            try:
                return AuthResponse(line.decode("ascii"))
            except UnicodeDecodeError:
                return AuthResponse("\0invalid")  # not base64; the exchange fails on it
        return parse_command(line)

    def _next_line(self) -> bytes | ProtocolError | None:
        line = self._lines.next_line()
        if line is TOO_LONG:
            return ProtocolError(f"line too long (at most {self.max_line_length} octets)")
        return line


# -- replies --------------------------------------------------------------------------


def _safe(text: str) -> str:
    # Client-supplied text (a user name, a mechanism) must never break the framing.
    return text.replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True)
class Reply:
    """``+OK``/``-ERR``, an optional RFC 2449 8 response code, text, and for multi-line
    replies (CAPA, LIST, UIDL, AUTH) the lines that follow, dot-stuffed, then ``.``."""

    ok: bool
    text: str = ""
    code: str | None = None  # RFC 2449 8 / RFC 3206: AUTH, IN-USE, SYS/TEMP, SYS/PERM ...
    lines: tuple[str, ...] | None = None

    def to_bytes(self) -> bytes:
        status = "+OK" if self.ok else "-ERR"
        parts = [status]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.text:
            parts.append(_safe(self.text))
        out = [" ".join(parts) + "\r\n"]
        if self.lines is not None:
            for line in self.lines:
                line = _safe(line)
                # RFC 1939 3: a line beginning with "." gets another one.
                out.append(("." + line if line.startswith(".") else line) + "\r\n")
            out.append(".\r\n")
        return "".join(out).encode("utf-8")


@dataclass(frozen=True)
class Continuation:
    """RFC 5034 4: a SASL challenge, ``+`` SP base64 (an empty challenge is ``+ ``)."""

    data: str

    def to_bytes(self) -> bytes:
        return f"+ {self.data}\r\n".encode("ascii")


def ok(text: str = "", code: str | None = None) -> Reply:
    return Reply(True, text, code)


def err(text: str, code: str | None = None) -> Reply:
    return Reply(False, text, code)
