"""REPLACE and UID REPLACE (RFC 8508): one message of the selected mailbox is replaced by
a new one, appended to a mailbox that may be another, in one transaction
(``store.mail.replace_message``), so a crash never leaves both or neither."""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap.commands.append import store_literal
from postel.imap.commands.copy import over_quota
from postel.imap.commands.store import flags_from
from postel.imap.proto.commands import Command, Replace
from postel.store.errors import NotFound

if TYPE_CHECKING:
    from postel.imap.session import ImapSession


async def replace(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Replace)
    sel = s.selected
    assert sel is not None
    by_uid = cmd.name == "UID REPLACE"
    if not by_uid and not sel.valid_sequence(args.number):
        # RFC 9051 7.5 via RFC 8508 3: a number past the last message is an error. The
        # table's by_sequence_number check knows only FETCH/STORE/COPY arguments.
        s.bad(cmd.tag, "Invalid message sequence number")
        return
    found = [u for u in sel.resolve(args.number, uid=by_uid) if u not in sel.expunged]
    if not found:
        s.no(cmd.tag, "No such message", "NONEXISTENT")
        return
    uid = found[0]
    message = args.message
    flags = flags_from(message.flags)
    if flags is None:
        s.bad(cmd.tag, "Unknown system flag")
        return
    if message.literal.size == 0:
        s.no(cmd.tag, "Empty message", "CANNOT")
        return
    target = await s.run(s.store.mail.get_mailbox, s.account_id(), args.mailbox)
    if target is None:
        # RFC 8508 3.1: as APPEND, and the old message stays.
        s.no(cmd.tag, "No such mailbox", "TRYCREATE")
        return
    old = await s.run(s.store.mail.message_fields, sel.mailbox_id, [uid], ["size"])
    freed = int(old[uid]["size"]) if uid in old else 0
    if await over_quota(s, message.literal.size - freed):
        s.no(cmd.tag, "Quota exceeded", "OVERQUOTA")  # RFC 9208 4.3
        return
    ref, parsed = await s.run(store_literal, s.store.blobs, message.literal)
    try:
        done = await s.run(s.store.mail.replace_message, s.account_id(), sel.mailbox_id,
                           uid, target.id, (ref, parsed, flags, message.date))
    except NotFound:
        s.no(cmd.tag, "The message or the mailbox is gone", "NONEXISTENT")
        return
    # RFC 8508 3.1: APPENDUID in an untagged OK, before the EXPUNGE (as MOVE does).
    s.untagged(f"OK [APPENDUID {target.uidvalidity} {done.uid}] Replacement Message ready")
    await s.poll()
    s.ok(cmd.tag, f"{cmd.name} completed")
