"""The selected mailbox as one session sees it: sequence numbers <-> UIDs, and changes
from the store turned into untagged EXISTS / EXPUNGE / VANISHED / FETCH responses.

Sequence numbers are per session (RFC 9051 2.3.1.2): an expunge by someone else stays
invisible until this session may be told, so the UID list keeps the message until then.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from postel.imap.proto import responses as r
from postel.imap.proto.sequence import STAR, SequenceSet
from postel.imap.search_results import SearchContext
from postel.store.model import Flags, MailboxChanges, MessageMeta


class SelectedMailbox:
    def __init__(
        self,
        mailbox_id: int,
        name: str,
        *,
        readonly: bool,
        uidvalidity: int,
        uidnext: int,
        modseq: int,
        messages: list[MessageMeta],
        recent: range | None,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.name = name
        self.readonly = readonly
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.modseq = modseq  # everything up to here has been reported
        self.uids: list[int] = [m.uid for m in messages]
        self.flags: dict[int, Flags] = {m.uid: m.flags for m in messages}
        self.modseqs: dict[int, int] = {m.uid: m.modseq for m in messages}
        # RFC 3501 2.3.2: \\Recent here are the listed UIDs this session claimed.
        self.recent: set[int] = set()
        if recent is not None:
            self.recent = {u for u in self.uids if u in recent}
        self.expunged: set[int] = set()  # gone from the store, not yet announced
        self.keywords: set[str] = {k for m in messages for k in m.flags.keywords}
        self.show_recent = True  # no \Recent for IMAP4rev2 clients (RFC 9051 2.3.2)
        self.saved: list[int] = []  # SEARCHRES (RFC 5182): UIDs of the last SEARCH SAVE
        self.uidonly = False  # RFC 9586: UIDFETCH and VANISHED, no sequence numbers
        # RFC 5267 4.3: searches with RETURN (UPDATE), by tag; they end with the selection.
        self.contexts: dict[str, SearchContext] = {}

    # -- numbering ---------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def resolve(self, sequence: SequenceSet, *, uid: bool) -> list[int]:
        """UIDs named by a sequence set (or UID set), ascending, existing only.

        For UID sets "*" is the highest UID in the mailbox, and a range like 5:* still
        names that message when 5 is above it (RFC 9051 6.4.9)."""
        if sequence.saved:
            live = set(self.uids)
            return [u for u in self.saved if u in live]
        if uid:
            return sequence.select(self.uids)
        if not self.uids:
            return []
        seqs = [s for s in sequence.expand(len(self.uids)) if 1 <= s <= len(self.uids)]
        return [self.uids[s - 1] for s in seqs]

    def valid_sequence(self, sequence: SequenceSet) -> bool:
        """RFC 9051 6.4.5: a message sequence number above EXISTS is an error (BAD). A
        range that reaches "*" is accepted even in an empty mailbox (clients send 1:*
        right after SELECT), and then names nothing."""
        if sequence.saved:
            return True
        return all(
            STAR in pair or max(pair) <= len(self.uids) for pair in sequence.ranges
        )

    def fetch_head(self, uid: int) -> bytes | None:
        """The start of a FETCH response, "<seq> FETCH", or with UIDONLY "<uid> UIDFETCH"
        (RFC 9586 3.3); None when the message is not in this view."""
        if self.uidonly:
            return b"%d UIDFETCH" % uid if uid in self.flags else None
        seq = self.seq_of(uid)
        return None if seq is None else b"%d FETCH" % seq

    def flag_names(self, uid: int) -> list[str]:
        names = self.flags.get(uid, Flags()).names()
        if uid in self.recent and self.show_recent:
            names.append("\\Recent")
        return names

    # -- changes -----------------------------------------------------------------------

    def apply(
        self,
        changes: MailboxChanges,
        *,
        allow_expunge: bool,
        recent: range | None,
        condstore: bool,
        qresync: bool,
        with_uid: bool = False,
    ) -> list[bytes]:
        """Fold store changes into this view; return the untagged responses to send.

        ``with_uid`` puts UID into flag FETCHes even without QRESYNC (RFC 5465 5.1)."""
        out: list[bytes] = []
        known = set(self.uids)
        for uid in changes.expunged_uids:
            if uid in known:
                self.expunged.add(uid)
        if allow_expunge and self.expunged:
            out += self.announce_expunged(qresync)
        before = len(self.uids)
        new: list[MessageMeta] = []
        changed: list[MessageMeta] = []
        last = self.uids[-1] if self.uids else 0
        for meta in changes.changed:
            if meta.uid in self.flags:
                changed.append(meta)
            elif last < meta.uid < changes.mailbox.uidnext:
                # A message at or past the uidnext read with these changes was committed
                # after that read; the next poll reports it (its MODSEQ is higher), with
                # the \\Recent claim that covers it.
                new.append(meta)
        for meta in sorted(new, key=lambda m: m.uid):
            out += self.new_keywords(meta.flags)
            self.uids.append(meta.uid)
            self.flags[meta.uid] = meta.flags
            self.modseqs[meta.uid] = meta.modseq
            if recent is not None and meta.uid in recent:
                self.recent.add(meta.uid)
        if len(self.uids) != before:
            out.append(r.untagged(f"{len(self.uids)} EXISTS"))
            if self.show_recent:
                out.append(r.untagged(f"{len(self.recent)} RECENT"))
        for meta in changed:
            if meta.uid in self.expunged:
                continue
            old = self.flags.get(meta.uid)
            if old == meta.flags and self.modseqs.get(meta.uid) == meta.modseq:
                continue  # this session's own change, already reported
            self.flags[meta.uid] = meta.flags
            self.modseqs[meta.uid] = meta.modseq
            out += self.new_keywords(meta.flags)
            if old != meta.flags or condstore:
                out.append(self.fetch_flags(meta.uid, condstore=condstore,
                                            with_uid=qresync or with_uid))
        self.modseq = max(self.modseq, changes.mailbox.highestmodseq)
        self.uidnext = max(self.uidnext, changes.mailbox.uidnext)
        return out

    def flags_response(self) -> bytes:
        names = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft",
                 *sorted(self.keywords)]
        return r.untagged(b"FLAGS " + r.flags(names))

    def new_keywords(self, flags: Flags) -> list[bytes]:
        """RFC 9051 7.3.5: a FLAGS response when a keyword comes into use."""
        if set(flags.keywords) <= self.keywords:
            return []
        self.keywords |= set(flags.keywords)
        return [self.flags_response()]

    def announce_expunged(self, qresync: bool) -> list[bytes]:
        gone = sorted(self.expunged)
        self.expunged.clear()
        out: list[bytes] = []
        if qresync or self.uidonly:
            # RFC 7162 3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled; so it
            # does with UIDONLY (RFC 9586 3.4).
            out.append(r.untagged(f"VANISHED {SequenceSet.of(gone)}"))
        else:
            # Highest first, so each number is still valid when the client reads it.
            for uid in reversed(gone):
                seq = self.seq_of(uid)
                if seq is not None:
                    out.append(r.untagged(f"{seq} EXPUNGE"))
        self.remove(gone)
        return out

    def remove(self, uids: Iterable[int]) -> None:
        drop = set(uids)
        self.uids = [u for u in self.uids if u not in drop]
        for uid in drop:
            self.flags.pop(uid, None)
            self.modseqs.pop(uid, None)
            self.recent.discard(uid)

    def fetch_flags(self, uid: int, *, condstore: bool, with_uid: bool) -> bytes:
        items = [b"FLAGS " + r.flags(self.flag_names(uid))]
        if with_uid and not self.uidonly:  # a UIDFETCH is numbered by its UID already
            items.append(b"UID %d" % uid)
        if condstore:
            items.append(b"MODSEQ (%d)" % self.modseqs.get(uid, 0))
        head = self.fetch_head(uid) or b"0 FETCH"
        return r.untagged(head + b" (" + b" ".join(items) + b")")
