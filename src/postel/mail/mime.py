"""Parse a stored message once, at delivery, so IMAP FETCH/SEARCH/SORT never re-parse it.

The parser streams the file line by line (bounded chunks), keeps only header fields in memory
and records, for every MIME part, byte offsets into the stored blob.  FETCH BODY[section] can
then seek straight to the bytes it needs.

Malformed input never raises: like Dovecot and mox we give the most faithful answer we can.
"""

from __future__ import annotations

import binascii
import io
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from postel.mail.address import parse_address_list
from postel.mail.charsets import decode_text

__all__ = [
    "MAX_DEPTH",
    "EmbeddedMessage",
    "HeaderAddress",
    "MimePart",
    "ParsedMessage",
    "StoredEnvelope",
    "base_subject",
    "decode_words",
    "parse_addresses",
    "parse_message_bytes",
    "parse_message_file",
]

# Nesting deeper than this is treated as a leaf: no legitimate mail nests 100 levels, and the
# recursion must stay well inside Python's own limit.
MAX_DEPTH = 100
_CHUNK = 65536  # readline() bound: a line longer than this arrives in several chunks
_MAX_HEADER = 1 << 20  # header octets kept per part; a header bomb cannot exhaust memory
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")  # RFC 5322 2.2 field-name (plus obs WSP, 4.5.8)

# The stored form of an IMAP ENVELOPE (the messages.envelope JSON column and the
# "envelope" of an embedded message in the mime column): [date, subject, from, sender,
# reply-to, to, cc, bcc, in-reply-to, message-id], addresses as [name, adl, mailbox, host],
# an empty address list as None. It is kept as it always was, so no migration is needed;
# ``ParsedMessage`` reads it through typed properties and ``imap/proto/envelope.py`` builds the
# typed ENVELOPE from it.
StoredEnvelope = list[Any]
Params = list[tuple[str, str]]


@dataclass(frozen=True)
class HeaderAddress:
    """One address of an address header, as written (RFC 2047 words not decoded).

    A group is a start marker (``mailbox`` = the group name, ``host`` None) and an end
    marker (both None), as IMAP writes it (RFC 9051 7.5.2). A mailbox without a domain
    has ``host`` "", since None means group syntax."""

    name: str | None
    adl: str | None  # the obsolete source route (RFC 5322 4.4)
    mailbox: str | None
    host: str | None

    @property
    def is_group_marker(self) -> bool:
        return self.host is None

    @classmethod
    def from_stored(cls, item: list[str | None]) -> HeaderAddress:
        name, adl, mailbox, host = item
        return cls(name, adl, mailbox, host)

    def to_stored(self) -> list[str | None]:
        return [self.name, self.adl, self.mailbox, self.host]


def parse_addresses(value: str) -> tuple[HeaderAddress, ...]:
    """An RFC 5322 3.4 address-list header value as typed addresses."""
    return tuple(HeaderAddress.from_stored(item) for item in parse_address_list(value))


def _stored_addresses(stored: list[list[str | None]] | None) -> tuple[HeaderAddress, ...]:
    return tuple(HeaderAddress.from_stored(item) for item in stored or ())


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class EmbeddedMessage:
    """The message carried by a message/rfc822 (or RFC 6532 message/global) part."""

    envelope: StoredEnvelope
    body: MimePart  # root part of the embedded message; its header is the message header

    def to_json(self) -> dict[str, Any]:
        return {"envelope": self.envelope, "body": self.body.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmbeddedMessage:
        return cls(envelope=data["envelope"], body=MimePart.from_json(data["body"]))


@dataclass(frozen=True)
class MimePart:
    """One MIME entity; offsets are absolute byte positions in the stored message."""

    header_start: int
    body_start: int
    end: int
    content_type: str
    content_subtype: str
    params: Params
    content_id: str | None
    description: str | None
    encoding: str
    disposition: tuple[str, Params] | None
    language: list[str] | None
    location: str | None
    md5: str | None
    lines: int
    size: int
    children: tuple[MimePart, ...] = ()
    message: EmbeddedMessage | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "hs": self.header_start, "bs": self.body_start, "end": self.end,
            "type": self.content_type, "subtype": self.content_subtype,
            "params": [list(p) for p in self.params], "enc": self.encoding,
            "lines": self.lines, "size": self.size,
        }
        optional = {"id": self.content_id, "desc": self.description, "lang": self.language,
                    "loc": self.location, "md5": self.md5}
        d.update({k: v for k, v in optional.items() if v is not None})
        if self.disposition is not None:
            d["disp"] = [self.disposition[0], [list(p) for p in self.disposition[1]]]
        if self.children:
            d["children"] = [c.to_json() for c in self.children]
        if self.message is not None:
            d["message"] = self.message.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MimePart:
        disp = d.get("disp")
        msg = d.get("message")
        return cls(
            header_start=d["hs"], body_start=d["bs"], end=d["end"],
            content_type=d["type"], content_subtype=d["subtype"],
            params=[(k, v) for k, v in d["params"]], content_id=d.get("id"),
            description=d.get("desc"), encoding=d["enc"],
            disposition=None if disp is None else (disp[0], [(k, v) for k, v in disp[1]]),
            language=d.get("lang"), location=d.get("loc"), md5=d.get("md5"),
            lines=d["lines"], size=d["size"],
            children=tuple(cls.from_json(c) for c in d.get("children", ())),
            message=None if msg is None else EmbeddedMessage.from_json(msg),
        )


