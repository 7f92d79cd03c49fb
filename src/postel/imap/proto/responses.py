"""Serializing responses (RFC 9051 7): strings, lists, ENVELOPE, BODYSTRUCTURE, dates.

Everything returns bytes; nothing here writes to a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postel.imap.proto import mutf7
from postel.imap.proto.bodystructure import BodyStructure, Extension, MultiPart
from postel.imap.proto.envelope import Envelope
from postel.mail.mime import HeaderAddress

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


def _addresses(addresses: Sequence[HeaderAddress], utf8: bool) -> bytes:
    # RFC 9051 9: "(" 1*address ")" -- addresses are not separated by spaces.
    if not addresses:
        return b"NIL"
    return b"(" + b"".join(
        b"(" + b" ".join(nstring(x, utf8) for x in (a.name, a.adl, a.mailbox, a.host)) + b")"
        for a in addresses
    ) + b")"


def envelope(env: Envelope, utf8: bool = False) -> bytes:
    """RFC 9051 7.5.2 ENVELOPE: date subject from sender reply-to to cc bcc in-reply-to
    message-id."""
    addresses = (env.from_, env.sender, env.reply_to, env.to, env.cc, env.bcc)
    pieces = [
        nstring(env.date, utf8), nstring(env.subject, utf8),
        *(_addresses(a, utf8) for a in addresses),
        nstring(env.in_reply_to, utf8), nstring(env.message_id, utf8),
    ]
    return b"(" + b" ".join(pieces) + b")"


def _strings(items: Sequence[str] | None, utf8: bool) -> bytes:
    if items is None:
        return b"NIL"
    return b"(" + b" ".join(string(x, utf8) for x in items) + b")"


def _extension(ext: Extension, utf8: bool) -> list[bytes]:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc."""
    disposition = b"NIL"
    if ext.disposition is not None:
        disposition = (b"(" + string(ext.disposition.kind, utf8) + b" "
                       + _strings(ext.disposition.params, utf8) + b")")
    language = (nstring(ext.language, utf8) if not isinstance(ext.language, tuple)
                else _strings(ext.language, utf8))
    return [disposition, language, nstring(ext.location, utf8)]


def body_structure(body: BodyStructure, utf8: bool = False) -> bytes:
    """BODY / BODYSTRUCTURE (RFC 9051 7.5.2); without an extension it is BODY."""
    if isinstance(body, MultiPart):
        # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]: no space between
        # the bodies; body-ext-mpart starts with the parameters.
        rest = [string(body.subtype, utf8)]
        if body.extension is not None:
            rest += [_strings(body.params, utf8), *_extension(body.extension, utf8)]
        return (b"(" + b"".join(body_structure(p, utf8) for p in body.parts) + b" "
                + b" ".join(rest) + b")")
    pieces = [
        string(body.type, utf8), string(body.subtype, utf8), _strings(body.params, utf8),
        nstring(body.content_id, utf8), nstring(body.description, utf8),
        string(body.encoding, utf8), b"%d" % body.size,
    ]
    if body.message is not None:  # body-type-msg
        pieces += [envelope(body.message.envelope, utf8),
                   body_structure(body.message.body, utf8), b"%d" % body.message.lines]
    elif body.lines is not None:  # body-type-text
        pieces.append(b"%d" % body.lines)
    if body.extension is not None:  # body-ext-1part
        pieces += [nstring(body.md5, utf8), *_extension(body.extension, utf8)]
    return b"(" + b" ".join(pieces) + b")"


def status(mailbox_name: bytes, values: Iterable[tuple[str, int]]) -> bytes:
    """RFC 9051 7.3.4: STATUS mailbox (item value ...), without the "* "."""
    items = " ".join(f"{name} {number}" for name, number in values)
    return b"STATUS " + mailbox_name + b" (" + items.encode() + b")"


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
