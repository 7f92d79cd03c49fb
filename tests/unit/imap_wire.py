"""A strict reader of IMAP response data (RFC 9051 4, 9), to check that what we write is
well formed: used by the BODYSTRUCTURE/ENVELOPE property tests and the MIME fuzz target.

It reads only the server's own output, so it is strict where a client parser is lenient:
one SP between items (none only between a ")" and a "(", as body-type-mpart and address
lists have it), quoted strings with only \\" and \\\\ escaped and no CR, LF or NUL, and
literals of exactly their announced length, without NUL (RFC 9051 4.3) unless literal8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from postel.imap.proto import responses
from postel.imap.proto.bodystructure import body_structure
from postel.imap.proto.envelope import Envelope
from postel.mail.mime import ParsedMessage


class WireError(ValueError):
    pass


@dataclass(frozen=True)
class Atom:
    name: bytes


Value = list[Any] | bytes | int | Atom | None


_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n")
_NUMBER = re.compile(rb"\d+")
_ATOM = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\\]]+")


class _Reader:
    def __init__(self, data: bytes, utf8: bool) -> None:
        self.data, self.pos, self.utf8 = data, 0, utf8

    def value(self) -> Value:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise WireError("value expected at the end")
        c = data[pos]
        if c == 0x28:  # "("
            self.pos += 1
            items: list[Value] = []
            while True:
                if self.pos >= len(data):
                    raise WireError("unclosed list")
                if data[self.pos] == 0x29:
                    self.pos += 1
                    return items
                if items:
                    if data[self.pos] == 0x20:
                        self.pos += 1
                    elif not (data[self.pos - 1] == 0x29 and data[self.pos] == 0x28):
                        raise WireError(f"no space between items at {self.pos}")
                items.append(self.value())
        if c == 0x22:
            return self._quoted()
        m = _LITERAL.match(data, pos)
        if m:
            start = m.end()
            end = start + int(m.group(1))
            if end > len(data):
                raise WireError("literal shorter than announced")
            if b"\0" in data[start:end] and data[pos] != 0x7E:
                raise WireError("NUL in a literal (only literal8 may carry it)")
            self.pos = end
            return data[start:end]
        m = _NUMBER.match(data, pos)
        if m and (m.end() == len(data) or data[m.end()] in b" )"):
            self.pos = m.end()
            return int(m.group(0))
        m = _ATOM.match(data, pos)
        if not m:
            raise WireError(f"bad octet {data[pos:pos + 1]!r} at {pos}")
        self.pos = m.end()
        return None if m.group(0) == b"NIL" else Atom(m.group(0))

    def _quoted(self) -> bytes:
        data = self.data
        out = bytearray()
        i = self.pos + 1
        while i < len(data):
            c = data[i]
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c == 0x5C:
                if i + 1 >= len(data) or data[i + 1] not in b'"\\':
                    raise WireError("bad escape in a quoted string")
                out.append(data[i + 1])
                i += 2
                continue
            if c in (0x00, 0x0A, 0x0D) or (c >= 0x80 and not self.utf8):
                raise WireError(f"octet {c:#x} in a quoted string")
            out.append(c)
            i += 1
        raise WireError("unterminated quoted string")


def read(data: bytes, utf8: bool = False) -> Value:
    """The one value `data` holds; WireError when it is not exactly one well-formed value."""
    reader = _Reader(data, utf8)
    value = reader.value()
    if reader.pos != len(data):
        raise WireError(f"text after the value at {reader.pos}")
    return value


def _nstring(v: Value) -> bool:
    return v is None or isinstance(v, bytes)


def _params(v: Value) -> bool:
    # body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
    return v is None or (isinstance(v, list) and len(v) % 2 == 0 and len(v) > 0
                         and all(isinstance(x, bytes) for x in v))


def _extension(rest: list[Value]) -> None:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc (the three we always write)."""
    if len(rest) != 3:
        raise WireError(f"extension data of {len(rest)} items")
    dsp, lang, loc = rest
    if not (dsp is None or (isinstance(dsp, list) and len(dsp) == 2
                            and isinstance(dsp[0], bytes) and _params(dsp[1]))):
        raise WireError(f"bad body-fld-dsp {dsp!r}")
    if not (_nstring(lang) or (isinstance(lang, list) and lang
                               and all(isinstance(x, bytes) for x in lang))):
        raise WireError(f"bad body-fld-lang {lang!r}")
    if not _nstring(loc):
        raise WireError(f"bad body-fld-loc {loc!r}")