@dataclass(frozen=True)
class ParsedMessage:
    size: int
    envelope: StoredEnvelope  # what the store writes; read the fields below instead
    body: MimePart
    headers: list[tuple[str, str]]
    subject: str
    base_subject: str
    sent_date: datetime | None
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    from_sort: str
    to_sort: str
    cc_sort: str
    display_from: str
    display_to: str
    has_attachments: bool

    # The address headers as the ENVELOPE has them: Sender and Reply-To are From when
    # absent or empty (RFC 9051 7.5.2); an absent or empty header is ().
    @property
    def from_(self) -> tuple[HeaderAddress, ...]:
        return _stored_addresses(self.envelope[2])

    @property
    def sender(self) -> tuple[HeaderAddress, ...]:
        return _stored_addresses(self.envelope[3])

    @property
    def reply_to(self) -> tuple[HeaderAddress, ...]:
        return _stored_addresses(self.envelope[4])

    @property
    def to(self) -> tuple[HeaderAddress, ...]:
        return _stored_addresses(self.envelope[5])

    @property
    def cc(self) -> tuple[HeaderAddress, ...]:
        return _stored_addresses(self.envelope[6])

    @property
    def bcc(self) -> tuple[HeaderAddress, ...]:
        return _stored_addresses(self.envelope[7])

    @property
    def date(self) -> str | None:
        """The Date header as written (``sent_date`` is it parsed)."""
        value: str | None = self.envelope[0]
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size, "envelope": self.envelope, "body": self.body.to_json(),
            "headers": [list(h) for h in self.headers], "subject": self.subject,
            "base_subject": self.base_subject,
            "sent_date": None if self.sent_date is None else self.sent_date.isoformat(),
            "message_id": self.message_id, "in_reply_to": self.in_reply_to,
            "references": self.references, "from_sort": self.from_sort,
            "to_sort": self.to_sort, "cc_sort": self.cc_sort,
            "display_from": self.display_from, "display_to": self.display_to,
            "has_attachments": self.has_attachments,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ParsedMessage:
        sd = d.get("sent_date")
        return cls(
            size=d["size"], envelope=d["envelope"], body=MimePart.from_json(d["body"]),
            headers=[(k, v) for k, v in d["headers"]], subject=d["subject"],
            base_subject=d["base_subject"],
            sent_date=None if sd is None else datetime.fromisoformat(sd),
            message_id=d.get("message_id"), in_reply_to=d.get("in_reply_to"),
            references=list(d.get("references", [])), from_sort=d["from_sort"],
            to_sort=d["to_sort"], cc_sort=d["cc_sort"], display_from=d["display_from"],
            display_to=d["display_to"], has_attachments=d["has_attachments"],
        )


# --------------------------------------------------------------------------- text helpers


def _no_nul(text: str) -> str:
    """Header text never holds NUL: no IMAP string can carry it (RFC 9051 4.3: CHAR8 is
    %x01-ff), PostgreSQL's text type refuses it (the delivery failed with 451), and RFC 5322
    4.1 only tolerates it as obsolete syntax. It becomes U+FFFD, as in the webmail's text."""
    return text.replace("\x00", "\ufffd")


