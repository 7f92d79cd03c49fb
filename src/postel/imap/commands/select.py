"""SELECT, EXAMINE, CLOSE, UNSELECT, CHECK, EXPUNGE, UID EXPUNGE and IDLE
(RFC 9051 6.3.2, 6.4; RFC 3691 UNSELECT; RFC 4315 UID EXPUNGE; RFC 2177 IDLE;
RFC 7162 CONDSTORE/QRESYNC on SELECT)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap.objectid import mailbox_id
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, Expunge, Select
from postel.imap.proto.sequence import SequenceSet
from postel.imap.selected import SelectedMailbox
from postel.imap.state import Continuation, State

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

FLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def deselect(s: ImapSession) -> None:
    s.selected = None
    s.state = State.AUTHENTICATED


async def select(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Select)
    if args.qresync is not None and not s.qresync:
        s.bad(cmd.tag, "ENABLE QRESYNC first")  # RFC 7162 3.2.5
        return
    if s.selected is not None:
        deselect(s)
        s.untagged("OK [CLOSED] Previous mailbox closed")  # RFC 7162 3.2.11, RFC 9051 6.3.2
    found = await s.run(s.store.mail.get_mailbox, s.account_id(), args.mailbox)
    # The view is the mailbox as of the row read with its index: messages below its
    # uidnext (all committed before it was read, so all listed now), changes up to its
    # HIGHESTMODSEQ. A message committed since has a higher MODSEQ and arrives with the
    # next poll. One read of arrays, no object per message (a 100,000-message INBOX).
    index = None if found is None else await s.run(s.store.mail.mailbox_index, found.id)
    if index is None:
        s.no(cmd.tag, "No such mailbox", "NONEXISTENT")
        return
    box = index.mailbox
    if args.condstore:
        s.enabled.add("CONDSTORE")  # RFC 7162 3.1.8: a CONDSTORE-enabling command
    readonly = cmd.name == "EXAMINE"
    if readonly:
        # RFC 3501 6.3.2: EXAMINE shows \Recent without claiming it.
        recent = range(box.first_recent_uid, box.uidnext)
    else:
        # RFC 3501 2.3.2: claim after listing, and only what was listed, so each message
        # is \Recent in exactly one session and never claimed unseen.
        recent = await s.services.feed.claim_recent(box, box.uidnext)
    sel = SelectedMailbox(
        box.id, box.name, readonly=readonly, uidvalidity=box.uidvalidity,
        uidnext=box.uidnext, modseq=box.highestmodseq, index=index, recent=recent,
    )
    sel.show_recent = not s.rev2
    sel.uidonly = s.uidonly
    s.selected = sel
    s.state = State.SELECTED
    s.send(sel.flags_response())
    s.untagged(f"{sel.exists} EXISTS")
    if not s.rev2:
        s.untagged(f"{len(sel.recent)} RECENT")
        unseen = sel.first_unseen()
        if unseen is not None and not s.uidonly:  # a sequence number (RFC 9586 3)
            s.untagged(f"OK [UNSEEN {unseen}] First unseen message")
    permanent = "" if readonly else f"{FLAGS} \\*"
    s.untagged(f"OK [PERMANENTFLAGS ({permanent})] Flags you can change")
    s.untagged(f"OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
    s.untagged(f"OK [UIDNEXT {box.uidnext}] Predicted next UID")
    s.untagged(f"OK [HIGHESTMODSEQ {sel.modseq}] Highest")
    s.untagged(f"OK [MAILBOXID ({mailbox_id(box)})] Ok")  # RFC 8474 4.3
    if s.rev2:
        s.untagged(b'LIST () "/" ' + s.mailbox_name(box.name))
    if args.qresync is not None and args.qresync.uidvalidity == box.uidvalidity:
        await _qresync(s, sel, args)
    s.ok(cmd.tag, f"{cmd.name} completed", "READ-ONLY" if readonly else "READ-WRITE")


async def _qresync(s: ImapSession, sel: SelectedMailbox, args: Select) -> None:
    """RFC 7162 3.2.5.2: what changed since the client's MODSEQ, before the tagged OK."""
    q = args.qresync
    assert q is not None
    changes = await s.run(s.store.mail.changes_since, sel.mailbox_id, q.modseq)
    known: list[int] | None = None
    if q.known_uids is not None:
        bound = max([sel.uids[-1] if sel.uids else 0,
                     *(b for _, b in q.known_uids.bounds(0xFFFFFFFF))])
        known_set = q.known_uids
        known = [u for u in changes.expunged_uids if known_set.contains(u, bound)]
    vanished = known if known is not None else list(changes.expunged_uids)
    if vanished:
        s.untagged(f"VANISHED (EARLIER) {SequenceSet.of(vanished)}")
    for meta in changes.changed:
        if sel.position(meta.uid) is None:
            continue
        head = sel.fetch_head(meta.uid) or b"0 FETCH"
        uid = b"" if sel.uidonly else b"UID %d " % meta.uid  # RFC 9586 3.3
        s.untagged(head + b" (" + uid + b"FLAGS " + r.flags(sel.flag_names(meta.uid))
                   + b" MODSEQ (%d))" % meta.modseq)


async def close(s: ImapSession, cmd: Command) -> None:
    sel = s.selected
    assert sel is not None
    if not sel.readonly:
        # RFC 9051 6.4.1: expunge silently, no EXPUNGE responses.
        await s.run(s.store.mail.expunge, sel.mailbox_id)
    deselect(s)
    s.ok(cmd.tag, "CLOSE completed")


async def unselect(s: ImapSession, cmd: Command) -> None:
    deselect(s)
    s.ok(cmd.tag, "UNSELECT completed")


async def check(s: ImapSession, cmd: Command) -> None:
    await s.poll()
    s.ok(cmd.tag, "CHECK completed")


async def expunge(s: ImapSession, cmd: Command) -> None:
    sel = s.selected
    assert sel is not None
    if isinstance(cmd.args, Expunge) and cmd.args.uids is not None:
        # RFC 4315 2.1: only \Deleted messages that are also in the UID set.
        named = set(sel.resolve(cmd.args.uids, uid=True))
        uids = [u for u in sorted(named) if sel.flags[u].deleted]
        if uids:
            await s.run(s.store.mail.expunge, sel.mailbox_id, uids)
    else:
        await s.run(s.store.mail.expunge, sel.mailbox_id)
    await s.poll()
    code = f"HIGHESTMODSEQ {sel.modseq}" if s.condstore else None
    s.ok(cmd.tag, f"{cmd.name} completed", code)


async def idle(s: ImapSession, cmd: Command) -> None:
    # RFC 2177: report changes as they happen until the client says DONE.
    await s.poll()
    s.send(r.continuation("idling"))

    async def on_line(line: bytes) -> None:
        s.continuation = None
        s.receiver.raw_mode = False
        if line.strip().upper() == b"DONE":
            await s.poll()
            s.ok(cmd.tag, "IDLE terminated")
        else:
            s.bad(cmd.tag, "Expected DONE")

    s.continuation = Continuation(cmd.tag, on_line, idle=True)
    s.receiver.raw_mode = True
