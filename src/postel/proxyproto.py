"""The PROXY protocol header, versions 1 and 2 (HAProxy's proxy-protocol.txt), sans-IO.

A load balancer in front of Postel opens every connection with one header that names
the client it relays; limits, logs, Received headers and SPF must then see that client,
not the balancer. The parser never takes a byte past the header: on an implicit-TLS port
the client's ClientHello follows at once and must reach the TLS layer untouched, so
`wanted()` says how many bytes may be read next without overreading, and the caller
reads exactly that many.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

# proxy-protocol.txt 2.2: the 12-byte signature of a binary (v2) header.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
# proxy-protocol.txt 2.1: "a receiver ... must not wait for more than 107 characters".
V1_MAX = 107
# The fixed part of a v2 header: signature, version/command, family, length.
V2_FIXED = 16
# proxy-protocol.txt 2.2: a receiver may cap the header; addresses, TLVs and all.
V2_MAX_BODY = 2048


class ProxyHeaderError(ValueError):
    """Not a well-formed PROXY header: the connection is closed without a word."""


@dataclass(frozen=True)
class ProxySource:
    """Who the proxy says the client is; None for a LOCAL/UNKNOWN connection (a health
    check by the proxy itself), which keeps the socket's own address."""

    address: tuple[str, int] | None


class ProxyHeaderParser:
    """Feed bytes (at most `wanted()` at a time) until `result` is set."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.result: ProxySource | None = None

    def wanted(self) -> int:
        """Bytes that can be read now without reading past the header (0: done)."""
        if self.result is not None:
            return 0
        have = len(self._buf)
        if have < len(V1_PREFIX):
            return len(V1_PREFIX) - have
        if self._buf.startswith(V1_PREFIX):
            return 1  # v1 ends at CRLF: one byte at a time, the header is short
        if have < V2_FIXED:
            return V2_FIXED - have
        body = int.from_bytes(self._buf[14:16], "big")
        return V2_FIXED + body - have

    def feed(self, data: bytes) -> ProxySource | None:
        if len(data) > self.wanted():
            raise ValueError("fed more than wanted()")  # a caller bug, not the client's
        self._buf += data
        buf = self._buf
        head = bytes(buf[: len(V1_PREFIX)])
        if not (V1_PREFIX.startswith(head) or V2_SIGNATURE.startswith(head)):
            raise ProxyHeaderError("not a PROXY protocol header")
        if buf.startswith(V1_PREFIX):
            if len(buf) > V1_MAX:
                raise ProxyHeaderError("v1 header longer than 107 bytes")
            if buf.endswith(b"\r\n"):
                self.result = _parse_v1(bytes(buf))
            elif b"\n" in buf or b"\r" in buf[:-1]:
                raise ProxyHeaderError("v1 header with a bare CR or LF")
            return self.result
        if len(buf) >= len(V2_SIGNATURE) and not buf.startswith(V2_SIGNATURE):
            raise ProxyHeaderError("not a PROXY protocol header")
        if len(buf) >= V2_FIXED:
            body = struct.unpack("!H", buf[14:16])[0]
            if body > V2_MAX_BODY:
                raise ProxyHeaderError("v2 header too long")
            if len(buf) == V2_FIXED + body:
                self.result = _parse_v2(bytes(buf))
        return self.result


def _parse_v1(line: bytes) -> ProxySource:
    """proxy-protocol.txt 2.1: "PROXY TCP4|TCP6 src dst sport dport" or "PROXY UNKNOWN"."""
    try:
        words = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("v1 header is not ASCII") from None
    if len(words) >= 2 and words[1] == "UNKNOWN":
        return ProxySource(None)  # 2.1: the rest of an UNKNOWN line is ignored
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("v1 header is not PROXY TCP4|TCP6 src dst sport dport")
    _, family, source, destination, sport, dport = words
    version = 4 if family == "TCP4" else 6
    for text in (source, destination):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ProxyHeaderError(f"v1 header: {text!r} is not an address") from None
        if address.version != version:
            raise ProxyHeaderError(f"v1 header: {text} is not {family}")
    for port in (sport, dport):
        # 2.1: ports are decimal 0..65535 without leading zeros.
        if not (port.isascii() and port.isdigit()) or (len(port) > 1 and port[0] == "0"):
            raise ProxyHeaderError(f"v1 header: bad port {port!r}")
        if int(port) > 65535:
            raise ProxyHeaderError(f"v1 header: port {port} out of range")
    return ProxySource((source, int(sport)))


def _parse_v2(header: bytes) -> ProxySource:
    """proxy-protocol.txt 2.2: version 2, command LOCAL or PROXY, then the addresses."""
    version_command, family = header[12], header[13]
    if version_command >> 4 != 2:
        raise ProxyHeaderError("v2 header with a version other than 2")
    command = version_command & 0x0F
    body = header[V2_FIXED:]
    if command == 0x0:  # LOCAL: the proxy's own connection, addresses ignored
        return ProxySource(None)
    if command != 0x1:
        raise ProxyHeaderError("v2 header with an unknown command")
    if family == 0x11:  # TCP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes
        if len(body) < 12:
            raise ProxyHeaderError("v2 header too short for IPv4 addresses")
        source = str(ipaddress.IPv4Address(body[0:4]))
        port = struct.unpack("!H", body[8:10])[0]
        return ProxySource((source, port))
    if family == 0x21:  # TCP over IPv6: 16 + 16, 2 + 2
        if len(body) < 36:
            raise ProxyHeaderError("v2 header too short for IPv6 addresses")
        source = str(ipaddress.IPv6Address(body[0:16]))
        port = struct.unpack("!H", body[32:34])[0]
        return ProxySource((source, port))
    if family == 0x00:  # UNSPEC: 2.2 says the receiver uses the real connection's address
        return ProxySource(None)
    # UDP and UNIX sockets are no client address for a mail session.
    raise ProxyHeaderError(f"v2 header with unsupported family 0x{family:02x}")
