"""COPY, MOVE and their UID forms (RFC 9051 6.4.7-6.4.8, RFC 6851 MOVE, RFC 4315 COPYUID,
RFC 9208 OVERQUOTA)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap.proto.commands import Command, CopyMove
from postel.imap.proto.sequence import SequenceSet

if TYPE_CHECKING:
    from postel.imap.session import ImapSession


async def over_quota(s: ImapSession, extra: int) -> bool:
    account = await s.run(s.store.directory.get_account_by_id, s.account_id())
    if account is None or not account.quota_bytes:
        return False
    used = await s.run(s.store.directory.account_usage, account.id)
    return used + extra > account.quota_bytes


async def copy(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, CopyMove)
    sel = s.selected
    assert sel is not None
    by_uid = cmd.name.startswith("UID ")
    move = cmd.name.endswith("MOVE")
    target = await s.run(s.store.mail.get_mailbox, s.account_id(), args.mailbox)
    if target is None:
        s.no(cmd.tag, "No such mailbox", "TRYCREATE")  # RFC 9051 6.4.7
        return
    uids = [u for u in sel.resolve(args.sequence, uid=by_uid) if u not in sel.expunged]
    if not uids:
        s.ok(cmd.tag, f"{cmd.name} completed (nothing to do)")
        return
    if not move:  # a MOVE stays within the account: usage does not grow
        rows = await s.run(s.store.mail.message_fields, sel.mailbox_id, uids, ["size"])
        if await over_quota(s, sum(int(r["size"]) for r in rows.values())):
            s.no(cmd.tag, "Quota exceeded", "OVERQUOTA")  # RFC 9208 4.3
            return
    pairs = await s.run(s.store.mail.copy, sel.mailbox_id, uids, target.id, move=move)
    code = None
    if pairs:
        code = (f"COPYUID {target.uidvalidity} {SequenceSet.of(p[0] for p in pairs)} "
                f"{SequenceSet.of(p[1] for p in pairs)}")
    if move:
        # RFC 6851 4.3: COPYUID goes in an untagged OK before the expunges.
        if code:
            s.untagged(f"OK [{code}] Moved")
        await s.poll()
        s.ok(cmd.tag, f"{cmd.name} completed")
        return
    await s.poll(allow_expunge=by_uid)
    s.ok(cmd.tag, f"{cmd.name} completed", code)