def _text(raw: bytes) -> str:
    """Raw header bytes as str: UTF-8 (RFC 6532) when valid, else latin-1 (never fails and
    keeps every octet, unlike surrogateescape which would not survive JSON/IMAP output)."""
    try:
        return _no_nul(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _no_nul(raw.decode("latin-1"))


def _unfold(raw: bytes) -> str:
    # RFC 5322 2.2.3: unfolding removes the CRLF that precedes folding whitespace.
    return _text(raw.replace(b"\r\n", b"").replace(b"\n", b"")).strip()


def _decode_charset(data: bytes, charset: str) -> str:
    # Only real text charsets (charsets.py: unicode_escape and punycode were attacks).
    # An encoded word "=00" or an RFC 2231 "%00" is NUL too.
    return _no_nul(decode_text(data, charset))


# RFC 2047 2: an encoded-word is at most 75 characters; a longer one is not decoded (a
# megabyte "word" was a way to spend CPU per message).
MAX_ENCODED_WORD = 75
_EW_PART = MAX_ENCODED_WORD - 7  # less "=?", "?Q?" and "?="
_EW = re.compile(rf"=\?([^?\s]{{1,{_EW_PART}}})\?([bBqQ])\?([^?\s]{{0,{_EW_PART}}})\?=")


def _ew_bytes(m: re.Match[str]) -> bytes | None:
    if len(m.group(0)) > MAX_ENCODED_WORD:
        return None
    enc, payload = m.group(2).upper(), m.group(3)
    try:
        if enc == "B":
            data = payload.encode("ascii").rstrip(b"=")
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)
        return binascii.a2b_qp(payload.encode("utf-8"), header=True)
    except (binascii.Error, UnicodeError, ValueError):
        return None


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words.  Whitespace between adjacent encoded-words is dropped
    (RFC 2047 6.2) and adjacent words in one charset are joined before decoding, so a
    multi-byte character split across words survives.  Broken words are left as written."""
    if "=?" not in text:
        return text
    out: list[str] = []
    run: list[tuple[str, bytes]] = []

    def flush() -> None:
        out.extend(_decode_charset(data, cs) for cs, data in run)
        run.clear()

    pos = 0
    for m in _EW.finditer(text):
        between = text[pos:m.start()]
        if between and not (run and between.isspace()):
            flush()
            out.append(between)
        data = _ew_bytes(m)
        if data is None:
            flush()
            out.append(m.group(0))
        else:
            cs = m.group(1).split("*", 1)[0].lower()  # RFC 2231 5: charset*language
            if run and run[-1][0] == cs:
                run[-1] = (cs, run[-1][1] + data)
            else:
                run.append((cs, data))
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- tokenizing


def _strip_comments(s: str) -> str:
    out, depth, i, quoted = [], 0, 0, False
    while i < len(s):
        c = s[i]
        if c == "\\" and (depth or quoted):
            if not depth:
                out.append(s[i:i + 2])
            i += 2
            continue
        if c == '"' and not depth:
            quoted = not quoted
        elif c == "(" and not quoted:
            depth += 1
        elif c == ")" and depth:
            depth -= 1
            i += 1
            continue
        if not depth:
            out.append(c)
        i += 1
    return "".join(out)


def _split_params(value: str) -> tuple[str, Params]:
    """Split 'main; a=b; c="d"' (RFC 2045 5.1) into main value and raw (name, value) pairs."""
    s = _strip_comments(value)
    main, _, rest = s.partition(";")
    raw: Params = []
    i, n = 0, len(rest)
    while i < n:
        eq = rest.find("=", i)
        semi = rest.find(";", i)
        if eq < 0 or (0 <= semi < eq):
            if semi < 0:
                break
            i = semi + 1  # attribute without a value: ignore it
            continue
        name = rest[i:eq].strip().lower()
        j = eq + 1
        while j < n and rest[j] in " \t":
            j += 1
        if j < n and rest[j] == '"':
            buf, j = [], j + 1
            while j < n and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(rest[j])
                j += 1
            val = "".join(buf)
            semi = rest.find(";", j)
        else:
            semi = rest.find(";", j)
            val = rest[j:semi if semi >= 0 else n].strip()
        if name:
            raw.append((name, val))
        if semi < 0:
            break
        i = semi + 1
    return main.strip(), _rfc2231(raw)


_SECTION = re.compile(r"^(.+?)\*(\d+)?(\*)?$")


def _rfc2231(raw: Params) -> Params:
    """Join RFC 2231 3 continuations and decode RFC 2231 4 charset'lang'%XX values.  An
    extended value wins over a plain parameter of the same name; order of first use is kept."""
    order: list[str] = []
    plain: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for name, val in raw:
        m = _SECTION.match(name)
        base = m.group(1) if m else name
        if base not in order:
            order.append(base)
        if m is None:
            plain.setdefault(name, val)
        else:
            digits = m.group(2)
            # "name*" is a single extended value; "name*N" / "name*N*" are sections.
            num = int(digits) if digits is not None and len(digits) < 6 else 0
            ext = digits is None or m.group(3) is not None
            sections.setdefault(base, {}).setdefault(num, (val, ext))
    out: Params = []
    for base in order:
        if base not in sections:
            out.append((base, plain[base]))
            continue
        parts = sorted(sections[base].items())
        charset = "utf-8"
        pieces: list[str] = []
        buf = b""
        for idx, (val, ext) in parts:
            if ext:
                if idx == parts[0][0] and val.count("'") >= 2:
                    cs, _lang, val = val.split("'", 2)
                    charset = cs or charset
                buf += unquote_to_bytes(val)
                continue
            if buf:
                pieces.append(_decode_charset(buf, charset))
                buf = b""
            pieces.append(val)
        if buf:
            pieces.append(_decode_charset(buf, charset))
        out.append((base, "".join(pieces)))
    return out


def _msg_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", _strip_comments(value).replace(" ", ""))


# --------------------------------------------------------------------------- base subject

_LEADER = re.compile(r"^(?:\[[^\[\]]*\][ ]*)*(?:re|fwd?)[ ]*(?:\[[^\[\]]*\][ ]*)?:", re.I)
_BLOB = re.compile(r"^\[[^\[\]]*\][ ]*")


def base_subject(subject: str) -> str:
    """RFC 5256 2.1 base subject of an already RFC 2047-decoded subject."""
    s = re.sub(r"[ \t\r\n]+", " ", subject)  # step 1
    while True:
        while True:  # step 2: subj-trailer = "(fwd)" / WSP
            s = s.rstrip(" ")
            if s[-5:].lower() != "(fwd)":
                break
            s = s[:-5]
        while True:  # steps 3-5
            before = s
            while True:  # step 3: subj-leader = (*subj-blob subj-refwd) / WSP
                t = s.lstrip(" ")
                m = _LEADER.match(t)
                t = t[m.end():] if m else t
                if t == s:
                    break
                s = t
            m = _BLOB.match(s)  # step 4: drop a leading blob unless it is all that is left
            if m and s[m.end():].strip(" "):
                s = s[m.end():]
            if s == before:
                break
        if s[:5].lower() == "[fwd:" and s.endswith("]"):  # step 6
            s = s[5:-1]
            continue
        return s


# --------------------------------------------------------------------------- streaming reader


class _Reader:
    """readline() with exact offsets, a count of line starts and one line of push-back."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.pos = 0  # offset of the next unread byte
        self.bol = True  # the next chunk starts a line
        self.nlines = 0  # line starts returned so far (= line starts before pos)
        self.line_start = 0  # start of the physical line of the last chunk
        self.eol = 0  # length of the line ending of the last chunk (0: none)
        self._pending: bytes | None = None
        self._saved = (0, True, 0, 0, 0)

    def readline(self) -> bytes:
        line = self._pending
        if line is None:
            line = self._f.readline(_CHUNK)
        else:
            self._pending = None
        self._saved = (self.pos, self.bol, self.nlines, self.line_start, self.eol)
        if line:
            if self.bol:
                self.nlines += 1
                self.line_start = self.pos
            self.pos += len(line)
            self.bol = line[-1:] == b"\n"
            self.eol = (2 if line[-2:] == b"\r\n" else 1) if self.bol else 0
        return line

    def unread(self, line: bytes) -> None:
        self._pending = line
        self.pos, self.bol, self.nlines, self.line_start, self.eol = self._saved

    def to_eof(self) -> None:
        """Skip to EOF counting lines; no boundary can end the part so read big blocks."""
        if self._pending is not None:
            self.readline()
        while block := self._f.read(1 << 20):
            self.nlines += (1 if self.bol else 0) + block.count(b"\n", 0, len(block) - 1)
            self.pos += len(block)
            self.bol = block[-1:] == b"\n"


