"""PREVIEW (RFC 8970): a short plain-text abstract of a message, from its parsed MIME.

The text comes from the first text/plain part that is not an attachment, else the first
text/html one with its markup stripped; quoted lines ("> ...") are left out and white
space is collapsed. At most PREVIEW_CHARS code points are kept, which is within the
256 characters RFC 8970 3.1 allows (a character there is a grapheme cluster, which is at
least one code point).

Bodies are content-addressed and never change, so a preview computed once is kept in a
small in-process cache keyed by the body's SHA-256; a second FETCH PREVIEW reads nothing.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

from postel.imap.search_eval import decode_text
from postel.mail.mime import MimePart

PREVIEW_CHARS = 200
READ_LIMIT = 64 * 1024  # octets of one part read for its preview (HTML heads can be long)
MAX_DEPTH = 50  # MIME nesting looked through
CACHE_ENTRIES = 20_000  # previews kept; about 200 bytes each

# Reads `end - start` octets of the stored message from `start`.
Reader = Callable[[int, int], bytes]

_SPACE = re.compile(r"\s+")
_SKIPPED_HTML = frozenset({"head", "script", "style", "title", "template"})
_BLOCK_HTML = frozenset({"br", "p", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4",
                         "h5", "h6", "blockquote", "hr", "table", "ul", "ol", "pre"})


def _leaves(part: MimePart, depth: int = 0) -> Iterator[MimePart]:
    """Inline leaves in order; attached messages and attachments are not the text."""
    if depth > MAX_DEPTH:
        return
    if part.children:
        for child in part.children:
            yield from _leaves(child, depth + 1)
        return
    if part.message is not None:
        return
    if part.disposition is not None and part.disposition[0].lower() == "attachment":
        return
    yield part


def _text_part(root: MimePart) -> MimePart | None:
    html = None
    for leaf in _leaves(root):
        if leaf.content_type == "text" and leaf.content_subtype == "plain":
            return leaf
        if html is None and leaf.content_type == "text" and leaf.content_subtype == "html":
            html = leaf
    return html


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_HTML:
            self._skipping += 1
        elif tag in _BLOCK_HTML:
            self.pieces.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_HTML and self._skipping:
            self._skipping -= 1
        elif tag in _BLOCK_HTML:
            self.pieces.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.pieces.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return "".join(parser.pieces)


def _unquoted(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def abstract(text: str) -> str:
    """White space collapsed, cut to PREVIEW_CHARS code points."""
    flat = _SPACE.sub(" ", text).strip()
    return flat[:PREVIEW_CHARS].rstrip().rstrip("\ufffd")


def compute_preview(root: MimePart, read: Reader) -> str:
    """The preview text of a message; "" when it has no text (RFC 8970 3.1: an empty
    string, not NIL, for a message without any)."""
    part = _text_part(root)
    if part is None:
        return ""
    data = read(part.body_start, min(part.end, part.body_start + READ_LIMIT))
    text = decode_text(data, part)
    if part.content_subtype == "html":
        text = html_to_text(text)
    return abstract(_unquoted(text))


class PreviewCache:
    """Previews by body SHA-256, least recently used dropped first; thread-safe, since
    FETCH computes previews in worker threads."""

    def __init__(self, max_entries: int = CACHE_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str) -> str | None:
        with self._lock:
            text = self._entries.get(sha256)
            if text is not None:
                self._entries.move_to_end(sha256)
            return text

    def put(self, sha256: str, text: str) -> None:
        with self._lock:
            self._entries[sha256] = text
            self._entries.move_to_end(sha256)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


# One cache per process: previews depend on the body alone, whoever fetches it.
CACHE = PreviewCache()
