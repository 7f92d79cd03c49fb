"""Sans-IO SMTP server protocol (RFC 5321, RFC 3030 CHUNKING, RFC 4954 AUTH).

Bytes go in with ``receive()``; typed events come out of ``next_event()`` (``None`` means
"need more data"). Nothing here touches a socket, a clock or the store, so the same input
fed in one piece or one byte at a time yields the same events; the tests prove it.

The reader has three modes:
- command lines (with pipelining: several may be buffered);
- a DATA body: dot-unstuffed, ended only by CRLF "." CRLF, streamed out in chunks;
- a BDAT chunk: exactly N raw octets, always consumed, even when the server refuses it
  (RFC 3030 2: the server cannot resynchronise otherwise).
and one sub-mode, ``expect_auth_response()``, for the client's answers to 334 challenges.

Bodies come out with every line ending normalised to CRLF, which is what IMAP and RFC 5322
require of stored messages, except in a BODY=BINARYMIME transaction (``binary``): RFC
3030 3 makes its BDAT chunks opaque octets, so they come out exactly as received.

SMTP smuggling (a "." line delimited by a bare CR or bare LF,
which a less careful server would take as the end of the data) is reported on ``BodyEnd``
so the session can refuse the message: we never take it as the end, and we never pass it on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.mail.address import Address, AddressError, parse_path_and_params
from postel.mail.lines import TOO_LONG, LineReader

# A body chunk is emitted when this much is buffered without a line ending, so a line of
# a binary part without newlines never sits whole in memory.
MAX_BODY_CHUNK = 256 * 1024


class Mode(enum.Enum):
    COMMAND = "command"
    AUTH = "auth"
    DATA = "data"
    BDAT = "bdat"


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ehlo:
    domain: str
    extended: bool  # EHLO (True) or HELO (False)


@dataclass(frozen=True)
class Mail:
    reverse_path: Address | None  # None: the null reverse-path <>
    params: dict[str, str | None]


@dataclass(frozen=True)
class Rcpt:
    forward_path: Address
    params: dict[str, str | None]


@dataclass(frozen=True)
class Data:
    pass


@dataclass(frozen=True)
class Bdat:
    size: int
    last: bool


@dataclass(frozen=True)
class Burl:
    """RFC 4468 3: BURL SP absolute-URI [SP "LAST"]; the URL's bytes are the next chunk."""

    url: str
    last: bool


@dataclass(frozen=True)
class Auth:
    mechanism: str
    initial_response: str | None


@dataclass(frozen=True)
class AuthResponse:
    line: str


@dataclass(frozen=True)
class SimpleCommand:
    """RSET, NOOP, QUIT, STARTTLS, HELP, VRFY, EXPN: the verb and any argument."""

    verb: str
    argument: str


@dataclass(frozen=True)
class BodyData:
    data: bytes


@dataclass(frozen=True)
class BodyEnd:
    """The end of a DATA body, or of a BDAT chunk (`last` says whether it was BDAT LAST)."""

    last: bool = True
    smuggling: bool = False  # a "." line delimited by a bare CR or LF was seen


@dataclass(frozen=True)
class ProtocolError:
    """The client broke the protocol; the session answers with this reply."""

    code: int
    enhanced: str
    text: str


Event = (
    Ehlo
    | Mail
    | Rcpt
    | Data
    | Bdat
    | Burl
    | Auth
    | AuthResponse
    | SimpleCommand
    | BodyData
    | BodyEnd
    | ProtocolError
)

SIMPLE_VERBS = frozenset(
    {"RSET", "NOOP", "QUIT", "STARTTLS", "HELP", "VRFY", "EXPN", "XCLIENT"}
)


def _syntax(text: str) -> ProtocolError:
    return ProtocolError(501, "5.5.4", text)