@dataclass(slots=True)
class _Stop:
    """Where a part ended: idx of the boundary in the stack (-1 = EOF), close delimiter?,
    end offset (before the CRLF owned by the delimiter, RFC 2046 5.1.1) and line starts
    before end."""

    idx: int
    close: bool
    end: int
    count: int


def _match(line: bytes, bounds: list[bytes]) -> tuple[int, bool] | None:
    # Innermost boundary first.  RFC 2046 5.1.1 allows trailing transport padding (LWSP).
    for i in range(len(bounds) - 1, -1, -1):
        b = bounds[i]
        if line.startswith(b):
            rest = line[len(b):]
            close = rest[:2] == b"--"
            if not rest[2 if close else 0:].strip(b" \t\r\n"):
                return i, close
    return None


# --------------------------------------------------------------------------- part parser

Fields = list[tuple[str, bytes]]
_EMPTY_ENVELOPE: StoredEnvelope = [None] * 10


class _Parser:
    def __init__(self, f: IO[bytes]) -> None:
        self.r = _Reader(f)

    def _stop(self, m: tuple[int, bool], start: int, eol: int, ls: int, nl: int) -> _Stop:
        end = start - eol
        # The line before the delimiter loses its CRLF; if it was empty, its start is no
        # longer inside the part.
        return _Stop(m[0], m[1], end, nl - (1 if nl and ls >= end else 0))

    def _scan(self, bounds: list[bytes]) -> _Stop:
        r = self.r
        if not bounds:
            r.to_eof()
            return _Stop(-1, False, r.pos, r.nlines)
        readline = r.readline
        eol = ls = nl = start = 0
        while True:
            bol = r.bol
            if bol:
                eol, ls, nl, start = r.eol, r.line_start, r.nlines, r.pos
            line = readline()
            if not line:
                return _Stop(-1, False, r.pos, r.nlines)
            if bol and line[:2] == b"--":
                m = _match(line, bounds)
                if m is not None:
                    return self._stop(m, start, eol, ls, nl)

    def _header(self, bounds: list[bytes]) -> tuple[Fields, int, int, _Stop | None]:
        """Read a header block.  Returns fields, body_start, line starts before body_start
        and a stop when a delimiter or EOF cut the header short."""
        r = self.r
        hs, hs_lines = r.pos, r.nlines
        fields: list[tuple[str, list[bytes]]] = []
        kept, first, in_field = 0, True, False
        stop: _Stop | None = None
        while True:
            bol, eol, ls, nl, start = r.bol, r.eol, r.line_start, r.nlines, r.pos
            line = r.readline()
            if not line:
                stop = _Stop(-1, False, r.pos, r.nlines)
                break
            if bol and line[:2] == b"--" and bounds:
                m = _match(line, bounds)
                if m is not None:
                    stop = self._stop(m, start, eol, ls, nl)
                    break
            if bol and line in (b"\r\n", b"\n"):
                break
            if not bol or line[0] in b" \t":
                if first:  # no header at all: the part starts with its body
                    r.unread(line)
                    break
                if in_field and kept < _MAX_HEADER:
                    fields[-1][1].append(line)
                    kept += len(line)
                continue
            fm = _FIELD.match(line)
            if fm is None:
                if first:
                    r.unread(line)
                    break
                in_field = False  # garbage line inside a header: skip it, as Dovecot does
            else:
                in_field = kept < _MAX_HEADER
                if in_field:
                    fields.append((fm.group(1).decode("ascii"), [line[fm.end():]]))
                    kept += len(line)
            first = False
        out = [(name, b"".join(chunks)) for name, chunks in fields]
        if stop is not None:
            if stop.end < hs:  # "--a CRLF --b": both delimiters claim the one CRLF
                stop = _Stop(stop.idx, stop.close, hs, hs_lines)
            return out, stop.end, stop.count, stop
        return out, r.pos, r.nlines, None

    def part(
        self, bounds: list[bytes], default: tuple[str, str], depth: int
    ) -> tuple[MimePart, Fields, _Stop]:
        hs = self.r.pos
        fields, bs, cbs, stop = self._header(bounds)
        first: dict[str, bytes] = {}
        for name, raw in fields:
            first.setdefault(name.lower(), raw)
        ctype, sub, params = _content_type(first.get("content-type"), default)
        children: tuple[MimePart, ...] = ()
        message: EmbeddedMessage | None = None
        if ctype == "multipart":
            boundary = _boundary(first.get("content-type")) if depth < MAX_DEPTH else None
            if stop is None and boundary:
                own = len(bounds)
                nb = [*bounds, b"--" + boundary]
                stop = self._scan(nb)  # preamble
                if stop.idx == own and not stop.close:
                    kids: list[MimePart] = []
                    kid_default = ("message", "rfc822") if sub == "digest" else _DEFAULT_TEXT
                    while True:
                        kid, _, stop = self.part(nb, kid_default, depth + 1)
                        kids.append(kid)
                        if stop.idx != own:
                            break  # EOF or an outer delimiter: close delimiter missing
                        if stop.close:
                            stop = self._scan(bounds)  # epilogue
                            break
                    children = tuple(kids)
                elif stop.idx == own:
                    stop = self._scan(bounds)  # close delimiter before any part
            if not children:
                # RFC 2045 5.2: an unusable Content-Type (no boundary, no delimiter, too
                # deep) is treated as text/plain, so the content stays readable as one body.
                ctype, sub, params = _DEFAULT_TEXT[0], _DEFAULT_TEXT[1], [_US_ASCII]
        elif ctype == "message" and sub in ("rfc822", "global"):
            if stop is not None:
                message = EmbeddedMessage(list(_EMPTY_ENVELOPE), _leaf(bs, bs, 0))
            elif depth < MAX_DEPTH:
                inner, inner_fields, stop = self.part(bounds, _DEFAULT_TEXT, depth + 1)
                message = EmbeddedMessage(_envelope(inner_fields), inner)
            else:
                stop = self._scan(bounds)
                end = max(stop.end, bs)
                message = EmbeddedMessage(
                    list(_EMPTY_ENVELOPE), _leaf(bs, end, stop.count - cbs if end > bs else 0)
                )
        if stop is None:
            stop = self._scan(bounds)
        if stop.end < bs:
            # The CRLF before the delimiter is the one ending our header: the body is empty.
            # Report the clamped end upwards too, so every ancestor still encloses this part.
            stop = _Stop(stop.idx, stop.close, bs, cbs)
        end = stop.end
        lines = stop.count - cbs

        def text(key: str) -> str | None:
            raw = first.get(key)
            return None if raw is None else _unfold(raw)

        disposition = None
        if (draw := first.get("content-disposition")) is not None:
            dmain, dparams = _split_params(_unfold(draw))
            if dmain:
                disposition = (dmain.lower(), dparams)
        language = None
        if (lang := text("content-language")) is not None:
            language = [t.strip() for t in _strip_comments(lang).split(",") if t.strip()] or None
        location = text("content-location")
        if location is not None:  # RFC 2557 4.4.2: folding whitespace inside a URL is removed
            location = re.sub(r"\s+", "", location)
        encoding = _strip_comments(text("content-transfer-encoding") or "").strip() or "7BIT"
        return (
            MimePart(
                header_start=hs, body_start=bs, end=end, content_type=ctype,
                content_subtype=sub, params=params, content_id=text("content-id"),
                description=text("content-description"), encoding=encoding,
                disposition=disposition, language=language, location=location,
                md5=text("content-md5"), lines=lines, size=end - bs,
                children=children, message=message,
            ),
            fields,
            stop,
        )


