"""How a stored message goes on the wire in RETR and TOP (RFC 1939 3, 7), without I/O.

Stored messages are CRLF-normalised already, but not every path into the store guarantees
it (a body written by a migration tool, IMAP APPEND of a sloppy client), so the encoder
normalises every line ending again: CRLF stays, a bare LF or a bare CR becomes CRLF. Then
RFC 1939 3 byte-stuffing: a line that begins with "." gets a second ".". A message that
does not end with a line ending gets CRLF before the terminating ".", because the
terminator must stand on its own line.

``transfer_size`` counts exactly the octets the client receives after un-stuffing (the
normalised message plus that final CRLF), so LIST and STAT agree with what RETR sends;
both go through the same ``LineEndings`` code.

Everything works on chunks of any size, split anywhere (a CRLF may be cut between two
chunks), so a 30 MB message streams through in bounded memory; the tests prove splitting
never changes the output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import BinaryIO

# Chunks read from a blob: large enough that the per-chunk overhead vanishes, small enough
# that a few concurrent downloads cost little memory.
READ_CHUNK = 256 * 1024

_LINE_END = re.compile(rb"\r\n|\r|\n")


class LineEndings:
    """Incremental CRLF normalisation that holds back a trailing CR until it sees the next
    byte (the LF of a CRLF split across chunks, or anything else: a bare CR)."""

    def __init__(self) -> None:
        self._pending_cr = False
        self.ends_with_newline = True  # nothing emitted yet: no CRLF needs adding

    def _take(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            self._pending_cr = True
            chunk = chunk[:-1]
        if chunk:
            self.ends_with_newline = chunk.endswith(b"\n")
        return chunk

    def feed(self, chunk: bytes) -> bytes:
        data = self._take(chunk)
        crlf = data.count(b"\r\n")
        if data.count(b"\r") == crlf and data.count(b"\n") == crlf:
            return data  # already normalised: the stored-message fast path, no copy
        return _LINE_END.sub(b"\r\n", data)

    def feed_size(self, chunk: bytes) -> int:
        """What len(feed(chunk)) would be, without building the normalised bytes."""
        data = self._take(chunk)
        crlf = data.count(b"\r\n")
        # Every bare CR and bare LF grows by one octet when it becomes CRLF.
        return len(data) + (data.count(b"\r") - crlf) + (data.count(b"\n") - crlf)

    def finish(self) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            self.ends_with_newline = True
            return b"\r\n"
        return b""


def transfer_size(chunks: Iterable[bytes]) -> int:
    """Octets RETR delivers for a message made of `chunks`, after un-stuffing (LIST, STAT)."""
    endings = LineEndings()
    size = sum(endings.feed_size(chunk) for chunk in chunks)
    size += len(endings.finish())
    if not endings.ends_with_newline:
        size += 2  # the CRLF added before the terminating "."
    return size


def file_chunks(handle: BinaryIO, size: int = READ_CHUNK) -> Iterable[bytes]:
    while chunk := handle.read(size):
        yield chunk


class MessageEncoder:
    """Stored bytes in, the multi-line RETR/TOP response body out (without the +OK line).

    ``body_lines=None`` sends the whole message (RETR). ``body_lines=n`` sends the header,
    the blank line that ends it, and the first n lines of the body (TOP, RFC 1939 7); once
    they are out, ``done`` is True and the caller stops reading the blob. A message without
    a blank line is all header, and TOP sends all of it.
    """

    def __init__(self, body_lines: int | None = None) -> None:
        self._endings = LineEndings()
        self._at_line_start = True
        self._limit = body_lines
        self._in_header = True
        self._remaining = body_lines if body_lines is not None else 0
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        data = self._endings.feed(chunk)
        if not data:
            return b""
        if self._limit is None:
            return self._stuff_all(data)
        return self._stuff_lines(data)

    def finish(self) -> bytes:
        """The rest of the message, its final CRLF when missing, and the "." terminator."""
        tail = b"" if self.done else self._flush()
        if not self._at_line_start:
            tail += b"\r\n"
        return tail + b".\r\n"

    def _flush(self) -> bytes:
        rest = self._endings.finish()  # a final bare CR
        if not rest:
            return b""
        return self._stuff_all(rest) if self._limit is None else self._stuff_lines(rest)

    def _stuff_all(self, data: bytes) -> bytes:
        # The normaliser never ends a piece in a lone CR, so "\r\n." cannot be split
        # between two pieces; only a piece that starts a line needs a look at its start.
        out = data.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and data.startswith(b"."):
            out = b"." + out
        self._at_line_start = data.endswith(b"\n")
        return out

    def _stuff_lines(self, data: bytes) -> bytes:
        out = bytearray()
        position = 0
        while position < len(data) and not self.done:
            end = data.find(b"\r\n", position)
            stop = len(data) if end < 0 else end + 2
            line = data[position:stop]
            if self._at_line_start and line.startswith(b"."):
                out += b"."
            out += line
            complete = end >= 0
            if complete:
                if self._in_header:
                    if self._at_line_start and line == b"\r\n":
                        self._in_header = False  # the blank line ends the header
                        self.done = self._remaining == 0
                else:
                    self._remaining -= 1
                    self.done = self._remaining <= 0
            self._at_line_start = complete
            position = stop
        return bytes(out)

