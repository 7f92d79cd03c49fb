"""A stored message as the webmail shows it: headers, the text and HTML bodies, and the
attachments, read from the MIME tree parsed at delivery (byte offsets into the blob), so
a 50 MB or a 10,000-part message is never parsed again and only the parts shown are read.

Nothing here raises on bad input: an unknown charset or broken base64 decodes to what can
be read (replacement characters), like the IMAP server's answers for the same message.
"""

from __future__ import annotations

import binascii
import codecs
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postel.mail.mime import MimePart, decode_words

# Bytes of one text part decoded for display or the index; beyond this the view says the
# text was cut (a 50 MB text part would otherwise be sent whole to the browser).
MAX_TEXT_BYTES = 2 * 1024 * 1024
MAX_INDEX_CHARS = 64 * 1024  # body text kept per message in the search index
MAX_PARTS_LISTED = 500  # attachments listed by the view
ENVELOPE_FIELDS = {"date": 0, "subject": 1, "from": 2, "sender": 3, "reply_to": 4, "to": 5,
                   "cc": 6, "bcc": 7, "in_reply_to": 8, "message_id": 9}  # RFC 9051 7.5.2


@dataclass(frozen=True)
class Section:
    """A leaf (or message/rfc822) part and its IMAP-style section number ("1", "2.1")."""

    number: str
    part: MimePart

    @property
    def mime_type(self) -> str:
        return f"{self.part.content_type}/{self.part.content_subtype}".lower()

    @property
    def filename(self) -> str:
        params = dict(self.part.disposition[1]) if self.part.disposition else {}
        name = params.get("filename") or dict(self.part.params).get("name") or ""
        return decode_words(name).replace("/", "_").replace("\\", "_").strip()

    @property
    def is_attachment(self) -> bool:
        disposition = (self.part.disposition[0] if self.part.disposition else "").lower()
        return disposition == "attachment" or bool(self.filename)

    @property
    def content_id(self) -> str:
        return (self.part.content_id or "").strip().strip("<>")


def sections(root: MimePart) -> Iterator[Section]:
    """Every leaf of a message body in order, with its section number (RFC 9051 6.4.5);
    an attached message is one leaf here (it is shown on its own)."""
    if not root.children:
        yield Section("1", root)
        return
    stack: list[tuple[str, MimePart]] = [
        (str(i), child) for i, child in reversed(list(enumerate(root.children, 1)))
    ]
    while stack:  # iterative: a 10,000-part or deeply nested message cannot overflow
        number, part = stack.pop()
        if part.children:
            stack.extend((f"{number}.{i}", child)
                         for i, child in reversed(list(enumerate(part.children, 1))))
        else:
            yield Section(number, part)


def find_section(root: MimePart, number: str) -> Section | None:
    """A section by number, descending into attached messages ("2.1" of a message/rfc822
    part 2 is the first part of the attached message)."""
    for section in sections(root):
        if section.number == number:
            return section
        embedded = section.part.message
        if embedded is not None and number.startswith(section.number + "."):
            rest = number[len(section.number) + 1:]
            found = find_section(embedded.body, rest)
            if found is not None:
                return Section(number, found.part)
    return None


READ_CHUNK = 1024 * 1024  # bytes of a part's encoded body read (and decoded) at a time
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def iter_part(blob: Path, part: MimePart, chunk: int = READ_CHUNK) -> Iterator[bytes]:
    """A part's body with its Content-Transfer-Encoding undone (RFC 2045 6), a chunk at
    a time: a 40 MB attachment is streamed to the browser, never held in memory whole."""
    encoding = part.encoding.lower()
    decoder = (_Base64Chunks() if encoding == "base64"
               else _QuotedPrintableChunks() if encoding == "quoted-printable" else None)
    with blob.open("rb") as handle:
        handle.seek(part.body_start)
        left = max(0, part.end - part.body_start)
        while left:
            data = handle.read(min(chunk, left))
            if not data:
                break  # a blob shorter than its tree says: show what is there
            left -= len(data)
            out = data if decoder is None else decoder.feed(data)
            if out:
                yield out
    if decoder is not None:
        tail = decoder.finish()
        if tail:
            yield tail


class _Base64Chunks:
    """Lenient like every mail client: junk characters skipped, padding repaired."""

    def __init__(self) -> None:
        self.pending = b""  # sextets short of a whole 4-character group

    def feed(self, data: bytes) -> bytes:
        cleaned = self.pending + _NOT_BASE64.sub(b"", data)
        whole = len(cleaned) - len(cleaned) % 4
        self.pending = cleaned[whole:]
        return binascii.a2b_base64(cleaned[:whole]) if whole else b""

    def finish(self) -> bytes:
        rest = self.pending
        if len(rest) == 1:
            return b""  # a lone sextet carries no whole byte
        try:
            return binascii.a2b_base64(rest + b"=" * (-len(rest) % 4)) if rest else b""
        except binascii.Error:
            return b""


