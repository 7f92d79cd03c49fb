"""BODY[section] and BINARY[section] from the stored part tree (RFC 9051 6.4.5, RFC 3516).

Parts are located through the byte offsets recorded at delivery, so a section is a byte
range of the blob file that FETCH can stream without reading the rest of the message.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from postel.imap.proto.fetchatt import Section
from postel.mail.mime import MimePart


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


class SectionError(Exception):
    pass


def find_part(root: MimePart, path: tuple[int, ...]) -> MimePart | None:
    """The part a section number names (RFC 9051 6.4.5): part N of a multipart is its
    Nth child; a non-multipart message has a single part 1; after the first number a
    message/rfc822 part is entered before counting."""
    part = root
    for depth, n in enumerate(path):
        if depth > 0 and part.message is not None:
            part = part.message.body
        if part.children:
            if n > len(part.children):
                return None
            part = part.children[n - 1]
        elif n != 1:
            return None
    return part


def locate(root: MimePart, section: Section, size: int) -> ByteRange | None:
    """The byte range of a section, or None when the part does not exist. For
    HEADER.FIELDS the range is the header to filter (see filter_header)."""
    if not section.part:
        if section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            return ByteRange(root.header_start, root.body_start)
        if section.text == "TEXT":
            return ByteRange(root.body_start, root.end)
        return ByteRange(0, size)
    part = find_part(root, section.part)
    if part is None:
        return None
    if section.text == "MIME":
        return ByteRange(part.header_start, part.body_start)
    if section.text:
        # HEADER/TEXT of a part: only a message/rfc822 part has its own header and text.
        if part.message is None:
            return None
        inner = part.message.body
        if section.text == "TEXT":
            return ByteRange(inner.body_start, inner.end)
        return ByteRange(inner.header_start, inner.body_start)
    return ByteRange(part.body_start, part.end)


_FIELD_NAME = re.compile(rb"([^:\s]+)[ \t]*:")


def filter_header(header: bytes, names: tuple[str, ...], *, exclude: bool) -> bytes:
    """HEADER.FIELDS (NOT): the matching fields, unfolded lines kept, plus the blank line."""
    wanted = {n.upper().encode() for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        m = _FIELD_NAME.match(line)
        name = m.group(1).upper() if m else b""
        keep = bool(m) and ((name in wanted) != exclude)
        if keep:
            out.append(line if line.endswith(b"\n") else line + b"\r\n")
    return b"".join(out) + b"\r\n"


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """RFC 3516 BINARY: the part body without its Content-Transfer-Encoding."""
    enc = encoding.strip().lower()
    if enc in ("7bit", "8bit", "binary", ""):
        return data
    if enc == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else None]
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            return b""
    if enc == "quoted-printable":
        return decode_quoted_printable(data)
    raise SectionError(f"unknown transfer encoding {encoding}")


def decode_quoted_printable(data: bytes) -> bytes:
    """RFC 2045 6.7, line by line: trailing white space is transport padding and is
    deleted (rule 3), also before a soft line break, which joins the line to the next
    (rule 5). quopri.decodestring keeps that white space."""
    out: list[bytes] = []
    for line in data.splitlines(keepends=True):
        text = line.rstrip(b"\r\n")
        end = line[len(text) :]
        text = text.rstrip(b" \t")  # rule 3
        if text.endswith(b"="):
            text, end = text[:-1].rstrip(b" \t"), b""  # rule 5: a soft line break
        out.append(binascii.a2b_qp(text) + end)
    return b"".join(out)
