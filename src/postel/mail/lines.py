"""Sans-IO command-line framing shared by the SMTP and POP3 readers (standard library only).

Bytes go in with ``receive()``; ``next_line()`` returns one line without its line ending,
``TOO_LONG`` once for a line past the limit, or ``None`` ("need more data"). How the bytes
were split never changes the result.

Line endings: a line ends at LF, and a CR right before it is removed. RFC 5321 2.3.8 and
RFC 1939 3 require CRLF, but every deployed server accepts a bare LF on a command line,
because nothing can be smuggled through one (smuggling is a DATA body matter, handled by
the SMTP body reader). A bare CR inside a line stays in it; the protocol's parser decides.

Over-long lines: ``max_line_length`` counts the line ending (RFC 5321 4.5.3.1.4 counts the
CRLF too). A line past it is answered once and then dropped as it arrives, so a client
that never sends LF cannot make us buffer more than one read beyond the limit.
"""

from __future__ import annotations

import enum


class LineTooLong(enum.Enum):
    TOO_LONG = "too long"


TOO_LONG = LineTooLong.TOO_LONG


class LineReader:
    """The receive buffer of a line-based protocol and the lines in it.

    ``buffer`` is public for protocols that also carry non-line data on the same stream
    (SMTP DATA and BDAT bodies read it directly)."""

    def __init__(self, max_line_length: int) -> None:
        self.max_line_length = max_line_length
        self.buffer = bytearray()
        self._skipping_long_line = False

    def receive(self, data: bytes) -> None:
        self.buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned."""
        return len(self.buffer)

    def discard(self) -> None:
        """Forget everything received so far, including a long line being skipped (after
        STARTTLS / STLS the plaintext that followed the command must not survive)."""
        self.buffer.clear()
        self._skipping_long_line = False

    def next_line(self) -> bytes | LineTooLong | None:
        buffer = self.buffer
        while True:
            end = buffer.find(b"\n")
            if self._skipping_long_line:
                if end < 0:
                    buffer.clear()
                    return None
                del buffer[: end + 1]
                self._skipping_long_line = False
                continue
            if end < 0:
                if len(buffer) > self.max_line_length:
                    # Drop the rest of this line as it arrives; answer once, when it starts.
                    buffer.clear()
                    self._skipping_long_line = True
                    return TOO_LONG
                return None
            if end + 1 > self.max_line_length:
                del buffer[: end + 1]
                return TOO_LONG
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            return line[:-1] if line.endswith(b"\r") else line
