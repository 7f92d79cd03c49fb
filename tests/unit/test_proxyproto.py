"""The PROXY protocol v1/v2 header parser, fed byte by byte as the accept path reads it."""

from __future__ import annotations

import struct

import pytest

from postel.proxyproto import V2_SIGNATURE, ProxyHeaderError, ProxyHeaderParser, ProxySource


def parse(data: bytes) -> tuple[ProxySource, bytes]:
    """Feed as the accept path does (never more than wanted()); return what is left."""
    parser = ProxyHeaderParser()
    pos = 0
    while parser.result is None:
        want = parser.wanted()
        assert want > 0
        parser.feed(data[pos:pos + want])
        pos += want
        assert pos <= len(data), "the parser asked for bytes past the end"
    assert parser.wanted() == 0
    return parser.result, data[pos:]


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def test_v1_tcp4_and_nothing_past_the_header_is_taken() -> None:
    source, rest = parse(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 143\r\nA1 LOGIN")
    assert source.address == ("192.0.2.7", 56324)
    assert rest == b"A1 LOGIN"


def test_v1_tcp6_and_unknown() -> None:
    source, _ = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1024 25\r\n")
    assert source.address == ("2001:db8::1", 1024)
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")[0].address is None
    assert parse(b"PROXY UNKNOWN\r\n")[0].address is None


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",        # a port missing
    b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",        # family and address disagree
    b"PROXY TCP4 192.0.2.300 198.51.100.1 1 2\r\n",        # not an address
    b"PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n",         # leading zero
    b"PROXY TCP4 192.0.2.7 198.51.100.1 70000 2\r\n",      # port out of range
    b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",          # not TCP
    b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",            # bare LF
    b"PROXY TCP4 192.0.2.7\r198.51.100.1 1 2\r\n",         # bare CR
    b"PROXY " + b"x" * 200 + b"\r\n",                      # past 107 bytes
    b"A1 LOGIN bob secret\r\n",                            # no header at all
    b"\r\n\r\n\x00\r\nQUIx" + b"\x21\x11\x00\x00",          # a broken v2 signature
    b"PROXY TCP4 \xff.0.2.7 198.51.100.1 1 2\r\n",         # not ASCII
])
def test_malformed_headers_are_refused(header: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(header + b"\r\n" * 60)


def test_v2_ipv4_ipv6_local_unspec() -> None:
    body4 = bytes([192, 0, 2, 9, 198, 51, 100, 1]) + struct.pack("!HH", 40000, 993)
    source, rest = parse(v2(1, 0x11, body4) + b"\x16\x03\x01")  # a ClientHello follows
    assert source.address == ("192.0.2.9", 40000)
    assert rest == b"\x16\x03\x01"
    body6 = bytes(15) + b"\x05" + bytes(15) + b"\x06" + struct.pack("!HH", 7, 25)
    assert parse(v2(1, 0x21, body6))[0].address == ("::5", 7)
    assert parse(v2(0, 0x11, body4))[0].address is None      # LOCAL: a health check
    assert parse(v2(1, 0x00, b""))[0].address is None        # UNSPEC
    # TLVs after the addresses are skipped (read, not interpreted).
    tlv = b"\x04\x00\x03abc"
    source, rest = parse(v2(1, 0x11, body4 + tlv) + b"next")
    assert source.address == ("192.0.2.9", 40000) and rest == b"next"


@pytest.mark.parametrize("header", [
    V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12),          # version 1 in a v2 header
    V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12),          # command 2
    V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4),           # too short for IPv4
    V2_SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12),          # too short for IPv6
    V2_SIGNATURE + b"\x21\x31\x00\x00",                      # AF_UNIX
    V2_SIGNATURE + b"\x21\x12\x00\x0c" + bytes(12),          # UDP
    V2_SIGNATURE + b"\x21\x11\xff\xff",                      # absurd length
])
def test_malformed_v2_headers_are_refused(header: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(header + bytes(300))


def test_feeding_more_than_wanted_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        ProxyHeaderParser().feed(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\n")