_DEFAULT_TEXT = ("text", "plain")
_US_ASCII = ("charset", "us-ascii")


def _leaf(start: int, end: int, lines: int) -> MimePart:
    return MimePart(
        header_start=start, body_start=start, end=end, content_type="text",
        content_subtype="plain", params=[_US_ASCII], content_id=None, description=None,
        encoding="7BIT", disposition=None, language=None, location=None, md5=None,
        lines=lines, size=end - start,
    )


_TOKEN = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$")  # RFC 2045 5.1 token


def _content_type(raw: bytes | None, default: tuple[str, str]) -> tuple[str, str, Params]:
    fallback: Params = [_US_ASCII] if default == _DEFAULT_TEXT else []
    if raw is None:  # RFC 2045 5.2 / RFC 2046 5.1.5 (digest) defaults
        return default[0], default[1], fallback
    main, params = _split_params(_unfold(raw))
    typ, _, sub = main.partition("/")
    typ, sub = typ.strip().lower(), sub.strip().lower()
    if not (_TOKEN.match(typ) and _TOKEN.match(sub)):
        return "text", "plain", [_US_ASCII]  # RFC 2045 5.2: invalid syntax -> text/plain
    if typ == "text" and not any(name == "charset" for name, _ in params):
        # RFC 2046 4.1.2: text without a charset is US-ASCII; BODYSTRUCTURE says so, as
        # clients (and Dovecot) expect, rather than NIL.
        params = [*params, _US_ASCII]
    return typ, sub, params


