"""Evaluating SEARCH keys against stored messages (RFC 9051 6.4.4).

String keys are case-insensitive substring matches on decoded text (RFC 9051 6.4.4:
"case-insensitive"; we fold with str.casefold, which covers UTF-8 CHARSET searches).
Header keys look at the decoded header values stored at delivery; BODY and TEXT decode
the text parts of the blob (transfer encoding and charset) when first needed.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from postel.imap.bodies import decode_transfer
from postel.imap.objectid import EMAILID_COLUMNS, THREADID_COLUMNS, email_id, thread_id
from postel.imap.proto.envelope import Envelope
from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.sequence import SequenceSet
from postel.mail.mime import MimePart
from postel.store.model import Flags

MAX_TEXT = 8 * 1024 * 1024  # body bytes searched per message


@dataclass
class Candidate:
    uid: int
    seq: int
    flags: Flags
    recent: bool
    modseq: int
    row: dict[str, Any] = field(default_factory=dict)
    _text: str | None = None


def needed_columns(key: SearchKey) -> set[str]:
    cols: set[str] = set()
    op = key.op
    if op in ("AND", "OR", "NOT"):
        for sub in key.args:
            assert isinstance(sub, SearchKey)
            cols |= needed_columns(sub)
    elif op in ("BEFORE", "ON", "SINCE", "OLDER", "YOUNGER"):
        cols.add("internal_date")
    elif op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        cols |= {"envelope", "internal_date"}
    elif op in ("SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"):
        cols.add("saved_date")
    elif op == "EMAILID":
        cols |= EMAILID_COLUMNS
    elif op == "THREADID":
        cols |= THREADID_COLUMNS
    elif op in ("LARGER", "SMALLER"):
        cols.add("size")
    elif op in ("FROM", "TO", "CC", "BCC"):
        cols |= {"headers", "envelope"}
    elif op in ("SUBJECT", "HEADER"):
        cols.add("headers")
    elif op in ("BODY", "TEXT"):
        cols |= {"headers", "mime", "blob_sha256"}
    return cols


def _fold(text: str) -> str:
    return text.casefold()


def _header_values(row: dict[str, Any], name: str) -> list[str]:
    lname = name.lower()
    return [v for k, v in row.get("headers", []) if k.lower() == lname]


# Where each address field sits in the stored ENVELOPE (RFC 9051 7.5.2).
_ENVELOPE_FIELD = {"FROM": 2, "TO": 5, "CC": 6, "BCC": 7}


def _address_texts(row: dict[str, Any], name: str) -> list[str]:
    """What FROM/TO/CC/BCC search: the envelope's addresses (RFC 3501 6.4.4: "the
    envelope structure's FROM field"), each as "name <mailbox@host>" so comments and
    white space inside an address no longer hide it, plus the decoded header text."""
    texts = _header_values(row, name)
    envelope = row.get("envelope") or []
    index = _ENVELOPE_FIELD[name]
    addresses = (envelope[index] if len(envelope) > index else None) or []
    for display, _route, mailbox, host in addresses:
        address = f"{mailbox}@{host}" if mailbox and host else mailbox or ""
        texts.append(f"{display} <{address}>" if display else address)
    return texts


def _day(value: datetime | None) -> date | None:
    # RFC 9051 6.4.4: dates disregard time and timezone; internal dates count in UTC.
    if value is None:
        return None
    return value.date() if value.tzinfo is None else value.astimezone(UTC).date()


def _sent_day(row: dict[str, Any]) -> date | None:
    """The date of the Date: header as written, time and zone disregarded (RFC 9051
    6.4.4 SENTON); the internal date when there is no usable Date: header."""
    stored = row.get("envelope")
    raw = Envelope.from_stored(stored).date if stored else None
    if raw:
        try:
            return parsedate_to_datetime(raw).date()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return _day(row.get("internal_date"))


def _compare(day: date | None, op: str, target: date) -> bool:
    if day is None:
        return False
    if op.endswith("BEFORE"):
        return day < target
    if op.endswith("ON"):
        return day == target
    return day >= target


class Evaluator:
    def __init__(
        self,
        *,
        largest_seq: int,
        largest_uid: int,
        saved: list[int],
        body_text: Callable[[Candidate], str],
    ) -> None:
        self.largest_seq = largest_seq
        self.largest_uid = largest_uid
        self.saved = set(saved)
        self.body_text = body_text

    def match(self, key: SearchKey, m: Candidate) -> bool:
        op, args = key.op, key.args
        if op in ("ALL", "SAVEDATESUPPORTED"):  # every mailbox keeps save dates
            return True
        if op == "AND":
            return all(self.match(k, m) for k in args if isinstance(k, SearchKey))
        if op == "OR":
            a, b = args
            assert isinstance(a, SearchKey) and isinstance(b, SearchKey)
            return self.match(a, m) or self.match(b, m)
        if op == "NOT":
            sub = args[0]
            assert isinstance(sub, SearchKey)
            return not self.match(sub, m)
        if op == "SEQ":
            seq = args[0]
            assert isinstance(seq, SequenceSet)
            if seq.saved:
                return m.uid in self.saved
            return seq.contains(m.seq, self.largest_seq)
        if op == "UID":
            seq = args[0]
            assert isinstance(seq, SequenceSet)
            if seq.saved:
                return m.uid in self.saved
            return seq.contains(m.uid, self.largest_uid)
        if op == "FLAG":
            name, on = args
            assert isinstance(name, str)
            return _has_flag(m, name) == on
        if op == "NEW":
            return m.recent and not m.flags.seen
        if op == "OLD":
            return not m.recent
        if op == "RECENT":
            return m.recent
        if op in ("LARGER", "SMALLER", "MODSEQ"):
            limit = args[0]
            assert isinstance(limit, int)
            if op == "MODSEQ":
                return m.modseq >= limit
            size = int(m.row["size"])
            return size > limit if op == "LARGER" else size < limit
        if op in ("BEFORE", "ON", "SINCE"):
            target = args[0]
            assert isinstance(target, date)
            return _compare(_day(m.row.get("internal_date")), op, target)
        if op in ("OLDER", "YOUNGER"):
            # RFC 5032 3: OLDER n matches an internal date more than n seconds ago,
            # YOUNGER n one within the last n seconds (time zones do not matter here).
            seconds = args[0]
            assert isinstance(seconds, int)
            arrived = m.row.get("internal_date")
            if not isinstance(arrived, datetime):
                return False
            if arrived.tzinfo is None:
                arrived = arrived.replace(tzinfo=UTC)
            age = (datetime.now(UTC) - arrived).total_seconds()
            return age > seconds if op == "OLDER" else age <= seconds
        if op in ("SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"):
            # RFC 8514 4.3: like BEFORE/ON/SINCE, on the date the message was saved.
            target = args[0]
            assert isinstance(target, date)
            return _compare(_day(m.row.get("saved_date")), op, target)
        if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            target = args[0]
            assert isinstance(target, date)
            return _compare(_sent_day(m.row), op, target)
        if op in ("FROM", "TO", "CC", "BCC"):
            needle = _fold(str(args[0]))
            return any(needle in _fold(v) for v in _address_texts(m.row, op))
        if op == "SUBJECT":
            needle = _fold(str(args[0]))
            return any(needle in _fold(v) for v in _header_values(m.row, op))
        if op == "HEADER":
            name, value = args
            values = _header_values(m.row, str(name))
            needle = _fold(str(value))
            return any(needle in _fold(v) for v in values) if values else False
        if op == "EMAILID":  # RFC 8474 6: exact match on the id
            return email_id(m.row) == args[0]
        if op == "THREADID":
            return thread_id(m.row) == args[0]
        if op == "BODY":
            return _fold(str(args[0])) in self._text(m)
        if op == "TEXT":
            needle = _fold(str(args[0]))
            headers = "\n".join(f"{k}: {v}" for k, v in m.row.get("headers", []))
            return needle in _fold(headers) or needle in self._text(m)
        raise ValueError(f"unknown search key {op}")

    def _text(self, m: Candidate) -> str:
        if m._text is None:
            m._text = _fold(self.body_text(m))
        return m._text


def _has_flag(m: Candidate, name: str) -> bool:
    lname = name.lower()
    f = m.flags
    system = {"\\seen": f.seen, "\\answered": f.answered, "\\flagged": f.flagged,
              "\\deleted": f.deleted, "\\draft": f.draft, "\\recent": m.recent}
    if lname in system:
        return system[lname]
    return any(k.lower() == lname for k in f.keywords)


def text_parts(part: MimePart, depth: int = 0) -> list[MimePart]:
    """Text leaves, including those inside attached messages."""
    if depth > 50:
        return []
    if part.children:
        return [p for c in part.children for p in text_parts(c, depth + 1)]
    if part.message is not None:
        return text_parts(part.message.body, depth + 1)
    return [part] if part.content_type == "text" else []


def decode_text(data: bytes, part: MimePart) -> str:
    try:
        raw = decode_transfer(data, part.encoding)
    except Exception:
        raw = data
    charset = dict(part.params).get("charset", "utf-8") or "utf-8"
    try:
        return raw.decode(codecs.lookup(charset).name, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")