def _decode_line(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_command(line: bytes) -> Event:
    """Turn one command line (without CRLF) into an event."""
    text = _decode_line(line)
    if text is None:
        return _syntax("command line is not valid UTF-8")
    verb, _, argument = text.partition(" ")
    if not verb.isascii():
        # str.upper() maps U+0131 (dotless i) to "I" and U+017F (long s) to "S": "QU\u0131T"
        # must not become QUIT, or a filter in front of us and we would disagree about it.
        return ProtocolError(500, "5.5.2", "command not recognized")
    verb = verb.upper()
    if verb in ("EHLO", "HELO"):
        domain = argument.strip()
        if not domain or " " in domain:
            return _syntax(f"{verb} needs exactly one domain or address literal")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in domain):
            # The name goes into our Received header: a bare CR would inject headers.
            return _syntax(f"{verb} argument contains control characters")
        return Ehlo(domain, verb == "EHLO")
    if verb == "MAIL":
        if argument[:5].upper() != "FROM:":
            return _syntax('syntax: MAIL FROM:<address> [parameters]')
        try:
            path, params = parse_path_and_params(argument[5:].strip(), allow_empty=True)
        except AddressError as exc:
            return ProtocolError(553, "5.1.7", f"bad sender address: {exc}")
        return Mail(path, params)
    if verb == "RCPT":
        if argument[:3].upper() != "TO:":
            return _syntax("syntax: RCPT TO:<address> [parameters]")
        try:
            path, params = parse_path_and_params(argument[3:].strip(), allow_empty=False)
        except AddressError as exc:
            return ProtocolError(553, "5.1.3", f"bad recipient address: {exc}")
        if path is None:  # pragma: no cover - allow_empty=False never returns None
            return ProtocolError(553, "5.1.3", "empty recipient address")
        return Rcpt(path, params)
    if verb == "DATA":
        if argument.strip():
            return _syntax("DATA takes no argument")
        return Data()
    if verb == "BDAT":
        words = argument.split()
        # isascii(): str.isdigit() also accepts "²" (int() raises) and other scripts' digits.
        if (not 1 <= len(words) <= 2 or not words[0].isascii() or not words[0].isdigit()
                or len(words[0]) > 15):
            return _syntax("syntax: BDAT <size> [LAST]")
        if len(words) == 2 and (not words[1].isascii() or words[1].upper() != "LAST"):
            return _syntax("syntax: BDAT <size> [LAST]")
        return Bdat(int(words[0]), len(words) == 2)
    if verb == "BURL":
        words = argument.split(" ")
        # RFC 4468 3: burl-param = "BURL" SP absolute-URI [SP end-marker]
        if not 1 <= len(words) <= 2 or not words[0] or not words[0].isascii():
            return _syntax("syntax: BURL <url> [LAST]")
        if len(words) == 2 and words[1].upper() != "LAST":
            return _syntax("syntax: BURL <url> [LAST]")
        return Burl(words[0], len(words) == 2)
    if verb == "AUTH":
        words = argument.split()
        if not 1 <= len(words) <= 2:
            return _syntax("syntax: AUTH <mechanism> [initial-response]")
        return Auth(words[0].upper(), words[1] if len(words) == 2 else None)
    if verb in SIMPLE_VERBS:
        return SimpleCommand(verb, argument.strip())
    if not verb:
        return ProtocolError(500, "5.5.2", "empty command")
    return ProtocolError(500, "5.5.2", "command not recognized")


