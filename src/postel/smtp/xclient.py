"""XCLIENT (Postfix's XCLIENT_README), sans-IO: an SMTP proxy in front of us names the
client it relays, so limits, logs, Received headers and SPF see that client.

    XCLIENT attribute=value ...   (values are xtext, RFC 3461 4)

Accepted from `[connections] trusted_proxies` only, and advertised only to them; the
server then answers with a new 220 greeting and the session starts over (EHLO again).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from postel.mail.xtext import decode_xtext

ATTRIBUTES = ("ADDR", "NAME", "PORT", "PROTO", "HELO", "LOGIN")
# XCLIENT_README: values the proxy uses when it does not know an attribute.
_UNKNOWN = ("[UNAVAILABLE]", "[TEMPUNAVAIL]")
MAX_VALUE = 255


class XclientError(ValueError):
    """A malformed XCLIENT command: 501 5.5.4 with this text."""


@dataclass(frozen=True)
class Xclient:
    """The attributes given; None for one not given or given as unknown."""

    addr: str | None = None
    name: str | None = None
    port: int | None = None
    proto: str | None = None
    helo: str | None = None
    login: str | None = None


def parse_xclient(argument: str) -> Xclient:
    values: dict[str, str | None] = {}
    words = argument.split()
    if not words:
        raise XclientError("syntax: XCLIENT attribute=value ...")
    for word in words:
        name, sep, raw = word.partition("=")
        name = name.upper()
        if not sep or name not in ATTRIBUTES:
            raise XclientError(f"bad XCLIENT attribute {word[:40]!r}")
        value = decode_xtext(raw)
        if value is None or len(value) > MAX_VALUE or not value.isprintable():
            raise XclientError(f"bad XCLIENT value for {name}")
        values[name] = None if value.upper() in _UNKNOWN else value
    return Xclient(
        addr=_address(values.get("ADDR")),
        name=values.get("NAME"),
        port=_port(values.get("PORT")),
        proto=_proto(values.get("PROTO")),
        helo=_helo(values.get("HELO")),
        login=values.get("LOGIN"),
    )


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    text = value[5:] if value.upper().startswith("IPV6:") else value  # "IPV6:2001:db8::1"
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise XclientError(f"XCLIENT ADDR {value[:40]!r} is not an address") from None


def _port(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:
        raise XclientError("XCLIENT PORT is not a port number")
    return int(value)


def _proto(value: str | None) -> str | None:
    if value is not None and value.upper() not in ("SMTP", "ESMTP"):
        raise XclientError("XCLIENT PROTO is SMTP or ESMTP")
    return None if value is None else value.upper()


def _helo(value: str | None) -> str | None:
    # It goes into our Received header, like an EHLO argument: no spaces or controls.
    if value is not None and any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise XclientError("XCLIENT HELO contains spaces or control characters")
    return value
