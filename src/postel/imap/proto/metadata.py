"""GETMETADATA and SETMETADATA arguments (RFC 5464 5, formal syntax) and the METADATA
return option of LIST (RFC 9590), parsed from a cursor; the METADATA response. Entry
names come out lowercase (RFC 5464 3.2: they are case-insensitive); values are octets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from postel.imap.proto.cursor import Cursor, ParseError
from postel.imap.proto.responses import astring, literal, string

PREFIXES = ("/private", "/shared")  # RFC 5464 3.2: every entry lives under one of them
MAX_ENTRY_OCTETS = 1024  # metadata_entries.name is String(1024)


@dataclass(frozen=True)
class MetadataOptions:
    """RFC 5464 4.2.1 MAXSIZE and 4.2.2 DEPTH; depth None is "infinity"."""

    maxsize: int | None = None
    depth: int | None = 0


@dataclass(frozen=True)
class GetMetadata:
    mailbox: str  # "" names the server (RFC 5464 4.2)
    entries: tuple[str, ...]
    options: MetadataOptions = MetadataOptions()


@dataclass(frozen=True)
class SetMetadata:
    mailbox: str
    values: tuple[tuple[str, bytes | None], ...]  # None: remove the entry (RFC 5464 4.3)


def entry_name(text: str, *, settable: bool) -> str:
    """RFC 5464 3.2: a slash-separated path under /private or /shared, without "*",
    "%", consecutive or trailing slashes; only printable ASCII. /private and /shared
    alone name only subtrees to read (GETMETADATA (DEPTH ...)), never an entry to set."""
    name = text.lower()
    if len(name.encode()) > MAX_ENTRY_OCTETS:
        raise ParseError("entry name too long")
    if any(not 0x21 <= ord(ch) <= 0x7E or ch in "*%" for ch in name):
        raise ParseError(f"invalid entry name {text!r}")
    if "//" in name or name.endswith("/"):
        raise ParseError(f"invalid entry name {text!r}")
    if not any(name.startswith(p + "/") or (not settable and name == p) for p in PREFIXES):
        raise ParseError(f"entry name {text!r} must begin with /private/ or /shared/")
    return name


def _entries(c: Cursor) -> tuple[str, ...]:
    """entries = entry / "(" entry *(SP entry) ")" (RFC 5464 5)."""
    if not c.accept(b"("):
        return (entry_name(c.astring(), settable=False),)
    names = [entry_name(c.astring(), settable=False)]
    while not c.accept(b")"):
        c.sp()
        names.append(entry_name(c.astring(), settable=False))
    return tuple(names)


def _options(c: Cursor) -> MetadataOptions:
    """getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"."""
    c.expect(b"(")
    maxsize: int | None = None
    depth: int | None = 0
    first = True
    while not c.accept(b")"):
        if not first:
            c.sp()
        first = False
        word = c.atom().upper()
        c.sp()
        if word == "MAXSIZE":  # RFC 5464 4.2.1
            maxsize = c.number()
        elif word == "DEPTH":  # RFC 5464 4.2.2: "0" / "1" / "infinity"
            value = c.atom().lower()
            if value not in ("0", "1", "infinity"):
                raise ParseError("DEPTH must be 0, 1 or infinity")
            depth = None if value == "infinity" else int(value)
        else:
            raise ParseError(f"unknown GETMETADATA option {word}")
    return MetadataOptions(maxsize, depth)


def _options_at(c: Cursor, offset: int = 0) -> bool:
    """Whether an options list begins `offset` bytes ahead: "(" and an option name. An
    entries list begins with "(" and an entry ("/", a quote, or a literal)."""
    seg = c._seg
    at = c.pos + offset
    return seg[at : at + 1] == b"(" and seg[at + 1 : at + 2].isalpha()


def parse_getmetadata(c: Cursor) -> GetMetadata:
    """getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries."""
    c.sp()
    options = MetadataOptions()
    if c.peek() == ord("("):  # a mailbox name (astring) never begins with "("
        options = _options(c)
        c.sp()
    mailbox = c.mailbox()
    c.sp()
    return GetMetadata(mailbox, _entries(c), options)


def _value(c: Cursor) -> bytes | None:
    """value = nstring / literal8 (RFC 5464 5); NIL removes the entry."""
    if c.at_literal():
        return c.literal().read_all()
    if c.accept(b"NIL"):
        return None
    return c.quoted_bytes()


def parse_setmetadata(c: Cursor) -> SetMetadata:
    """setmetadata = "SETMETADATA" SP mailbox SP "(" entry-value *(SP entry-value) ")"."""
    c.sp()
    mailbox = c.mailbox()
    c.sp()
    c.expect(b"(")
    values: list[tuple[str, bytes | None]] = []
    while not c.accept(b")"):
        if values:
            c.sp()
        name = entry_name(c.astring(), settable=True)
        c.sp()
        values.append((name, _value(c)))
    if not values:
        raise ParseError("SETMETADATA needs at least one entry")
    return SetMetadata(mailbox, tuple(values))


def parse_list_metadata(c: Cursor) -> tuple[tuple[str, ...], MetadataOptions]:
    """The LIST return option of RFC 9590 after "METADATA SP": the entries, with the
    GETMETADATA options (MAXSIZE, DEPTH) before or after them."""
    options = MetadataOptions()
    if _options_at(c):
        options = _options(c)
        c.sp()
    entries = _entries(c)
    if c.peek() == 0x20 and _options_at(c, 1):
        c.sp()
        options = _options(c)
    return entries, options


def _value_bytes(value: bytes | None) -> bytes:
    if value is None:
        return b"NIL"
    if b"\x00" in value:
        return literal(value, binary=True)  # RFC 5464 5: value = nstring / literal8
    return string(value)


def metadata_response(mailbox_name: bytes, values: Sequence[tuple[str, bytes | None]]) -> bytes:
    """RFC 5464 4.4.1: METADATA mailbox (entry value ...), without the "* "."""
    pairs = b" ".join(astring(name) + b" " + _value_bytes(value) for name, value in values)
    return b"METADATA " + mailbox_name + b" (" + pairs + b")"
