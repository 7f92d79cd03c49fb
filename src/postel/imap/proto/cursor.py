"""A cursor over one framed command: the primitive tokens of RFC 9051 9 (formal syntax).

Literals were already collected by the receiver; a literal sits between two line
segments, so "the end of a segment followed by a Literal" is where a literal string is.
Every failure is a ``ParseError`` that the session answers with BAD.
"""

from __future__ import annotations

from dataclasses import dataclass

from postel.imap.proto import mutf7
from postel.imap.proto.receiver import Literal, Part
from postel.imap.proto.sequence import SequenceError, SequenceSet

# RFC 9051 9: ATOM-CHAR is any CHAR except atom-specials.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x00, 0x20)) | {0x7F}
_TAG_EXCLUDED = _ATOM_SPECIALS | {ord("+")} - {ord("]")}
_ASTRING_EXTRA = frozenset(b"]")
_LIST_WILDCARDS = frozenset(b"%*")


class ParseError(Exception):
    """The client broke the syntax: answer BAD with this message."""


@dataclass(frozen=True)
class Atom:
    """An atom in a generic value (flags, keywords, ID field names stay distinguishable)."""

    value: str


Value = str | bytes | int | None | Atom | list["Value"]


class Cursor:
    def __init__(self, parts: list[Part], *, utf8: bool = False, max_nesting: int = 32) -> None:
        self.parts = parts
        self.index = 0
        self.pos = 0
        self.utf8 = utf8  # UTF8=ACCEPT / IMAP4rev2: quoted strings and names may be UTF-8
        self.max_nesting = max_nesting

    # -- position ------------------------------------------------------------------------

    @property
    def _seg(self) -> bytes:
        part = self.parts[self.index] if self.index < len(self.parts) else b""
        return part if isinstance(part, bytes) else b""

    def peek(self) -> int | None:
        seg = self._seg
        return seg[self.pos] if self.pos < len(seg) else None

    def at_literal(self) -> bool:
        return (
            self.pos >= len(self._seg)
            and self.index + 1 < len(self.parts)
            and isinstance(self.parts[self.index + 1], Literal)
        )

    def at_end(self) -> bool:
        return self.pos >= len(self._seg) and self.index + 1 >= len(self.parts)

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("unexpected text at the end of the command")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise ParseError("expected a space")
        self.pos += 1

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def expect(self, text: bytes) -> None:
        seg = self._seg
        if seg[self.pos : self.pos + len(text)].upper() != text.upper():
            raise ParseError(f"expected {text.decode()!r}")
        self.pos += len(text)

    def accept(self, text: bytes) -> bool:
        seg = self._seg
        if seg[self.pos : self.pos + len(text)].upper() == text.upper():
            self.pos += len(text)
            return True
        return False

    # -- tokens --------------------------------------------------------------------------

    def _run(self, excluded: frozenset[int], what: str) -> bytes:
        seg = self._seg
        start = self.pos
        while self.pos < len(seg) and seg[self.pos] not in excluded:
            self.pos += 1
        if self.pos == start:
            raise ParseError(f"expected {what}")
        return seg[start : self.pos]

    def tag(self) -> str:
        return self._run(frozenset(_TAG_EXCLUDED), "a tag").decode("ascii", "replace")

    def atom(self) -> str:
        raw = self._run(_ATOM_SPECIALS, "an atom")
        return self._text(raw)

    def atom_bytes_until(self, stops: bytes) -> str:
        """An atom that also stops at the given bytes (e.g. "[" in BODY[)."""
        return self._text(self._run(_ATOM_SPECIALS | frozenset(stops), "an atom"))

    def number(self) -> int:
        seg = self._seg
        start = self.pos
        while self.pos < len(seg) and 0x30 <= seg[self.pos] <= 0x39:
            self.pos += 1
        if self.pos == start or self.pos - start > 20:
            raise ParseError("expected a number")
        return int(seg[start : self.pos])

    def nz_number(self) -> int:
        n = self.number()
        if n == 0:
            raise ParseError("expected a non-zero number")
        return n

    def _text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8" if self.utf8 else "ascii")
        except UnicodeDecodeError:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("8-bit characters not allowed here") from None

    def literal(self) -> Literal:
        if not self.at_literal():
            raise ParseError("expected a literal")
        self.index += 1
        lit = self.parts[self.index]
        assert isinstance(lit, Literal)
        self.index += 1
        self.pos = 0
        return lit

    def quoted_bytes(self) -> bytes:
        seg = self._seg
        if self.peek() != 0x22:
            raise ParseError("expected a quoted string")
        out = bytearray()
        i = self.pos + 1
        while i < len(seg):
            c = seg[i]
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c == 0x5C:
                i += 1
                if i >= len(seg) or seg[i] not in (0x22, 0x5C):
                    raise ParseError("bad escape in quoted string")
                c = seg[i]
            elif c in (0x0D, 0x0A, 0x00):
                raise ParseError("bad character in quoted string")
            out.append(c)
            i += 1
        raise ParseError("unterminated quoted string")

    def string(self) -> str:
        if self.at_literal():
            raw = self.literal().read_all()
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("string is not UTF-8") from None
        return self._text(self.quoted_bytes())

    def astring(self) -> str:
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        return self._text(self._run(_ATOM_SPECIALS - _ASTRING_EXTRA, "a string"))

    def nstring(self) -> str | None:
        if self.accept(b"NIL"):
            nxt = self.peek()
            if nxt is None or nxt in b" )":
                return None
            self.pos -= 3
        return self.string()

    def list_mailbox(self) -> str:
        """RFC 9051 list-mailbox: astring, or atom chars plus the wildcards % and *."""
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        excluded = (_ATOM_SPECIALS - _LIST_WILDCARDS - _ASTRING_EXTRA)
        return self._text(self._run(frozenset(excluded), "a mailbox pattern"))

    def mailbox(self) -> str:
        """A mailbox name, decoded to Unicode. INBOX is case-insensitive (RFC 9051 5.1)."""
        return decode_mailbox(self.astring(), self.utf8)

    def mailbox_text(self, pattern: bool = False) -> str:
        """A LIST reference or pattern: decoded like a name, but INBOX is not folded."""
        raw = self.list_mailbox() if pattern else self.astring()
        if self.utf8 or not raw.isascii():
            return raw
        return mutf7.decode_or_mark(raw)

    def sequence_set(self) -> SequenceSet:
        seg = self._seg
        start = self.pos
        while self.pos < len(seg) and seg[self.pos] in b"0123456789:,*$":
            self.pos += 1
        try:
            return SequenceSet.parse(seg[start : self.pos].decode("ascii"))
        except SequenceError as exc:
            raise ParseError(str(exc)) from None

    def flag(self) -> str:
        if self.accept(b"\\"):
            if self.accept(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> list[str]:
        self.expect(b"(")
        flags: list[str] = []
        while not self.accept(b")"):
            if flags:
                self.sp()
            flags.append(self.flag())
        return flags

    # -- generic values (ID parameters, round-trip tests) --------------------------------

    def value(self, depth: int = 0) -> Value:
        if depth > self.max_nesting:
            raise ParseError("too deeply nested")
        if self.accept(b"("):
            items: list[Value] = []
            while not self.accept(b")"):
                if items:
                    self.sp()
                items.append(self.value(depth + 1))
            return items
        if self.at_literal():
            return self.literal().read_all()
        c = self.peek()
        if c == 0x22:
            return self._text(self.quoted_bytes())
        if c is not None and 0x30 <= c <= 0x39:
            return self.number()
        if c == 0x5C:
            return Atom(self.flag())
        word = self.atom()
        return None if word.upper() == "NIL" else Atom(word)


def decode_mailbox(name: str, utf8: bool) -> str:
    if name.upper() == "INBOX":
        return "INBOX"
    if not utf8 and name.isascii():
        # RFC 3501 5.1.3 (8-bit names from old clients are taken as UTF-8); after
        # ENABLE UTF8=ACCEPT or IMAP4rev2 names are plain UTF-8
        # (RFC 6855 3, RFC 9051 5.1) and "&" is an ordinary character.
        name = mutf7.decode_or_mark(name)
    if name.upper().startswith("INBOX/"):
        name = "INBOX" + name[5:]
    return name