class _QuotedPrintableChunks:
    """RFC 2045 6.7; a chunk is cut after its last line end, so neither a soft line
    break nor an =XX escape is ever split between two decodes."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        data = self.pending + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # one very long line: keep back only a possibly split escape
            cut = len(data)
            if b"=" in data[-2:]:
                cut = data.rindex(b"=", len(data) - 2)
        self.pending = data[cut:]
        return binascii.a2b_qp(data[:cut])

    def finish(self) -> bytes:
        return binascii.a2b_qp(self.pending)


def read_part(blob: Path, part: MimePart, limit: int | None = None) -> bytes:
    """A part's decoded body, or its first `limit` bytes (only those are read)."""
    out = bytearray()
    for data in iter_part(blob, part, READ_CHUNK if limit is None else min(READ_CHUNK, limit)):
        out += data
        if limit is not None and len(out) >= limit:
            break
    return bytes(out) if limit is None else bytes(out[:limit])


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes of a text part as str in its declared charset; an unknown or lying charset
    falls back to UTF-8 then Windows-1252, with replacement characters, never an error.
    NUL is no text (RFC 5322 2.3 forbids it in a body) and PostgreSQL's text type cannot
    hold it, so it becomes U+FFFD for the page and the search index alike."""
    name = (charset or "us-ascii").strip().strip('"').lower()
    if name in ("us-ascii", "ascii", ""):
        name = "utf-8"  # a superset: 8-bit text labelled ASCII is usually UTF-8
    return _decode(data, name).replace("\x00", "\ufffd")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode(codecs.lookup(name).name)
    except (LookupError, UnicodeError, ValueError):
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def part_text(blob: Path, section: Section, limit: int = MAX_TEXT_BYTES) -> tuple[str, bool]:
    """(decoded text, whether it was cut at `limit` bytes)."""
    data = read_part(blob, section.part, limit + 1)
    cut = len(data) > limit
    charset = dict((k.lower(), v) for k, v in section.part.params).get("charset")
    return decode_text(data[:limit], charset), cut


_TAG = re.compile(r"<(script|style|head)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def html_to_text(markup: str) -> str:
    """Visible text of HTML, for the index and the preview line (not for display)."""
    return html.unescape(_TAG.sub(" ", markup))


def address_list(envelope: list[Any], field: str) -> list[dict[str, str]]:
    """An ENVELOPE address field as [{name, email}], encoded-words decoded."""
    out = []
    for entry in envelope[ENVELOPE_FIELDS[field]] or []:
        name, _route, mailbox, host = (list(entry) + [None] * 4)[:4]
        if mailbox is None or host is None:
            continue  # group syntax
        out.append({"name": decode_words(name or "").strip(), "email": f"{mailbox}@{host}"})
    return out


@dataclass
class Bodies:
    """The parts a message shows as its body, and the rest as attachments."""

    text: Section | None
    html: Section | None
    attachments: list[Section]  # the first MAX_PARTS_LISTED of them
    attachments_total: int  # all of them, so the page can say how many it left out
    inline_images: dict[str, Section]  # Content-ID -> image part (for cid: URLs)


def choose_bodies(root: MimePart) -> Bodies:
    """RFC 2046 5.1.4: of multipart/alternative the last part we can show is best; a text
    part that is not an attachment is the body, the first of each kind wins."""
    text: Section | None = None
    html_part: Section | None = None
    attachments: list[Section] = []
    total = 0
    images: dict[str, Section] = {}
    for section in sections(root):
        kind = section.mime_type
        if kind in ("text/plain", "text/html") and not section.is_attachment:
            if kind == "text/plain" and text is None:
                text = section
                continue
            if kind == "text/html" and html_part is None:
                html_part = section
                continue
        if section.content_id and kind.startswith("image/"):
            images[section.content_id] = section
            if not section.is_attachment:
                continue  # an inline image of the HTML body, shown there
        total += 1
        if len(attachments) < MAX_PARTS_LISTED:
            attachments.append(section)
    return Bodies(text, html_part, attachments, total, images)


def index_text(blob: Path, root: MimePart) -> str:
    """The body text the search index keeps: text parts, HTML as text, up to a limit."""
    bodies = choose_bodies(root)
    chunks: list[str] = []
    if bodies.text is not None:
        chunks.append(part_text(blob, bodies.text, MAX_INDEX_CHARS)[0])
    if bodies.html is not None and not chunks:
        chunks.append(html_to_text(part_text(blob, bodies.html, MAX_INDEX_CHARS * 4)[0]))
    return " ".join(" ".join(chunks).split())[:MAX_INDEX_CHARS]