def _boundary(raw: bytes | None) -> bytes | None:
    if raw is None:
        return None
    # Re-parse as latin-1 so the boundary is exactly the octets that appear in the body.
    _, params = _split_params(raw.replace(b"\r", b"").replace(b"\n", b"").decode("latin-1"))
    value = dict(params).get("boundary", "").rstrip(" \t")
    try:
        return value.encode("latin-1") or None
    except UnicodeEncodeError:  # an RFC 2231-encoded boundary decoded to non-latin-1 text
        return value.encode("utf-8")


# --------------------------------------------------------------------------- envelope


def _envelope(fields: Fields) -> StoredEnvelope:
    """RFC 3501 7.4.2 / RFC 9051 7.5.2 ENVELOPE from raw (not RFC 2047-decoded) fields."""
    first: dict[str, str] = {}
    for name, raw in fields:
        first.setdefault(name.lower(), _unfold(raw))

    def addrs(key: str) -> list[list[str | None]] | None:
        v = first.get(key)
        return (parse_address_list(v) or None) if v is not None else None

    frm = addrs("from")
    # Sender and Reply-To default to From when absent or empty (RFC 3501 7.4.2).
    return [
        first.get("date"), first.get("subject"), frm, addrs("sender") or frm,
        addrs("reply-to") or frm, addrs("to"), addrs("cc"), addrs("bcc"),
        first.get("in-reply-to"), first.get("message-id"),
    ]