def check_envelope(v: Value) -> None:
    """RFC 9051 9 envelope: 10 fields; the six address fields NIL or 1*address."""
    if not isinstance(v, list) or len(v) != 10:
        raise WireError(f"an envelope is a list of 10: {v!r}")
    for i in (0, 1, 8, 9):
        if not _nstring(v[i]):
            raise WireError(f"envelope field {i} is not an nstring")
    for addresses in v[2:8]:
        if addresses is None:
            continue
        if not isinstance(addresses, list) or not addresses:
            raise WireError(f"bad address list {addresses!r}")
        for a in addresses:
            if not (isinstance(a, list) and len(a) == 4 and all(_nstring(x) for x in a)):
                raise WireError(f"bad address {a!r}")


def check_body(v: Value, extended: bool) -> None:
    """RFC 9051 9 body: body-type-mpart or body-type-1part, with extension data exactly
    when `extended` (BODYSTRUCTURE)."""
    if not isinstance(v, list) or not v:
        raise WireError(f"a body is a non-empty list: {v!r}")
    if isinstance(v[0], list):
        n = 0
        while n < len(v) and isinstance(v[n], list):
            check_body(v[n], extended)
            n += 1
        rest = v[n:]
        if not rest or not isinstance(rest[0], bytes):
            raise WireError("multipart without its subtype")
        if extended:
            if len(rest) != 5 or not _params(rest[1]):
                raise WireError(f"bad body-ext-mpart {rest[1:]!r}")
            _extension(rest[2:])
        elif len(rest) != 1:
            raise WireError("BODY multipart with extension data")
        return
    if len(v) < 7:
        raise WireError(f"body-type-1part of {len(v)} items")
    kind, subtype, params, cid, desc, enc, size = v[:7]
    if not (isinstance(kind, bytes) and isinstance(subtype, bytes) and _params(params)
            and _nstring(cid) and _nstring(desc) and isinstance(enc, bytes)
            and isinstance(size, int)):
        raise WireError(f"bad body-fields {v[:7]!r}")
    rest = v[7:]
    if kind.lower() == b"message" and subtype.lower() in (b"rfc822", b"global") \
            and len(rest) >= 3 and isinstance(rest[0], list):
        check_envelope(rest[0])
        check_body(rest[1], extended)
        if not isinstance(rest[2], int):
            raise WireError("message part without its line count")
        rest = rest[3:]
    elif kind.lower() == b"text":
        if not rest or not isinstance(rest[0], int):
            raise WireError("text part without its line count")
        rest = rest[1:]
    if extended:
        if not rest or not _nstring(rest[0]):
            raise WireError("body-ext-1part without its MD5")
        _extension(rest[1:])
    elif rest:
        raise WireError(f"BODY part with extra items {rest!r}")


def check_message(parsed: ParsedMessage) -> None:
    """BODY, BODYSTRUCTURE and ENVELOPE of a parsed message are well formed, with and
    without UTF8=ACCEPT (RFC 6855 3)."""
    for utf8 in (False, True):
        for extended in (False, True):
            structure = body_structure(parsed.body, extended=extended)
            check_body(read(responses.body_structure(structure, utf8), utf8), extended)
        check_envelope(read(responses.envelope(Envelope.of(parsed), utf8), utf8))
