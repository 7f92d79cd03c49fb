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


def read_part(blob: Path, part: MimePart, limit: int | None = None) -> bytes:
    """A part's body with its Content-Transfer-Encoding undone (RFC 2045 6)."""
    length = part.end - part.body_start
    if limit is not None:
        # base64 inflates by 4/3; read enough encoded bytes to decode `limit`.
        length = min(length, limit * 4 // 3 + 4096)
    with blob.open("rb") as handle:
        handle.seek(part.body_start)
        data = handle.read(max(0, length))
    encoding = part.encoding.lower()
    if encoding == "base64":
        # Lenient like every mail client: junk characters skipped, padding repaired.
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a lone sextet carries no whole byte
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            data = binascii.a2b_base64(cleaned)
        except binascii.Error:
            data = b""
    elif encoding == "quoted-printable":
        data = binascii.a2b_qp(data)
    return data if limit is None else data[:limit]


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes of a text part as str in its declared charset; an unknown or lying charset
    falls back to UTF-8 then Windows-1252, with replacement characters, never an error."""
    name = (charset or "us-ascii").strip().strip('"').lower()
    if name in ("us-ascii", "ascii", ""):
        name = "utf-8"  # a superset: 8-bit text labelled ASCII is usually UTF-8
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
    attachments: list[Section]
    inline_images: dict[str, Section]  # Content-ID -> image part (for cid: URLs)


def choose_bodies(root: MimePart) -> Bodies:
    """RFC 2046 5.1.4: of multipart/alternative the last part we can show is best; a text
    part that is not an attachment is the body, the first of each kind wins."""
    text: Section | None = None
    html_part: Section | None = None
    attachments: list[Section] = []
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
        if len(attachments) < MAX_PARTS_LISTED:
            attachments.append(section)
    return Bodies(text, html_part, attachments, images)


def index_text(blob: Path, root: MimePart) -> str:
    """The body text the search index keeps: text parts, HTML as text, up to a limit."""
    bodies = choose_bodies(root)
    chunks: list[str] = []
    if bodies.text is not None:
        chunks.append(part_text(blob, bodies.text, MAX_INDEX_CHARS)[0])
    if bodies.html is not None and not chunks:
        chunks.append(html_to_text(part_text(blob, bodies.html, MAX_INDEX_CHARS * 4)[0]))
    return " ".join(" ".join(chunks).split())[:MAX_INDEX_CHARS]
