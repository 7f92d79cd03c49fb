"""STORE and UID STORE (RFC 9051 6.4.6, RFC 7162 3.1.3 UNCHANGEDSINCE)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, Store
from postel.imap.proto.sequence import SequenceSet
from postel.store.model import Flags, MessageMeta

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

_SYSTEM = {"\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"}


def flags_from(names: tuple[str, ...] | list[str]) -> Flags | None:
    """Flags to set; None when a name is not a settable flag. \\Recent is ignored
    (RFC 3501 2.3.2: it cannot be changed by a client)."""
    kept: list[str] = []
    for name in names:
        if name.lower() == "\\recent":
            continue
        if name.startswith("\\") and name.lower() not in _SYSTEM:
            return None
        kept.append(name)
    return Flags.from_names(kept)


def _keyword_limit(s: ImapSession, uids: list[int], flags: Flags, mode: str) -> str | None:
    """Why a STORE would pass `max_keywords_per_message` or `max_keywords_per_mailbox`
    (None: it would not). Only adding can pass them; removing always may."""
    if mode == "remove" or not flags.keywords:
        return None
    sel = s.selected
    assert sel is not None
    config = s.config
    wanted = set(flags.keywords)
    if len(sel.keywords | wanted) > config.max_keywords_per_mailbox:
        return f"At most {config.max_keywords_per_mailbox} keywords per mailbox"
    for uid in uids:
        current = sel.flags.get(uid)
        kept = set(current.keywords) if current is not None and mode == "add" else set()
        if len(kept | wanted) > config.max_keywords_per_message:
            return f"At most {config.max_keywords_per_message} keywords per message"
    return None


async def store(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Store)
    sel = s.selected
    assert sel is not None
    by_uid = cmd.name == "UID STORE"
    flags = flags_from(args.flags)
    if flags is None:
        s.bad(cmd.tag, "Unknown system flag")
        return
    if args.unchanged_since is not None:
        s.enable_condstore()  # RFC 7162 3.1.8
    uids = sel.resolve(args.sequence, uid=by_uid)
    problem = _keyword_limit(s, uids, flags, args.mode)
    if problem:
        s.no(cmd.tag, problem, "LIMIT")  # RFC 9051 7.1: a server limit was reached
        return
    changed: list[MessageMeta] = []
    failed: list[int] = []
    if uids:
        changed, failed = await s.run(
            s.store.mail.set_flags, sel.mailbox_id, uids, flags, mode=args.mode,
            unchanged_since=args.unchanged_since,
        )
    for meta in changed:
        sel.flags[meta.uid] = meta.flags
        sel.modseqs[meta.uid] = meta.modseq
        for line in sel.new_keywords(meta.flags):
            s.send(line)
    failed_set = set(failed)
    changed_uids = {m.uid for m in changed}
    for uid in uids:
        if uid in failed_set or (args.silent and not (s.condstore and uid in changed_uids)):
            continue
        head = sel.fetch_head(uid)
        if head is None:
            continue
        items = [] if args.silent else [b"FLAGS " + r.flags(sel.flag_names(uid))]
        if by_uid and not sel.uidonly:  # RFC 9586 3.3: a UIDFETCH carries the UID
            items.append(b"UID %d" % uid)
        if s.condstore:
            items.append(b"MODSEQ (%d)" % sel.modseqs.get(uid, 0))
        s.untagged(head + b" (" + b" ".join(items) + b")")
    await s.poll(allow_expunge=by_uid)
    if failed:
        # RFC 7162 3.1.3: the messages that failed the UNCHANGEDSINCE test.
        numbers = failed if by_uid else [sel.seq_of(u) or 0 for u in failed]
        s.ok(cmd.tag, "Some messages were modified meanwhile",
             f"MODIFIED {SequenceSet.of(numbers)}")
        return
    s.ok(cmd.tag, f"{cmd.name} completed")