def _first_address(addrs: list[list[str | None]] | None) -> list[str | None] | None:
    """The first address of a field, where a group counts as one (its start marker,
    whose mailbox is the group's name): RFC 5256 3 and RFC 5957 3 sort by the first
    address, and by the group's name when that is a group, not its first member."""
    return next(iter(addrs or ()), None)


def _sort_key(addrs: list[list[str | None]] | None) -> str:
    a = _first_address(addrs)
    return (a[2] or "").lower() if a else ""  # RFC 5256 3: addr-mailbox


def _display(addrs: list[list[str | None]] | None) -> str:
    a = _first_address(addrs)
    if a is None:
        return ""
    if a[0] and (name := decode_words(a[0]).strip()):
        return name  # RFC 5957 3: decoded display name ...
    return f"{a[2]}@{a[3]}" if a[3] else (a[2] or "")  # ... or else the addr-spec


def _sent_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt  # "-0000": unknown -> UTC


def _has_attachments(part: MimePart, root: bool) -> bool:
    if part.children:
        return any(_has_attachments(c, False) for c in part.children)
    if not root and part.message is not None:
        return True  # a forwarded message is an attachment; do not look inside it
    if part.disposition is not None and (
        part.disposition[0] == "attachment" or dict(part.disposition[1]).get("filename")
    ):
        return True
    return not root and bool(dict(part.params).get("name"))


def _build(f: IO[bytes]) -> ParsedMessage:
    p = _Parser(f)
    body, fields, _ = p.part([], _DEFAULT_TEXT, 0)
    p.r.to_eof()
    env = _envelope(fields)
    headers = [(name, decode_words(_unfold(raw))) for name, raw in fields]
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    subject = first.get("subject", "")
    mid = _msg_ids(first.get("message-id", ""))
    irt = _msg_ids(first.get("in-reply-to", ""))
    return ParsedMessage(
        size=p.r.pos, envelope=env, body=body, headers=headers, subject=subject,
        base_subject=base_subject(subject), sent_date=_sent_date(env[0]),
        message_id=mid[0] if mid else None, in_reply_to=irt[0] if irt else None,
        references=_msg_ids(first.get("references", "")),
        from_sort=_sort_key(env[2]), to_sort=_sort_key(env[5]), cc_sort=_sort_key(env[6]),
        display_from=_display(env[2]), display_to=_display(env[5]),
        has_attachments=_has_attachments(body, True),
    )


def parse_message_file(path: str | os.PathLike[str]) -> ParsedMessage:
    """Parse a stored message file in bounded memory (only header fields are kept)."""
    with open(path, "rb", buffering=1 << 16) as f:
        return _build(f)


def parse_message_bytes(data: bytes) -> ParsedMessage:
    return _build(io.BytesIO(data))
