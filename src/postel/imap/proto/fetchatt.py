"""FETCH attributes (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ)."""

from __future__ import annotations

from dataclasses import dataclass

from postel.imap.proto.cursor import Cursor, ParseError


@dataclass(frozen=True)
class Section:
    part: tuple[int, ...] = ()
    text: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        pieces = [".".join(map(str, self.part))] if self.part else []
        if self.text:
            pieces.append(self.text)
        out = ".".join(pieces)
        if self.fields:
            out += " (" + " ".join(self.fields) + ")"
        return out


@dataclass(frozen=True)
class FetchAtt:
    name: str  # ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT
    #            BODY BODYSTRUCTURE UID MODSEQ BINARY BINARY.SIZE SAVEDATE EMAILID THREADID
    #            PREVIEW
    section: Section | None = None  # BODY[...] / BINARY[...] / BINARY.SIZE[...]
    partial: tuple[int, int] | None = None  # <origin.count>
    peek: bool = False
    lazy: bool = False  # PREVIEW (LAZY), RFC 8970 3.2

    @property
    def sets_seen(self) -> bool:
        # RFC 9051 6.4.5: BODY[...] and BINARY[...] (not .PEEK), RFC822 and RFC822.TEXT
        # set \Seen.
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.name in ("BODY", "BINARY") and self.section is not None and not self.peek


MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
SIMPLE = {
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
    "RFC822.TEXT", "BODYSTRUCTURE", "UID", "MODSEQ", "SAVEDATE",
    "EMAILID", "THREADID",  # RFC 8474 5
}


def parse_fetch_atts(c: Cursor) -> list[FetchAtt]:
    if c.accept(b"("):
        atts: list[FetchAtt] = []
        while not c.accept(b")"):
            if atts:
                c.sp()
            atts.append(_att(c))
        if not atts:
            raise ParseError("empty fetch attribute list")
        return atts
    word = c.atom_bytes_until(b"[").upper()
    if word in MACROS:
        return [FetchAtt(n) for n in MACROS[word]]
    c.pos -= len(word.encode())
    return [_att(c)]


def _att(c: Cursor) -> FetchAtt:
    word = c.atom_bytes_until(b"[<").upper()
    if word in SIMPLE:
        return FetchAtt(word)
    if word == "PREVIEW":
        return FetchAtt(word, lazy=_preview_modifiers(c))
    if word in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        base = word.removesuffix(".PEEK")
        if word == "BODY" and c.peek() != ord("["):
            return FetchAtt("BODY")
        c.expect(b"[")
        section = _section(c, binary=base != "BODY")
        c.expect(b"]")
        partial = None
        if base != "BINARY.SIZE" and c.accept(b"<"):
            origin = c.number()
            c.expect(b".")
            count = c.nz_number()
            c.expect(b">")
            partial = (origin, count)
        return FetchAtt(base, section, partial, peek=word.endswith(".PEEK"))
    raise ParseError(f"unknown fetch attribute {word}")


def _preview_modifiers(c: Cursor) -> bool:
    """RFC 8970 4: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"], preview-mod =
    "LAZY". Only a list starting with LAZY is taken, so "FETCH 1 PREVIEW (CHANGEDSINCE 5)"
    still reads its FETCH modifiers."""
    start = c.pos
    if not c.accept(b" (LAZY"):
        return False
    if c.peek() not in (0x20, ord(")")):
        c.pos = start
        return False
    while c.maybe_sp():
        c.expect(b"LAZY")
    c.expect(b")")
    return True


def _section(c: Cursor, *, binary: bool) -> Section:
    part: list[int] = []
    while c.peek() is not None and 0x31 <= (c.peek() or 0) <= 0x39:
        part.append(c.nz_number())
        if not c.accept(b"."):
            break
    if binary:
        # RFC 3516 4.1: section-binary is part numbers only.
        if c.peek() != ord("]"):
            raise ParseError("BINARY takes part numbers only")
        return Section(tuple(part))
    if c.peek() == ord("]"):
        if part and c._seg[c.pos - 1 : c.pos] == b".":
            raise ParseError("bad section")
        return Section(tuple(part))
    text = c.atom_bytes_until(b"]").upper()
    if text in ("HEADER", "TEXT") or (text == "MIME" and part):
        return Section(tuple(part), text)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        c.sp()
        c.expect(b"(")
        names: list[str] = []
        while not c.accept(b")"):
            if names:
                c.sp()
            names.append(c.astring().upper())
        if not names:
            raise ParseError("empty header list")
        return Section(tuple(part), text, tuple(names))
    raise ParseError(f"bad section {text}")
