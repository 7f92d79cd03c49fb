"""Framing: bytes in, whole commands out, with literals collected on the way.

Like Stalwart's receiver this never reads a socket: ``feed()`` buffers bytes and
``next_event()`` answers with the next complete thing, ``NeedContinuation`` when the client
waits for a "+" before sending a synchronizing literal (RFC 9051 4.3), or ``None`` when it
needs more data. Events are pulled one at a time so that a session can switch the receiver
into raw-line mode (AUTHENTICATE responses, IDLE's DONE) before the next line is framed.

Limits (line length, literal size, the total of a command's literals) are enforced here and
reported as events, never raised. Before login the literal limits are small (issue 15 item
2: one endless LOGIN of many literals grew the server without bound).
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

# RFC 9051 4.3 literal, RFC 7888 literal+ ({n+}), RFC 3516 literal8 (~{n}) at line end.
_LITERAL_MARKER = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}\r?\n\Z")
_TAG = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\+]+")

# An overlong line is discarded up to its end, but only up to this many times
# max_line_length: then the connection is closed (Flood).
FLOOD_LINES = 16

# Literals above this size go to a spool file instead of memory.
SPOOL_THRESHOLD = 256 * 1024


@dataclass
class Literal:
    """A literal string from the client. Small ones live in ``data``; big ones in ``file``
    (positioned at 0), so a 25 MB APPEND never sits whole in memory."""

    size: int
    binary: bool = False  # literal8: may contain NUL (RFC 3516)
    data: bytes = b""
    file: BinaryIO | None = None

    def read_all(self) -> bytes:
        if self.file is None:
            return self.data
        self.file.seek(0)
        data = self.file.read()
        self.file.seek(0)
        return data

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


Part = bytes | Literal


@dataclass
class CommandBytes:
    """One complete command: line segments (CRLF and literal markers removed) with the
    literals that followed them, in order."""

    parts: list[Part] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return tag_of(self.parts[0] if self.parts and isinstance(self.parts[0], bytes) else b"")

    def close(self) -> None:
        for part in self.parts:
            if isinstance(part, Literal):
                part.close()


@dataclass(frozen=True)
class NeedContinuation:
    """The client waits for "+ ..." before it sends a synchronizing literal."""


@dataclass(frozen=True)
class RawLine:
    """A line read in raw mode (a SASL response, or DONE ending IDLE), CRLF removed."""

    data: bytes


@dataclass(frozen=True)
class TooLong:
    """A command line exceeded max_line_length; answer BAD (RFC 7162 4: [TOOBIG] is for
    literals, a line overflow is a protocol error)."""

    tag: str


@dataclass(frozen=True)
class LiteralTooBig:
    """A literal exceeded max_literal_size; answer NO [TOOBIG] (RFC 7889, RFC 9051 7.1)."""

    tag: str
    size: int
    synchronizing: bool


@dataclass(frozen=True)
class NonSyncLiteralRefused:
    """Before login, a non-synchronizing literal over the small pre-login limits: RFC 7888
    4 (LITERAL-) says BAD [TOOBIG]; its bytes are coming anyway, so the connection is
    then closed rather than read through."""

    tag: str
    size: int


@dataclass(frozen=True)
class Flood:
    """The client keeps sending a line far past max_line_length (a never-ending line, or a
    COMPRESS=DEFLATE bomb), or a literal+ bigger than a whole command may be: answered
    with BYE and the connection closed, rather than read through forever."""

    tag: str


Event = (
    CommandBytes | NeedContinuation | RawLine | TooLong | LiteralTooBig | NonSyncLiteralRefused
    | Flood
)


@dataclass(frozen=True)
class LiteralLimits:
    """How much literal data one command may carry."""

    max_literal_size: int  # one literal
    max_command_size: int  # all literals of one command together


def tag_of(line: bytes) -> str:
    m = _TAG.match(line)
    return m.group(0).decode("ascii", "replace") if m else "*"


def memory_spool(size: int) -> BinaryIO:
    return io.BytesIO()


class Receiver:
    def __init__(
        self,
        *,
        max_line_length: int = 65536,
        max_literal_size: int = 50 * 1024 * 1024,
        max_command_size: int | None = None,
        spool: Callable[[int], BinaryIO] = memory_spool,
        spool_threshold: int = SPOOL_THRESHOLD,
        pre_login: LiteralLimits | None = None,
        logged_in: Callable[[], bool] = lambda: True,
    ) -> None:
        """`pre_login` applies while `logged_in()` is False; the full limits after."""
        self.max_line_length = max_line_length
        self.max_literal_size = max_literal_size
        self.max_command_size = (
            sys.maxsize if max_command_size is None else max_command_size
        )
        self.pre_login = pre_login
        self.logged_in = logged_in
        self.spool = spool
        self.spool_threshold = spool_threshold
        self.raw_mode = False  # next line is a RawLine, not a command
        self._buf = bytearray()
        self._parts: list[Part] = []
        self._text_size = 0  # bytes of line text in the command so far
        self._literal_total = 0  # bytes of literals in the command so far
        self._literal: Literal | None = None  # being filled
        self._literal_left = 0
        self._literal_chunks: list[bytes] = []
        self._skip_left = 0  # bytes of a refused literal+ still to discard
        self._skip_line = False  # discard up to the next LF (overlong line)
        self._skipped = 0  # bytes of the overlong line discarded so far
        self._ended = False  # a Flood or a refused literal ends the connection: no more input
        self._failure: TooLong | LiteralTooBig | None = None  # the command failed; drain it
        self._ready: list[Event] = []

    def feed(self, data: bytes) -> None:
        if not self._ended:
            self._buf += data

    @property
    def between_commands(self) -> bool:
        """Nothing of a next command has arrived: untagged data sent now cannot land in
        the middle of one (RFC 5465 3: notifications while no command is in progress)."""
        return not (self._buf or self._parts or self._literal is not None
                    or self._skip_left or self._skip_line or self._ready)

    def next_event(self) -> Event | None:
        while True:
            if self._ready:
                return self._ready.pop(0)
            if not self._step():
                return None

    # -- the state machine; each step consumes some input or returns False ---------------

    def _step(self) -> bool:
        if self._skip_left:
            n = min(self._skip_left, len(self._buf))
            if not n:
                return False
            del self._buf[:n]
            self._skip_left -= n
            return True
        if self._literal is not None:
            return self._fill_literal()
        if self._skip_line:
            nl = self._buf.find(b"\n")
            if nl < 0:
                self._skipped += len(self._buf)
                self._buf.clear()
                if self._flooding(self._skipped):
                    self._end(Flood(self._failure.tag if self._failure else "*"))
                    return True
                return False
            line_length, self._skipped = self._skipped + nl + 1, 0
            if self._flooding(line_length):
                self._end(Flood(self._failure.tag if self._failure else "*"))
                return True
            del self._buf[: nl + 1]
            self._skip_line = False
            self._finish_command()
            return True
        return self._line()

    def _fill_literal(self) -> bool:
        literal = self._literal
        assert literal is not None
        n = min(self._literal_left, len(self._buf))
        if n == 0 and self._literal_left:
            return False
        if n:
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
            self._literal_left -= n
            if literal.file is not None:
                literal.file.write(chunk)
            else:
                self._literal_chunks.append(chunk)
        if self._literal_left == 0:
            if literal.file is not None:
                literal.file.seek(0)
            else:
                literal.data = b"".join(self._literal_chunks)
            self._literal_chunks = []
            self._parts.append(literal)
            self._literal = None
        return True

    def _line(self) -> bool:
        nl = self._buf.find(b"\n")
        limit = self.max_line_length - self._text_size
        if nl < 0:
            if len(self._buf) > max(limit, 0) + 2:
                self._overflow()
                self._skipped = len(self._buf)
                self._buf.clear()
                self._skip_line = True
                if self._flooding(self._skipped):
                    self._end(Flood(self._failure.tag if self._failure else "*"))
                return True
            return False
        if nl + 1 > max(limit, 0) + 2:
            if self._flooding(nl + 1):
                self._end(Flood(self._tag()))
                return True
            self._overflow()
            del self._buf[: nl + 1]
            self._finish_command()
            return True
        line = bytes(self._buf[: nl + 1])
        del self._buf[: nl + 1]
        if self.raw_mode and not self._parts:
            self._ready.append(RawLine(line.rstrip(b"\r\n")))
            return True
        self._text_size += len(line)
        m = _LITERAL_MARKER.search(line)
        if m is None:
            self._parts.append(line[:-2] if line.endswith(b"\r\n") else line[:-1])
            self._finish_command()
            return True
        self._parts.append(line[: m.start()])
        size = int(m.group(2))
        synchronizing = not m.group(3)
        limits = self._limits()
        over = (
            size > limits.max_literal_size
            or self._literal_total + size > limits.max_command_size
        )
        if over and not synchronizing and limits is self.pre_login:
            self._end(NonSyncLiteralRefused(self._tag(), size))
            return True
        if not synchronizing and size > limits.max_command_size:
            # Bigger than any command may be: reading it through would never end.
            self._end(Flood(self._tag()))
            return True
        if self._failure is not None or over:
            if self._failure is None:
                self._failure = LiteralTooBig(self._tag(), size, synchronizing)
            if synchronizing:
                # RFC 9051 7.5: the server answers NO instead of "+"; the client then
                # abandons the command, so nothing more of it will arrive.
                self._finish_command()
            else:
                self._skip_left = size  # literal+ bytes are coming anyway: discard them
            return True
        self._literal_total += size
        spooled = size > self.spool_threshold
        self._literal = Literal(
            size, binary=bool(m.group(1)), file=self.spool(size) if spooled else None
        )
        self._literal_left = size
        if synchronizing:
            self._ready.append(NeedContinuation())
        return True

    def _limits(self) -> LiteralLimits:
        if self.pre_login is not None and not self.logged_in():
            return self.pre_login
        return LiteralLimits(self.max_literal_size, self.max_command_size)

    def _flooding(self, line_length: int) -> bool:
        return line_length > FLOOD_LINES * self.max_line_length

    def _end(self, event: Flood | NonSyncLiteralRefused) -> None:
        """The last event: the session closes the connection, so drop the command in
        progress and ignore whatever else arrives (the same whatever the chunking)."""
        for part in self._parts:
            if isinstance(part, Literal):
                part.close()
        if self._literal is not None:
            self._literal.close()
        self._parts, self._failure, self._literal = [], None, None
        self._skip_line, self._skip_left = False, 0
        self._buf.clear()
        self._ended = True
        self._ready.append(event)

    def _tag(self) -> str:
        first = self._parts[0] if self._parts else bytes(self._buf)
        if not isinstance(first, bytes):
            return "*"
        # An overlong line is refused before all of it has arrived. A tag that fills the
        # first max_line_length bytes has no end we can know (the fuzz target found the
        # answer's tag depending on how the bytes were split), so that BAD is untagged:
        # RFC 9051 7.1.5, a BAD that cannot be tied to a command.
        head = first[: self.max_line_length]
        m = _TAG.match(head)
        if m is None or m.end() >= self.max_line_length:
            return "*"
        return m.group(0).decode("ascii", "replace")

    def _overflow(self) -> None:
        if self._failure is None:
            self._failure = TooLong(self._tag())

    def _finish_command(self) -> None:
        parts, failure = self._parts, self._failure
        self._parts, self._failure, self._text_size, self._literal_total = [], None, 0, 0
        if failure is not None:
            for part in parts:
                if isinstance(part, Literal):
                    part.close()
            self._ready.append(failure)
        elif parts:
            self._ready.append(CommandBytes(parts))


def take_buffer(receiver: Receiver) -> bytes:
    """Remove and return bytes received but not yet framed (STARTTLS must discard them,
    RFC 9051 6.2.1; COMPRESS must decompress them, RFC 4978 3)."""
    data = bytes(receiver._buf)
    receiver._buf.clear()
    return data
