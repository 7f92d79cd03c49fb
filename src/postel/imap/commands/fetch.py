"""FETCH and UID FETCH (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 CHANGEDSINCE/VANISHED).

Metadata comes from the stored parsed columns; body sections are byte ranges of the blob
file, streamed in chunks so a 25 MB message is never held whole in memory.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from typing import TYPE_CHECKING, Any, BinaryIO

from postel.imap import preview
from postel.imap.bodies import (
    ByteRange,
    SectionError,
    decode_transfer,
    filter_header,
    find_part,
    locate,
)
from postel.imap.fetch_items import FetchedMessage, metadata_item
from postel.imap.fetch_items import columns as fetch_columns
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, Fetch
from postel.imap.proto.fetchatt import FetchAtt, Section
from postel.imap.proto.sequence import SequenceSet
from postel.mail.mime import MimePart
from postel.store.model import Flags

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

log = logging.getLogger("postel.imap")

CHUNK = 256 * 1024
MAX_HEADER = 1 << 20  # octets of a header block read for HEADER.FIELDS
BATCH = 200  # messages whose parsed columns are read at once
INDEX_ITEMS = frozenset({"UID", "FLAGS", "MODSEQ"})  # what the selected mailbox's index holds
FLUSH_EVERY = 256  # index-only FETCH responses written between looks at the buffer

# RFC 9051 4.3.1 / RFC 3501 4.3: a normal literal never carries NUL (only literal8 may).
# Like Dovecot, a NUL in message data sent as a normal literal becomes 0x80, so the
# length stays true; BINARY[] still returns the octets exactly in a literal8.
NUL_STAND_IN = b"\x80"


def without_nul(data: bytes) -> bytes:
    return data.replace(b"\0", NUL_STAND_IN)


async def fetch(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Fetch)
    sel = s.selected
    assert sel is not None
    by_uid = cmd.name == "UID FETCH"
    if args.vanished and (not by_uid or not s.qresync or args.changed_since is None):
        s.bad(cmd.tag, "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE")  # RFC 7162 3.2.6
        return
    atts = list(args.atts)
    if by_uid and not s.uidonly and not any(a.name == "UID" for a in atts):
        # RFC 9051 6.4.9: UID FETCH always returns UID (a UIDFETCH response is numbered
        # by it, RFC 9586 3.3).
        atts.insert(0, FetchAtt("UID"))
    if args.changed_since is not None:
        s.enable_condstore()  # RFC 7162 3.1.8
    if s.condstore and args.changed_since is not None and not any(
        a.name == "MODSEQ" for a in atts
    ):
        atts.append(FetchAtt("MODSEQ"))
    if any(a.name == "MODSEQ" for a in atts):
        s.enable_condstore()
    uids = sel.resolve(args.sequence, uid=by_uid)
    if args.changed_since is not None:
        since = args.changed_since
        uids = [u for u in uids if sel.modseqs.get(u, 0) > since]
        if args.vanished:
            changes = await s.run(s.store.mail.changes_since, sel.mailbox_id, since)
            gone = [u for u in changes.expunged_uids if args.sequence.contains(
                u, sel.uids[-1] if sel.uids else u)]
            if gone:
                s.untagged(f"VANISHED (EARLIER) {SequenceSet.of(gone)}")
    # RFC 9051 6.4.5: BODY[...] (not PEEK), RFC822 and RFC822.TEXT set \Seen.
    seen_now: set[int] = set()
    if not sel.readonly and any(a.sets_seen for a in atts):
        unseen = [u for u in uids if not sel.flags[u].seen]
        if unseen:
            changed, _ = await s.run(
                s.store.mail.set_flags, sel.mailbox_id, unseen, Flags(seen=True), mode="add"
            )
            for meta in changed:
                sel.flags[meta.uid] = meta.flags
                sel.modseqs[meta.uid] = meta.modseq
                seen_now.add(meta.uid)
    if seen_now and not any(a.name == "FLAGS" for a in atts):
        atts.append(FetchAtt("FLAGS"))  # tell the client about the side effect
    unreadable = await fetch_responses(s, uids, atts)
    await s.poll(allow_expunge=by_uid, force=False)
    if unreadable:
        missing = SequenceSet.of(unreadable)
        s.no(cmd.tag, f"Some message bodies could not be read (UIDs {missing})", "UNAVAILABLE")
        return
    s.ok(cmd.tag, f"{cmd.name} completed")


async def fetch_responses(s: ImapSession, uids: list[int], atts: list[FetchAtt]) -> list[int]:
    """Write one FETCH response per UID of the selected mailbox (for FETCH, and for NOTIFY's
    MessageNew); returns the UIDs whose body could not be read."""
    sel = s.selected
    assert sel is not None
    columns = fetch_columns(atts)
    if all(a.name in INDEX_ITEMS and a.section is None for a in atts):
        await _from_index(s, uids, atts)
        return []
    unreadable: list[int] = []
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        rows = await s.run(s.store.mail.message_fields, sel.mailbox_id, batch, columns)
        for uid in batch:
            row = rows.get(uid)
            head = sel.fetch_head(uid)
            if row is None or head is None:
                continue  # expunged meanwhile by another session
            if not await _fetch_one(s, head, uid, row, atts):
                unreadable.append(uid)
    return unreadable


async def _from_index(s: ImapSession, uids: list[int], atts: list[FetchAtt]) -> None:
    """FETCH of UID, FLAGS and MODSEQ only: all of it is in the selected mailbox's index,
    so `UID FETCH 1:* (FLAGS)` of 100,000 messages reads nothing from the store. The
    UIDs are ascending (SelectedMailbox.resolve), so their positions are found in one
    walk; a FLAGS item is serialised once per distinct flag set."""
    sel = s.selected
    assert sel is not None
    names = [att.name for att in atts]
    flag_items: dict[tuple[int, tuple[str, ...], bool], bytes] = {}
    listed = sel.uids
    i = 0
    for n, uid in enumerate(uids, 1):
        i = bisect.bisect_left(listed, uid, i)
        if i >= len(listed) or listed[i] != uid:
            continue
        head = b"%d UIDFETCH" % uid if sel.uidonly else b"%d FETCH" % (i + 1)
        parts = []
        for name in names:
            if name == "UID":
                parts.append(b"UID %d" % uid)
            elif name == "FLAGS":
                words = sel.keywords_of.get(uid, ())
                recent = sel.show_recent and uid in sel.recent
                key = (sel.bits[i], words, recent)
                item = flag_items.get(key)
                if item is None:
                    item = flag_items[key] = b"FLAGS " + r.flags(sel.flag_names(uid))
                parts.append(item)
            else:  # MODSEQ (RFC 7162 3.1.4.1)
                parts.append(b"MODSEQ (%d)" % sel.modseq_array[i])
        s.send(b"* " + head + b" (" + b" ".join(parts) + b")\r\n")
        if n % FLUSH_EVERY == 0:
            await s.io.maybe_flush()
    await s.io.maybe_flush()


async def _fetch_one(
    s: ImapSession, head: bytes, uid: int, row: dict[str, Any], atts: list[FetchAtt]
) -> bool:
    """Write one FETCH response; False when the message body cannot be read."""
    sel = s.selected
    assert sel is not None
    mime: MimePart | None = None
    if "mime" in row:
        mime = MimePart.from_json(row["mime"])
    blob: BinaryIO | None = None
    if any(a.section is not None or a.name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT")
           for a in atts):
        # Open the body before writing anything, so a missing file cannot leave half a
        # response on the wire.
        try:
            blob = await s.run(s.store.blobs.open, row["blob_sha256"])
        except OSError:
            log.error("message body missing", extra={"fields": {"uid": uid}})
            return False
    if any(a.name == "PREVIEW" for a in atts):
        text = await _preview(s, row, mime)
        if text is None:
            log.error("message body missing", extra={"fields": {"uid": uid}})
            return False
        row = {**row, "preview": text}
    message = FetchedMessage(uid, sel.flag_names(uid), sel.modseqs.get(uid, row["modseq"]),
                             row, mime, s.utf8)
    s.send(b"* " + head + b" (")
    try:
        for i, att in enumerate(atts):
            if i:
                s.send(b" ")
            item = metadata_item(att)
            if item is not None:
                s.send(item.write(message))
            else:
                assert mime is not None and blob is not None
                await _section(s, att, mime, row["size"], blob)
        s.send(b")\r\n")
        await s.io.maybe_flush()
        return True
    finally:
        if blob is not None:
            blob.close()


async def _preview(s: ImapSession, row: dict[str, Any], mime: MimePart | None) -> str | None:
    """RFC 8970 PREVIEW from the cache, else from the body; None when it cannot be read.
    PREVIEW (LAZY) is answered the same way: computing one is a read of a few KiB, so
    NIL ("not available yet", RFC 8970 3.2) is never needed."""
    assert mime is not None
    sha256 = str(row["blob_sha256"])
    cached = preview.CACHE.get(sha256)
    if cached is not None:
        return cached
    blobs = s.store.blobs

    def compute() -> str:
        with blobs.open(sha256) as f:

            def read(start: int, end: int) -> bytes:
                f.seek(start)
                return f.read(end - start)

            return preview.compute_preview(mime, read)

    try:
        text = await s.run(compute)
    except OSError:
        return None
    preview.CACHE.put(sha256, text)
    return text


async def _section(
    s: ImapSession, att: FetchAtt, mime: MimePart, size: int, blob: BinaryIO
) -> None:
    name = att.name
    if name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
        section = Section((), {"RFC822": "", "RFC822.HEADER": "HEADER",
                               "RFC822.TEXT": "TEXT"}[name])
        label = name.encode()
    else:
        assert att.section is not None
        section = att.section
        label = f"{name}[{section}]".encode()
        if att.partial is not None:
            label += b"<%d>" % att.partial[0]
    if name in ("BINARY", "BINARY.SIZE") and not section.part:
        # The whole message has no transfer encoding to undo: stream it like BODY[].
        whole = ByteRange(0, size)
        if att.partial is not None:
            start = min(att.partial[0], size)
            whole = ByteRange(start, min(start + att.partial[1], size))
        if name == "BINARY.SIZE":
            s.send(label + b" %d" % size)
            return
        marker = b"~" if await _contains_nul(blob, whole) else b""
        s.send(label + b" " + marker + b"{%d}\r\n" % whole.size)
        await _stream(s, blob, whole, binary=bool(marker))
        return
    if name in ("BINARY", "BINARY.SIZE"):
        data = await _binary(s, mime, section, size, blob)
        if data is None:
            s.send(label + b" NIL")
        elif name == "BINARY.SIZE":
            s.send(label + b" %d" % len(data))
        else:
            if att.partial is not None:
                data = data[att.partial[0] : att.partial[0] + att.partial[1]]
            s.send(label + b" " + r.literal(data, binary=b"\0" in data))
        return
    where = locate(mime, section, size)
    if where is None:
        s.send(label + b' ""')
        return
    if section.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        # A header bomb cannot make us hold more than MAX_HEADER octets.
        header = await _read(blob, ByteRange(where.start, min(where.end,
                                                               where.start + MAX_HEADER)))
        data = filter_header(header, section.fields, exclude=section.text.endswith(".NOT"))
        if att.partial is not None:
            data = data[att.partial[0] : att.partial[0] + att.partial[1]]
        s.send(label + b" " + r.literal(without_nul(data)))
        return
    if att.partial is not None:
        origin, count = att.partial
        start = min(where.start + origin, where.end)
        where = ByteRange(start, min(start + count, where.end))
    s.send(label + b" {%d}\r\n" % where.size)
    await _stream(s, blob, where, binary=False)


async def _binary(
    s: ImapSession, mime: MimePart, section: Section, size: int, blob: BinaryIO
) -> bytes | None:
    part = find_part(mime, section.part)
    if part is None:
        return None
    data = await _read(blob, ByteRange(part.body_start, part.end))
    try:
        return decode_transfer(data, part.encoding)
    except SectionError:
        return data  # an unknown encoding (RFC 3516 allows NO [UNKNOWN-CTE]): raw bytes


async def _contains_nul(blob: BinaryIO, where: ByteRange) -> bool:
    """Whether a range holds a NUL, which only a literal8 may carry (RFC 3516 4.2)."""
    position = where.start
    while position < where.end:
        n = min(CHUNK, where.end - position)
        if b"\0" in await _read(blob, ByteRange(position, position + n)):
            return True
        position += n
    return False


async def _read(blob: BinaryIO, where: ByteRange) -> bytes:
    def read() -> bytes:
        blob.seek(where.start)
        return blob.read(where.size)

    if where.size <= CHUNK:
        return read()
    return await asyncio.to_thread(read)


async def _stream(s: ImapSession, blob: BinaryIO, where: ByteRange, *, binary: bool) -> None:
    """Send a byte range as the body of a literal already announced; a normal literal
    gets its NULs replaced (see without_nul)."""
    position = where.start
    while position < where.end:
        n = min(CHUNK, where.end - position)
        chunk = await _read(blob, ByteRange(position, position + n))
        if not chunk:
            # The file is shorter than recorded (damaged storage): pad so the literal
            # length stays true and the connection stays usable.
            chunk = b" " * n
        s.send(chunk if binary else without_nul(chunk))
        position += len(chunk)
        await s.io.maybe_flush()
