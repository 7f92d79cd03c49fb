"""Turning a plaintext asyncio stream into TLS with nothing of the plaintext left over.

RFC 3207 4.2 (SMTP), RFC 2595 3.1 (POP3 STLS) and RFC 9051 6.2.1 (IMAP): whatever the
client sent before the TLS negotiation must not be read as part of the TLS session. The
sans-IO readers drop their own buffers; asyncio's StreamReader keeps one of its own,
filled by whatever arrived while the reply to STARTTLS was written, and `start_tls` does
not touch it (issue 15, item 1: a second TCP segment was executed inside TLS).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast


async def upgrade_to_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    handshake_timeout: float,
) -> None:
    """Handshake as the server within `handshake_timeout` seconds, discarding every
    plaintext byte received before it. Raises what the handshake raises."""
    # Stop reading first: from here on the client's bytes stay in the kernel and reach
    # the TLS layer, where plaintext can only fail the handshake.
    # A read-write transport (asyncio's or uvloop's) typed as only its writing half.
    cast(asyncio.Transport, writer.transport).pause_reading()
    await writer.drain()
    discard_buffered(reader)
    await writer.start_tls(context, ssl_handshake_timeout=handshake_timeout)


def discard_buffered(reader: asyncio.StreamReader) -> int:
    """Drop what the StreamReader holds but nobody has read; return how many bytes."""
    # StreamReader offers no public way to drop its buffer; `_buffer` is the bytearray
    # every asyncio version since 3.4 keeps there.
    buffer: bytearray = reader._buffer  # type: ignore[attr-defined]
    dropped = len(buffer)
    buffer.clear()
    return dropped