class SmtpReader:
    def __init__(self, *, max_line_length: int = 4096) -> None:
        self._lines = LineReader(max_line_length)
        self._buffer = self._lines.buffer  # DATA and BDAT bodies are read from it directly
        self.mode = Mode.COMMAND
        # DATA state
        self._at_line_start = True  # the previous line ended with a proper CRLF
        self._after_bare_newline = False  # the previous line ended with a bare LF
        self._smuggling = False
        self._after_bare_cr = False  # a long line was cut right after a bare CR
        # BDAT state
        self._bdat_remaining = 0
        self._bdat_last = False
        self._pending_cr = False  # a CR at the end of a BDAT piece, awaiting its LF
        # BODY=BINARYMIME (RFC 3030 3): BDAT octets pass untouched. Set by the connection
        # when a MAIL with that parameter is accepted, cleared by the next accepted MAIL.
        self.binary = False

    # -- input and mode switches (called by the I/O layer / session) -------------------

    @property
    def max_line_length(self) -> int:
        return self._lines.max_line_length

    def receive(self, data: bytes) -> None:
        self._lines.receive(data)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return self._lines.buffered

    def discard_buffer(self) -> None:
        """After STARTTLS: plaintext sent behind the command must not survive into the TLS
        session (the CVE-2011-0411 class of command injection)."""
        self._lines.discard()

    def start_data(self) -> None:
        """The session accepted DATA (354 sent): the following bytes are the body."""
        self.mode = Mode.DATA
        self._at_line_start = True
        self._after_bare_newline = False
        self._after_bare_cr = False
        self._smuggling = False

    def expect_auth_response(self) -> None:
        """A 334 challenge was sent: the next line is the client's SASL answer."""
        self.mode = Mode.AUTH

    # -- output ------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        if self.mode is Mode.DATA:
            return self._next_data_event()
        if self.mode is Mode.BDAT:
            return self._next_bdat_event()
        line = self._next_line()
        if line is None:
            return None
        if isinstance(line, ProtocolError):
            # An over-long SASL answer ends the exchange: the client reads the 500 as the
            # end of AUTH, so its next line is a command, not another answer.
            self.mode = Mode.COMMAND
            return line
        if self.mode is Mode.AUTH:
            self.mode = Mode.COMMAND
            text = _decode_line(line)
            return AuthResponse(text if text is not None else "\0invalid")
        event = parse_command(line)
        if isinstance(event, Mail):
            self._pending_cr = False  # held back from a BDAT transaction that was abandoned
        if isinstance(event, Bdat):
            # RFC 3030 2: the chunk follows the command immediately, whatever the reply.
            self.mode = Mode.BDAT
            self._bdat_remaining = event.size
            self._bdat_last = event.last
        return event

    def _next_line(self) -> bytes | ProtocolError | None:
        line = self._lines.next_line()
        if line is TOO_LONG:
            return ProtocolError(500, "5.5.2", "line too long")  # RFC 5321 4.5.3.1.4
        return line

    def _next_data_event(self) -> Event | None:
        buffer = self._buffer
        # A line longer than MAX_BODY_CHUNK is cut anyway, so look no further for its end.
        end = buffer.find(b"\n", 0, MAX_BODY_CHUNK + 1)
        if end < 0:
            if len(buffer) < MAX_BODY_CHUNK:
                return None
            return self._long_line_chunk()
        line = bytes(buffer[: end + 1])
        del buffer[: end + 1]
        proper = line.endswith(b"\r\n")
        content = line[:-2] if proper else line[:-1]
        at_start = self._at_line_start or self._after_bare_newline
        if content == b"." and proper and self._at_line_start:
            self.mode = Mode.COMMAND
            return BodyEnd(last=True, smuggling=self._smuggling)
        # Any other "." standing alone between line-ending characters (a line start, a bare
        # CR, this line's CRLF or bare LF) is SMTP smuggling: "\n.\r\n", "\r.\r\n",
        # "\r\n.\n", "\n.\n", "\r\n.\r", "\r.\r", ...
        segments = content.split(b"\r")
        if any(seg == b"." for seg in segments[1:]) or (
            segments[0] == b"." and (at_start or self._after_bare_cr)
        ):
            self._smuggling = True
        if at_start and content.startswith(b"."):
            content = content[1:]  # RFC 5321 4.5.2 transparency
        self._at_line_start = proper
        self._after_bare_newline = not proper
        self._after_bare_cr = False
        # Normalise bare CRs inside the line and a bare LF at its end to CRLF.
        return BodyData(content.replace(b"\r", b"\r\n") + b"\r\n")

    def _long_line_chunk(self) -> BodyData:
        """The start of a line longer than MAX_BODY_CHUNK (a binary part without newlines),
        so it never sits whole in memory. The same rules apply as to whole lines, so how
        the bytes arrived never matters. At least one byte stays behind, and it is never an
        LF (the buffer holds none this early), so a CR ending the chunk is a bare CR."""
        buffer = self._buffer
        take = min(len(buffer) - 1, MAX_BODY_CHUNK)
        chunk = bytes(buffer[:take])
        following = bytes(buffer[take : take + 1])
        del buffer[:take]
        at_start = self._at_line_start or self._after_bare_newline
        segments = chunk.split(b"\r")
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            if (
                segment == b"."
                and (index > 0 or at_start or self._after_bare_cr)
                and (index < last or following == b"\r")
            ):
                self._smuggling = True
        if at_start and chunk.startswith(b"."):
            chunk = chunk[1:]  # RFC 5321 4.5.2 transparency
        self._at_line_start = False
        self._after_bare_newline = False
        self._after_bare_cr = chunk.endswith(b"\r")
        return BodyData(chunk.replace(b"\r", b"\r\n"))

    def _next_bdat_event(self) -> Event | None:
        if self._bdat_remaining == 0:
            if self._bdat_last and self._pending_cr:
                self._pending_cr = False
                return BodyData(b"\r\n")  # a final bare CR becomes CRLF; BodyEnd comes next
            self.mode = Mode.COMMAND
            return BodyEnd(last=self._bdat_last)
        if not self._buffer:
            return None
        take = min(self._bdat_remaining, len(self._buffer), MAX_BODY_CHUNK)
        piece = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._bdat_remaining -= take
        if self.binary:
            return BodyData(piece)  # RFC 3030 3: binary data, no line-ending rules
        return BodyData(self._normalise(piece))

    def _normalise(self, piece: bytes) -> bytes:
        """CRLF-normalise raw BDAT octets across chunk boundaries."""
        if self._pending_cr:
            piece = b"\r" + piece
            self._pending_cr = False
        if piece.endswith(b"\r"):
            piece = piece[:-1]
            self._pending_cr = True
        if b"\r" not in piece and b"\n" not in piece:
            return piece
        # Protect real CRLFs, then turn every lone CR or LF into CRLF.
        parts = piece.split(b"\r\n")
        fixed = [p.replace(b"\r", b"\n").replace(b"\n", b"\r\n") for p in parts]
        return b"\r\n".join(fixed)
