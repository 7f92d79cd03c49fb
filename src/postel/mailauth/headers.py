"""Reading a message's header section from a file without reading its body into memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

# A header section larger than this is not examined (it is not a real message's).
MAX_HEADER_BYTES = 1024 * 1024


class HeaderTooLarge(Exception):
    pass


@dataclass(frozen=True)
class RawHeader:
    name: str  # as written, e.g. "DKIM-Signature"
    raw: bytes  # the whole field: "Name: value\r\n" with continuation lines, CRLF-terminated

    @property
    def lower(self) -> str:
        return self.name.lower()

    @property
    def value(self) -> str:
        """The unfolded value, without the name and colon."""
        text = self.raw.decode("utf-8", "surrogateescape")
        value = text.partition(":")[2]
        return value.replace("\r\n", "").replace("\n", "").strip()


def read_headers(handle: BinaryIO) -> list[RawHeader]:
    """Read header fields up to and including the empty line; the handle is left at the
    start of the body. Lines ending in a bare LF are kept as they are."""
    return read_header_section(handle)[0]


def read_header_section(handle: BinaryIO) -> tuple[list[RawHeader], bytes]:
    """The header fields and the separator line consumed after them (b"" when the
    message has none: it ended, or the body started without an empty line)."""
    fields: list[bytearray] = []
    total = 0
    separator = b""
    while True:
        line = handle.readline(MAX_HEADER_BYTES)
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise HeaderTooLarge(f"header section larger than {MAX_HEADER_BYTES} bytes")
        if not line:
            break
        if line in (b"\r\n", b"\n"):
            separator = line
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line  # RFC 5322 2.2.3: folded continuation
            continue
        if b":" not in line:
            # Not a header: the body started without the empty line (RFC 5322 allows none).
            handle.seek(-len(line), 1)
            break
        fields.append(bytearray(line))
    result = []
    for data in fields:
        if not data.endswith(b"\n"):
            data += b"\r\n"
        name = bytes(data).partition(b":")[0].decode("utf-8", "surrogateescape").strip()
        result.append(RawHeader(name, bytes(data)))
    return result, separator
