"""APPEND with MULTIAPPEND (RFC 3502), LITERAL+, literal8 (RFC 3516), APPENDUID (RFC 4315),
APPENDLIMIT (RFC 7889) and quotas (RFC 9208).

Each literal was spooled to disk by the receiver when large; it is copied into a durable
blob in chunks, parsed from the file, and every message of the command is committed in
one transaction before the tagged OK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap.catenate import BadUrl, TooBig, join_parts
from postel.imap.commands.copy import over_quota
from postel.imap.commands.store import flags_from
from postel.imap.proto.commands import Append, Command
from postel.imap.proto.receiver import Literal
from postel.imap.proto.sequence import SequenceSet
from postel.mail.mime import ParsedMessage, parse_message_file
from postel.store.blobs import BlobStore
from postel.store.model import BlobRef

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

CHUNK = 256 * 1024


def store_literal(blobs: BlobStore, literal: Literal) -> tuple[BlobRef, ParsedMessage]:
    """Blocking: write the literal as a durable blob and parse it from the file."""
    with blobs.writer() as writer:
        if literal.file is None:
            writer.write(literal.data)
        else:
            literal.file.seek(0)
            while chunk := literal.file.read(CHUNK):
                writer.write(chunk)
        ref = writer.commit()
    return ref, parse_message_file(blobs.path(ref.sha256))


async def append(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Append)
    box = await s.run(s.store.mail.get_mailbox, s.account_id(), args.mailbox)
    if box is None:
        s.no(cmd.tag, "No such mailbox", "TRYCREATE")  # RFC 9051 6.3.12
        return
    if not await _catenate(s, cmd, args):
        return
    total = 0
    for msg in args.messages:
        if msg.literal.size == 0:
            s.no(cmd.tag, "Empty message", "CANNOT")
            return
        flags = flags_from(msg.flags)
        if flags is None:
            s.bad(cmd.tag, "Unknown system flag")
            return
        if len(flags.keywords) > s.config.max_keywords_per_message:
            # RFC 9051 7.1: LIMIT, as STORE answers for the same keywords.
            s.no(cmd.tag, f"At most {s.config.max_keywords_per_message} keywords per "
                 "message", "LIMIT")
            return
        total += msg.literal.size
    if await over_quota(s, total):
        s.no(cmd.tag, "Quota exceeded", "OVERQUOTA")
        return
    items = []
    for msg in args.messages:
        ref, parsed = await s.run(store_literal, s.store.blobs, msg.literal)
        flags = flags_from(msg.flags)
        assert flags is not None
        items.append((ref, parsed, flags, msg.date))
        if msg.catenate:
            msg.literal.close()  # our own spool of the joined parts; the receiver's are its
    delivered = await s.run(s.store.mail.append_many, s.account_id(), box.id, items)
    uids = SequenceSet.of(d.uid for d in delivered)
    if s.selected is not None and s.selected.mailbox_id == box.id:
        await s.poll()
    s.ok(cmd.tag, "APPEND completed", f"APPENDUID {box.uidvalidity} {uids}")


async def _catenate(s: ImapSession, cmd: Command, args: Append) -> bool:
    """Join each CATENATE message's parts (RFC 4469); False when refused (answered)."""
    assert s.account is not None
    for msg in args.messages:
        if not msg.catenate:
            continue
        try:
            msg.literal = await s.run(
                join_parts, s.store, s.account_id(), s.account.email, msg.catenate,
                s.config.max_literal_size,
            )
        except BadUrl as exc:
            s.no(cmd.tag, "Bad URL in CATENATE", f"BADURL {exc.url}")  # RFC 4469 5
            return False
        except TooBig:
            s.no(cmd.tag, "The joined message is too big", "TOOBIG")  # RFC 4469 5
            return False
    return True
