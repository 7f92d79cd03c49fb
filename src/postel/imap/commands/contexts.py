"""RFC 5267 4.3 contexts: SEARCH and SORT results kept up to date with ADDTO and
REMOVEFROM, and CANCELUPDATE.

The session's change processing (`ImapSession.poll`, the same store re-read that yields
EXISTS and EXPUNGE) calls `refresh` with the store's changes. Only the messages that
changed are searched again, unless the program names messages by position (sequence
numbers, "*" in a UID set, "$"), whose meaning any change can shift; then the whole
mailbox is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from postel.imap.commands.search import run_search, sort_columns, sort_key
from postel.imap.proto.commands import CancelUpdate, Command
from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.sequence import STAR, SequenceSet
from postel.imap.search_results import SearchContext, additions, removals, update_line
from postel.store.model import MailboxChanges

if TYPE_CHECKING:
    from postel.imap.session import ImapSession


def _positional(key: SearchKey) -> bool:
    """Whether a change to other messages can change which messages `key` matches."""
    if key.op == "SEQ":
        return True
    if key.op == "UID":
        seq = key.args[0]
        return isinstance(seq, SequenceSet) and (
            seq.saved or any(STAR in pair for pair in seq.ranges))
    return any(isinstance(a, SearchKey) and _positional(a) for a in key.args)


class Snapshot:
    """The selected mailbox's numbering before the changes are applied, so REMOVEFROM
    can name expunged messages by the sequence numbers they still have."""

    def __init__(self, s: ImapSession, changes: MailboxChanges) -> None:
        sel = s.selected
        assert sel is not None
        self.seqs = {uid: i for i, uid in enumerate(sel.uids, start=1)}
        self.dropped = set(changes.expunged_uids) | sel.expunged
        self.touched = {m.uid for m in changes.changed} - self.dropped


async def refresh(s: ImapSession, before: Snapshot) -> tuple[list[str], list[str]]:
    """Bring every context up to date after `SelectedMailbox.apply`: the REMOVEFROM
    responses to send before that call's responses, and the ADDTO ones to send after.

    RFC 5267 4.3.4: a REMOVEFROM for expunged messages goes before the EXPUNGE; 4.3.3: an
    ADDTO for new messages goes after the EXISTS, so the numbers are valid when read."""
    sel = s.selected
    assert sel is not None
    first: list[str] = []
    last: list[str] = []
    if not (before.dropped or before.touched):
        return first, last
    gone_now = before.dropped | sel.expunged
    for ctx in list(sel.contexts.values()):
        result = await _result(s, ctx, before, gone_now)
        gone = set(ctx.uids) - set(result)

        def old_number(uid: int, by_uid: bool = ctx.by_uid) -> int:
            return uid if by_uid else before.seqs.get(uid, 0)

        def new_number(uid: int, by_uid: bool = ctx.by_uid) -> int:
            return uid if by_uid else sel.seq_of(uid) or 0

        pairs = removals(ctx, gone, old_number)
        if pairs:
            first.append(update_line(ctx, "REMOVEFROM", pairs))
        pairs = additions(ctx, result, new_number)
        if pairs:
            last.append(update_line(ctx, "ADDTO", pairs))
    return first, last


async def _result(
    s: ImapSession, ctx: SearchContext, before: Snapshot, gone: set[int],
) -> list[int]:
    """The context's result now, in its order (UIDs)."""
    sel = s.selected
    assert sel is not None
    extra = sort_columns(ctx.criteria) if ctx.criteria is not None else set()
    live = set(sel.uids) - gone
    if _positional(ctx.key):
        found = await run_search(s, ctx.key, extra)
        keys: dict[int, Any] = {}
        if ctx.criteria is not None:
            keys = {m.uid: sort_key(ctx.criteria, m) for m in found}
        members = {m.uid for m in found} & live
    else:
        checked = before.touched & live
        found = await run_search(s, ctx.key, extra, only=checked)
        keys = dict(ctx.sort_keys)
        if ctx.criteria is not None:
            keys.update({m.uid: sort_key(ctx.criteria, m) for m in found})
        members = (set(ctx.uids) & live) - checked | {m.uid for m in found}
    if ctx.criteria is None:
        return sorted(members)  # RFC 5267 4.1: SEARCH contexts are in mailbox order
    ctx.sort_keys = {u: keys[u] for u in members}
    return sorted(members, key=ctx.sort_keys.__getitem__)


async def cancelupdate(s: ImapSession, cmd: Command) -> None:
    """RFC 5267 4.3.5: stop the updates of the named contexts."""
    args = cmd.args
    assert isinstance(args, CancelUpdate)
    sel = s.selected
    assert sel is not None
    unknown = [t for t in args.tags if t not in sel.contexts]
    if unknown:
        s.bad(cmd.tag, f"No search is being updated for tag {unknown[0]}")
        return
    for tag in args.tags:
        del sel.contexts[tag]
    s.ok(cmd.tag, "CANCELUPDATE completed")
