"""Serializing responses (RFC 9051 7): strings, lists, ENVELOPE, BODYSTRUCTURE, dates.

Everything returns bytes; nothing here writes to a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postel.imap.proto import mutf7

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_QUOTED_SAFE = frozenset(range(0x20, 0x7F))


@dataclass(frozen=True)
class Raw:
    """Bytes written as they are (atoms, flags, already-serialized pieces)."""

    data: bytes


@dataclass(frozen=True)
class Lit:
    """A value always written as a literal (message data); binary selects literal8."""

    data: bytes
    binary: bool = False


def quoted(data: bytes) -> bytes:
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(data: bytes, binary: bool = False) -> bytes:
    return (b"~" if binary else b"") + b"{%d}\r\n" % len(data) + data


def string(value: str | bytes, utf8: bool = False) -> bytes:
    """A string as quoted when it can be, else as a literal (RFC 9051 4.3)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) < 1024 and all(
        b in _QUOTED_SAFE or (utf8 and b >= 0x80) for b in data
    ):
        return quoted(data)
    return literal(data)


def nstring(value: str | bytes | None, utf8: bool = False) -> bytes:
    return b"NIL" if value is None else string(value, utf8)


_ATOM_OK = frozenset(b"!#&'+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`"
                     b"abcdefghijklmnopqrstuvwxyz|}~$")


def astring(value: str, utf8: bool = False) -> bytes:
    data = value.encode("utf-8")
    if data and all(b in _ATOM_OK for b in data) and data.upper() != b"NIL":
        return data
    return string(data, utf8)


def mailbox(name: str, utf8: bool) -> bytes:
    """A mailbox name in the encoding the client reads (RFC 6855 3, RFC 9051 5.1)."""
    return astring(name if utf8 else mutf7.encode(name), utf8)


def value(v: Any, utf8: bool = False) -> bytes:
    """Generic: None -> NIL, int -> number, str -> string, list -> (...)."""
    if v is None:
        return b"NIL"
    if isinstance(v, bool):
        raise TypeError("bool is not an IMAP value")
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, Raw):
        return v.data
    if isinstance(v, Lit):
        return literal(v.data, v.binary)
    if isinstance(v, str | bytes):
        return string(v, utf8)
    if isinstance(v, list | tuple):
        return b"(" + b" ".join(value(x, utf8) for x in v) + b")"
    raise TypeError(f"cannot serialize {type(v).__name__}")


def date_time(dt: datetime) -> bytes:
    # RFC 9051 9 date-time: DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
    offset = dt.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        f'"{dt.day:2d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} '
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    ).encode()


def _addresses(addrs: Any, utf8: bool) -> bytes:
    # RFC 9051 9: "(" 1*address ")" -- addresses are not separated by spaces.
    if not addrs:
        return b"NIL"
    return b"(" + b"".join(value(list(a), utf8) for a in addrs) + b")"


def envelope(env: Sequence[Any], utf8: bool = False) -> bytes:
    """ENVELOPE from the stored 10-element list (date subject from sender reply-to to cc
    bcc in-reply-to message-id)."""
    pieces = [
        nstring(env[0], utf8), nstring(env[1], utf8),
        *(_addresses(env[i], utf8) for i in range(2, 8)),
        nstring(env[8], utf8), nstring(env[9], utf8),
    ]
    return b"(" + b" ".join(pieces) + b")"


def body_structure(body: Sequence[Any], utf8: bool = False) -> bytes:
    """BODY / BODYSTRUCTURE from mime.bodystructure() lists (RFC 9051 7.5.2)."""
    if body and isinstance(body[0], list):
        n = 0
        while n < len(body) and isinstance(body[n], list):
            n += 1
        kids = list(body[:n])
        # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]: no space between
        # the bodies.
        out = b"".join(body_structure(k, utf8) for k in kids)
        rest = [value(body[n], utf8)] + [_ext(x, utf8) for x in body[n + 1 :]]
        return b"(" + out + b" " + b" ".join(rest) + b")"
    pieces: list[bytes] = []
    is_message = (
        len(body) > 7 and isinstance(body[0], str) and body[0].lower() == "message"
        and isinstance(body[1], str) and body[1].lower() in ("rfc822", "global")
        and isinstance(body[7], list)
    )
    for i, item in enumerate(body):
        if is_message and i == 7:
            pieces.append(envelope(item, utf8))
        elif is_message and i == 8:
            pieces.append(body_structure(item, utf8))
        else:
            pieces.append(_ext(item, utf8))
    return b"(" + b" ".join(pieces) + b")"


def _ext(item: Any, utf8: bool) -> bytes:
    return value(item, utf8)


def response_code(code: str | None) -> bytes:
    return b"[" + code.encode() + b"] " if code else b""


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    return f"{tag} {status} ".encode() + response_code(code) + text.encode() + b"\r\n"


def untagged(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return b"* " + data + b"\r\n"


def continuation(text: str = "") -> bytes:
    return b"+ " + text.encode() + b"\r\n"


def flags(names: Iterable[str]) -> bytes:
    return b"(" + " ".join(names).encode() + b")"
