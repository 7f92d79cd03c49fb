"""The selected mailbox as one session sees it: sequence numbers <-> UIDs, and changes
from the store turned into untagged EXISTS / EXPUNGE / VANISHED / FETCH responses.

Sequence numbers are per session (RFC 9051 2.3.1.2): an expunge by someone else stays
invisible until this session may be told, so the UID list keeps the message until then.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Iterator, Sequence

from postel.imap.proto import responses as r
from postel.imap.proto.sequence import STAR, SequenceSet
from postel.imap.search_results import SearchContext
from postel.store.model import Flags, MailboxChanges, MailboxIndex, MessageMeta, flags_of

# Expunges of up to this many messages delete array entries in place (a memmove each);
# more rebuild the arrays in one pass.
_DELETE_IN_PLACE = 64


class FlagsView:
    """``sel.flags[uid]``: the Flags of a listed message, read from the arrays. Flags
    objects are shared (model.flags_of), so this holds none per message."""

    def __init__(self, sel: SelectedMailbox) -> None:
        self._sel = sel

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self._sel.position(uid) is not None

    def __getitem__(self, uid: int) -> Flags:
        found = self.get(uid)
        if found is None:
            raise KeyError(uid)
        return found

    def get(self, uid: int, default: Flags | None = None) -> Flags | None:
        i = self._sel.position(uid)
        if i is None:
            return default
        return flags_of(self._sel.bits[i], self._sel.keywords_of.get(uid, ()))

    def __setitem__(self, uid: int, flags: Flags) -> None:
        i = self._sel.position(uid)
        if i is None:
            raise KeyError(uid)
        self._sel.bits[i] = flags.bits
        self._sel.set_keywords(uid, flags.keywords)

    def __iter__(self) -> Iterator[int]:
        return iter(self._sel.uids)

    def __len__(self) -> int:
        return len(self._sel.uids)


class ModseqView:
    """``sel.modseqs[uid]``: the MODSEQ of a listed message, read from the arrays."""

    def __init__(self, sel: SelectedMailbox) -> None:
        self._sel = sel

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self._sel.position(uid) is not None

    def __getitem__(self, uid: int) -> int:
        i = self._sel.position(uid)
        if i is None:
            raise KeyError(uid)
        return self._sel.modseq_array[i]

    def get(self, uid: int, default: int = 0) -> int:
        i = self._sel.position(uid)
        return default if i is None else self._sel.modseq_array[i]

    def __setitem__(self, uid: int, modseq: int) -> None:
        i = self._sel.position(uid)
        if i is None:
            raise KeyError(uid)
        self._sel.modseq_array[i] = modseq


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
        index: MailboxIndex | None = None,
        messages: Sequence[MessageMeta] = (),
        recent: range | None,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.name = name
        self.readonly = readonly
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.modseq = modseq  # everything up to here has been reported
        # The view as parallel arrays in UID order (sequence number = index + 1): a
        # 100,000-message mailbox is about 1.7 MB here, not 100,000 objects.
        self.uids: array[int] = array("Q")
        self.modseq_array: array[int] = array("Q")
        self.bits: array[int] = array("B")
        self.keywords_of: dict[int, tuple[str, ...]] = {}
        if index is not None:
            self.uids, self.modseq_array = array("Q", index.uids), array("Q", index.modseqs)
            self.bits, self.keywords_of = array("B", index.bits), dict(index.keywords)
        for m in messages:
            self._append(m.uid, m.modseq, m.flags)
        self.flags = FlagsView(self)
        self.modseqs = ModseqView(self)
        # RFC 3501 2.3.2: \\Recent here are the listed UIDs this session claimed.
        self.recent: set[int] = set()
        if recent is not None and len(recent):
            self.recent = {u for u in self.uids[self._from(recent.start):]
                           if u in recent}
        self.expunged: set[int] = set()  # gone from the store, not yet announced
        self.keywords: set[str] = {k for words in self.keywords_of.values() for k in words}
        self.show_recent = True  # no \Recent for IMAP4rev2 clients (RFC 9051 2.3.2)
        self.saved: list[int] = []  # SEARCHRES (RFC 5182): UIDs of the last SEARCH SAVE
        self.uidonly = False  # RFC 9586: UIDFETCH and VANISHED, no sequence numbers
        # RFC 5267 4.3: searches with RETURN (UPDATE), by tag; they end with the selection.
        self.contexts: dict[str, SearchContext] = {}

    # -- the arrays --------------------------------------------------------------------

    def position(self, uid: int) -> int | None:
        """Index of a listed UID in the arrays (its sequence number - 1), else None."""
        i = bisect.bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None

    def _from(self, uid: int) -> int:
        return bisect.bisect_left(self.uids, uid)

    def _append(self, uid: int, modseq: int, flags: Flags) -> None:
        self.uids.append(uid)
        self.modseq_array.append(modseq)
        self.bits.append(flags.bits)
        self.set_keywords(uid, flags.keywords)

    def set_keywords(self, uid: int, keywords: tuple[str, ...]) -> None:
        if keywords:
            self.keywords_of[uid] = keywords
        else:
            self.keywords_of.pop(uid, None)

    def first_unseen(self) -> int | None:
        """Sequence number of the first message without \\Seen (SELECT's [UNSEEN])."""
        # In C: each flag byte becomes 1 when \\Seen is set, and the first 0 is found.
        found = self.bits.tobytes().translate(_SEEN_TABLE).find(b"\0")
        return None if found < 0 else found + 1

    # -- numbering ---------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = self.position(uid)
        return None if i is None else i + 1

    def resolve(self, sequence: SequenceSet, *, uid: bool) -> list[int]:
        """UIDs named by a sequence set (or UID set), ascending, existing only.

        For UID sets "*" is the highest UID in the mailbox, and a range like 5:* still
        names that message when 5 is above it (RFC 9051 6.4.9)."""
        if sequence.saved:
            return [u for u in self.saved if self.position(u) is not None]
        if uid:
            return sequence.select(self.uids)
        if not self.uids:
            return []
        slices = sequence.positions(len(self.uids))
        if len(slices) == 1:
            start, stop = slices[0]
            return list(self.uids[start:stop])
        return sorted({u for start, stop in slices for u in self.uids[start:stop]})

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
        names = (self.flags.get(uid) or Flags()).names()
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
        for uid in changes.expunged_uids:
            if self.position(uid) is not None:
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
            self._append(meta.uid, meta.modseq, meta.flags)
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
        at = sorted((i for i in map(self.position, drop) if i is not None), reverse=True)
        if len(at) <= _DELETE_IN_PLACE:
            for i in at:
                del self.uids[i], self.modseq_array[i], self.bits[i]
        else:
            keep = [i for i, u in enumerate(self.uids) if u not in drop]
            self.uids = array("Q", [self.uids[i] for i in keep])
            self.modseq_array = array("Q", [self.modseq_array[i] for i in keep])
            self.bits = array("B", [self.bits[i] for i in keep])
        for uid in drop:
            self.keywords_of.pop(uid, None)
            self.recent.discard(uid)

    def fetch_flags(self, uid: int, *, condstore: bool, with_uid: bool) -> bytes:
        items = [b"FLAGS " + r.flags(self.flag_names(uid))]
        if with_uid and not self.uidonly:  # a UIDFETCH is numbered by its UID already
            items.append(b"UID %d" % uid)
        if condstore:
            items.append(b"MODSEQ (%d)" % self.modseqs.get(uid, 0))
        head = self.fetch_head(uid) or b"0 FETCH"
        return r.untagged(head + b" (" + b" ".join(items) + b")")


_SEEN_TABLE = bytes(b & 1 for b in range(256))
