"""FETCH data items that come from the stored columns (RFC 9051 6.4.5, 7.5.2): one small
function per item, and the columns each reads.

Body sections (BODY[...], BINARY[...], RFC822, RFC822.HEADER, RFC822.TEXT) are streamed
from the blob by ``commands/fetch.py``; they only declare their columns here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from postel.imap.proto import responses as r
from postel.imap.proto.bodystructure import body_structure
from postel.imap.proto.envelope import Envelope
from postel.imap.proto.fetchatt import FetchAtt
from postel.mail.mime import MimePart


@dataclass(frozen=True)
class FetchedMessage:
    """One message as a FETCH response sees it: the selected mailbox's view (flags,
    MODSEQ) and the stored columns that were read."""

    uid: int
    flag_names: Sequence[str]
    modseq: int
    row: Mapping[str, Any]
    mime: MimePart | None
    utf8: bool

    def part(self) -> MimePart:
        assert self.mime is not None
        return self.mime


def _uid(m: FetchedMessage) -> bytes:
    return b"UID %d" % m.uid


def _flags(m: FetchedMessage) -> bytes:
    return b"FLAGS " + r.flags(m.flag_names)


def _modseq(m: FetchedMessage) -> bytes:
    return b"MODSEQ (%d)" % m.modseq  # RFC 7162 3.1.4.1


def _internaldate(m: FetchedMessage) -> bytes:
    return b"INTERNALDATE " + r.date_time(m.row["internal_date"])


def _savedate(m: FetchedMessage) -> bytes:
    return b"SAVEDATE " + r.date_time(m.row["saved_date"])  # RFC 8514


def _rfc822_size(m: FetchedMessage) -> bytes:
    return b"RFC822.SIZE %d" % m.row["size"]


def _envelope(m: FetchedMessage) -> bytes:
    return b"ENVELOPE " + r.envelope(Envelope.from_stored(m.row["envelope"]), m.utf8)


def _body(m: FetchedMessage) -> bytes:
    return b"BODY " + r.body_structure(body_structure(m.part(), extended=False), m.utf8)


def _bodystructure(m: FetchedMessage) -> bytes:
    return b"BODYSTRUCTURE " + r.body_structure(body_structure(m.part(), extended=True),
                                                m.utf8)


@dataclass(frozen=True)
class MetadataItem:
    columns: frozenset[str]
    write: Callable[[FetchedMessage], bytes]


_NONE: frozenset[str] = frozenset()
_MIME = frozenset({"mime", "size", "blob_sha256"})

# BODY without a section is the non-extended BODYSTRUCTURE (RFC 9051 6.4.5).
METADATA: Mapping[str, MetadataItem] = MappingProxyType({
    "UID": MetadataItem(_NONE, _uid),
    "FLAGS": MetadataItem(_NONE, _flags),
    "MODSEQ": MetadataItem(_NONE, _modseq),
    "INTERNALDATE": MetadataItem(frozenset({"internal_date"}), _internaldate),
    "SAVEDATE": MetadataItem(frozenset({"saved_date"}), _savedate),
    "RFC822.SIZE": MetadataItem(frozenset({"size"}), _rfc822_size),
    "ENVELOPE": MetadataItem(frozenset({"envelope"}), _envelope),
    "BODY": MetadataItem(_MIME, _body),
    "BODYSTRUCTURE": MetadataItem(_MIME, _bodystructure),
})

# Items streamed from the blob, and the columns that locate their bytes.
SECTIONS: Mapping[str, frozenset[str]] = MappingProxyType({
    name: _MIME
    for name in ("BODY", "BINARY", "BINARY.SIZE", "RFC822", "RFC822.HEADER", "RFC822.TEXT")
})


def metadata_item(att: FetchAtt) -> MetadataItem | None:
    """The builder of an item answered from the columns; None for a body section."""
    if att.section is not None:
        return None
    return METADATA.get(att.name)


def columns(atts: Iterable[FetchAtt]) -> list[str]:
    """The stored columns a FETCH of these items reads (UID and MODSEQ always)."""
    cols = {"uid", "modseq"}
    for att in atts:
        item = metadata_item(att)
        cols |= item.columns if item is not None else SECTIONS.get(att.name, _NONE)
    return sorted(cols)
