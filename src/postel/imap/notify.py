"""NOTIFY (RFC 5465) without I/O: which events Postel supports, the rules a NOTIFY SET
must keep, which mailboxes each filter covers, and what changed between two snapshots of
the account's mailboxes.

The session re-reads the store (the mailbox rows, the message counts of the mailboxes
that changed, and the METADATA entries of the targets watched for metadata events)
whenever the change bus hints, and ``diff`` turns the old and the new snapshot into the
untagged LIST, STATUS and METADATA responses to send. Because the snapshot, not
the hint, carries the truth, a lost hint only delays a notification until the next one.
Changes to the selected mailbox are not diffed here: ``imap/selected.py`` reports them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from postel.imap.proto.notify import EventGroup, Filter, Notify
from postel.store.model import Mailbox

# What Postel can report (RFC 5465 5). AnnotationChange needs ANNOTATE, QuotaChange
# quota events: not here yet. The metadata events are REQUIRED with METADATA (RFC 5465
# 5.6, 5.7), which Postel offers.
SUPPORTED_EVENTS = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
                    "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange")
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"})
DELIMITER = "/"

# NOTIFY SET is refused with NO [NOTIFICATIONOVERFLOW] when it would watch more mailboxes
# than `imap.max_notify_mailboxes` for message events (RFC 5465 3.1: "prohibitively
# expensive"): each one costs a count query whenever it changes.
# One wake-up that would send more notifications than this ends NOTIFY instead (RFC 5465
# 5.8): the client is far behind, and a re-sync (LIST, STATUS) is cheaper for both sides.
MAX_NOTIFICATIONS_PER_ROUND = 1000


class NotifyRefused(Exception):
    """A NOTIFY SET the session answers with BAD or NO (and a response code)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


@dataclass(frozen=True)
class NotifySpec:
    """A checked NOTIFY SET: at most one group for the selected mailbox, the others."""

    selected: EventGroup | None
    others: tuple[EventGroup, ...]
    status: bool

    @classmethod
    def from_command(cls, notify: Notify) -> NotifySpec:
        assert notify.groups is not None
        selected = [g for g in notify.groups if g.filter.is_selected]
        for group in notify.groups:
            check_events(group)
        if len(selected) > 1:
            # RFC 5465 6.1: only one of SELECTED and SELECTED-DELAYED in a command.
            raise NotifyRefused("BAD", "Only one SELECTED or SELECTED-DELAYED group")
        others = tuple(g for g in notify.groups if not g.filter.is_selected)
        return cls(selected[0] if selected else None, others, notify.status)

    @property
    def selected_events(self) -> frozenset[str]:
        return frozenset(self.selected.events) if self.selected is not None else frozenset()

    def events_for(self, box: Mailbox, subscribed: Set[str]) -> frozenset[str]:
        """The events asked for a mailbox other than the selected one. When several groups
        cover it, the first one decides (our choice), so a narrow group written first can
        say NONE for a mailbox a broad one would cover."""
        for group in self.others:
            if covers(group, box, subscribed):
                return frozenset(group.events)
        return frozenset()

    @property
    def server_metadata(self) -> bool:
        """RFC 5465 5.7: ServerMetadataChange concerns no mailbox, so any group asks it."""
        return any("ServerMetadataChange" in g.events for g in self.others)

    def metadata_watched(self, boxes: Mapping[int, Mailbox], subscribed: Set[str]) -> list[int]:
        """Mailboxes whose METADATA entries a round must compare (RFC 5465 5.6). The
        selected one too: its group takes message events only (6.1), the others decide."""
        return [box.id for box in boxes.values()
                if "MailboxMetadataChange" in self.events_for(box, subscribed)]

    def watched(
        self, boxes: Mapping[int, Mailbox], subscribed: Set[str], selected_id: int | None
    ) -> list[int]:
        """Mailboxes (not the selected one) whose message counts a round must know."""
        return [
            box.id for box in boxes.values()
            if box.id != selected_id and self.events_for(box, subscribed) & MESSAGE_EVENTS
        ]


def check_events(group: EventGroup) -> None:
    events = set(group.events)
    unsupported = [e for e in group.events if e not in SUPPORTED_EVENTS]
    if unsupported:
        # RFC 5465 3.1: NO (not BAD), with BADEVENT listing every event we support.
        raise NotifyRefused("NO", f"Unsupported event {unsupported[0]}",
                            f"BADEVENT ({' '.join(SUPPORTED_EVENTS)})")
    if group.filter.is_selected and events - MESSAGE_EVENTS:
        # RFC 5465 6.1: SELECTED and SELECTED-DELAYED take message events only.
        raise NotifyRefused("BAD", "SELECTED takes message events only")
    if ("MessageNew" in events) != ("MessageExpunge" in events):
        # RFC 5465 5: MessageNew and MessageExpunge always together, else BAD.
        raise NotifyRefused("BAD", "MessageNew and MessageExpunge go together")
    if events & {"FlagChange", "AnnotationChange"} and "MessageNew" not in events:
        # RFC 5465 5: FlagChange needs MessageNew and MessageExpunge, else BAD.
        raise NotifyRefused("BAD", "FlagChange needs MessageNew and MessageExpunge")


def covers(group: EventGroup, box: Mailbox, subscribed: Set[str]) -> bool:
    """Whether a (non-selected) filter covers a mailbox (RFC 5465 6.2-6.6)."""
    name = box.name
    match group.filter:
        case Filter.PERSONAL:
            return True  # RFC 5465 6.2: every mailbox of the user's own namespace
        case Filter.INBOXES:
            # RFC 5465 6.3: where mail is delivered: INBOX, and Junk for DMARC quarantine.
            return name == "INBOX" or box.special_use == "\\Junk"
        case Filter.SUBSCRIBED:
            return name in subscribed  # RFC 5465 6.4: re-evaluated as subscriptions change
        case Filter.SUBTREE:
            # RFC 5465 6.5: the named mailboxes and all their inferiors.
            return any(name == m or name.startswith(m + DELIMITER) for m in group.mailboxes)
        case Filter.MAILBOXES:
            return name in group.mailboxes  # RFC 5465 6.6: no wildcard expansion
        case _:
            return False


# Metadata entries as a snapshot keeps them: entry name -> digest of the value.
EntryDigests = Mapping[str, bytes]


def digests(entries: Mapping[str, bytes]) -> dict[str, bytes]:
    """A snapshot keeps digests, not values: 32 bytes an entry however large its value."""
    return {name: hashlib.sha256(value).digest() for name, value in entries.items()}


@dataclass(frozen=True)
class Snapshot:
    """The account's mailboxes as last reported, with the message counts of the watched
    ones (the rows alone cannot tell an expunge from a flag change), and the metadata
    entries of the targets watched for metadata events (by mailbox id; None: the server)."""

    boxes: Mapping[int, Mailbox]
    messages: Mapping[int, int] = field(default_factory=dict)
    subscribed: Set[str] = frozenset()  # the subscription list (names)
    metadata: Mapping[int | None, EntryDigests] = field(default_factory=dict)

    @classmethod
    def of(cls, boxes: Iterable[Mailbox], messages: Mapping[int, int],
           subscribed: Iterable[str] = (),
           metadata: Mapping[int | None, EntryDigests] | None = None) -> Snapshot:
        return cls({b.id: b for b in boxes}, dict(messages), frozenset(subscribed),
                   dict(metadata or {}))

    def events_for(self, spec: NotifySpec, box: Mailbox) -> frozenset[str]:
        return spec.events_for(box, self.subscribed)

    def needs_count(self, new: Mailbox) -> bool:
        """Whether a watched mailbox changed since this snapshot (or was not counted)."""
        old = self.boxes.get(new.id)
        return (new.id not in self.messages or old is None
                or (old.uidnext, old.highestmodseq) != (new.uidnext, new.highestmodseq))


@dataclass(frozen=True)
class Listed:
    """An unsolicited LIST (RFC 5465 5.4, 5.5)."""

    name: str
    exists: bool = True
    subscribed: bool = False
    old_name: str | None = None  # RENAME: the OLDNAME extended data item
    has_children: bool = False


@dataclass(frozen=True)
class StatusDue:
    """An unsolicited STATUS for a mailbox that is not selected (RFC 5465 5.1-5.3)."""

    name: str
    items: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MetadataDue:
    """An unsolicited METADATA naming the entries that changed, without their values
    (RFC 5465 5.6, 5.7; RFC 5464 4.4.2). Mailbox "" is the server."""

    mailbox: str
    entries: tuple[str, ...]


Notification = Listed | StatusDue | MetadataDue

# (mailbox name, entry name) pairs a session's own SETMETADATA changed; "" is the server.
OwnEntries = Set[tuple[str, str]]


def diff(
    old: Snapshot, new: Snapshot, spec: NotifySpec, *, selected_id: int | None,
    condstore: bool, own_names: set[str] | frozenset[str] = frozenset(),
    own_entries: OwnEntries = frozenset(),
) -> list[Notification]:
    """What to tell the client about every mailbox but the selected one (and about the
    metadata of every watched one). ``own_names`` are mailboxes this session itself
    created, deleted, renamed or (un)subscribed, ``own_entries`` the metadata entries it
    set: RFC 5465 5 says not to notify a client of its own changes."""
    out: list[Notification] = []
    names = {b.name for b in new.boxes.values()}
    parents = {n.rpartition(DELIMITER)[0] for n in names if DELIMITER in n}

    def listed(box: Mailbox, old_name: str | None = None) -> Listed:
        return Listed(box.name, subscribed=box.name in new.subscribed, old_name=old_name,
                      has_children=box.name in parents)

    for box_id, gone in old.boxes.items():
        if box_id not in new.boxes and gone.name not in own_names and (
            "MailboxName" in old.events_for(spec, gone)
        ):
            # RFC 5465 5.4: a deleted name is listed \NonExistent.
            out.append(Listed(gone.name, exists=False))
    for box_id, box in new.boxes.items():
        before = old.boxes.get(box_id)
        events = new.events_for(spec, box)
        if before is None:
            if "MailboxName" in events and box.name not in own_names:
                out.append(listed(box))  # RFC 5465 5.4: a new mailbox
            continue
        if before.name != box.name:
            if not {before.name, box.name} & own_names and "MailboxName" in (
                events | old.events_for(spec, before)
            ):
                # RFC 5465 5.4: the new name, with OLDNAME (RFC 5258 extended data).
                out.append(listed(box, old_name=before.name))
        elif (box.name in old.subscribed) != (box.name in new.subscribed) and (
            box.name not in own_names
        ) and "SubscriptionChange" in (events | old.events_for(spec, before)):
            out.append(listed(box))  # RFC 5465 5.5: \Subscribed iff subscribed now
        if box_id != selected_id:
            status = _status(before, box, old.messages.get(box_id),
                             new.messages.get(box_id), events, condstore)
            if status is not None:
                out.append(status)
    out += diff_metadata(old, new, own_entries)
    return out


def diff_metadata(old: Snapshot, new: Snapshot,
                  own_entries: OwnEntries = frozenset()) -> list[MetadataDue]:
    """RFC 5465 5.6 and 5.7: one METADATA per target whose entries were set, changed or
    removed since the last round. A target watched for the first time sets its baseline."""
    out: list[MetadataDue] = []
    for target, after in new.metadata.items():
        before = old.metadata.get(target)
        if before is None:
            continue
        name = "" if target is None else new.boxes[target].name
        changed = tuple(sorted(
            entry for entry in before.keys() | after.keys()
            if before.get(entry) != after.get(entry) and (name, entry) not in own_entries
        ))
        if changed:
            out.append(MetadataDue(name, changed))
    return out


def _status(
    before: Mailbox, box: Mailbox, old_count: int | None, count: int | None,
    events: frozenset[str], condstore: bool,
) -> StatusDue | None:
    if old_count is None or count is None:
        return None  # not watched before (or now): this round sets the baseline
    added = box.uidnext - before.uidnext
    expunged = old_count + added > count
    if (added or expunged) and "MessageNew" in events:
        # RFC 5465 5.2 and 5.3: STATUS (UIDNEXT MESSAGES), with HIGHESTMODSEQ once
        # CONDSTORE is enabled.
        items: list[tuple[str, int]] = [("UIDNEXT", box.uidnext), ("MESSAGES", count)]
        if condstore:
            items.append(("HIGHESTMODSEQ", box.highestmodseq))
        return StatusDue(box.name, tuple(items))
    if box.highestmodseq != before.highestmodseq and "FlagChange" in events and condstore:
        # RFC 5465 5.1: a flag change elsewhere shows as UIDVALIDITY and HIGHESTMODSEQ;
        # without CONDSTORE there is nothing a STATUS could say about it.
        return StatusDue(box.name, (("UIDVALIDITY", box.uidvalidity),
                                    ("HIGHESTMODSEQ", box.highestmodseq)))
    return None


def initial_status(box: Mailbox, count: int, *, condstore: bool) -> StatusDue:
    """NOTIFY SET STATUS (RFC 5465 3.1): MESSAGES, UIDNEXT and UIDVALIDITY (and
    HIGHESTMODSEQ with CONDSTORE) for each watched mailbox, before the tagged OK."""
    items = [("MESSAGES", count), ("UIDNEXT", box.uidnext), ("UIDVALIDITY", box.uidvalidity)]
    if condstore:
        items.append(("HIGHESTMODSEQ", box.highestmodseq))
    return StatusDue(box.name, tuple(items))


def names_touched(command_name: str, mailboxes: Iterable[str]) -> set[str]:
    """The mailbox names a command of this session changed (for own_names)."""
    if command_name in ("CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE"):
        return {m.rstrip(DELIMITER) for m in mailboxes}
    return set()


@dataclass
class NotifyState:
    """One session's NOTIFY: the spec, the last snapshot, and whether the change bus has
    hinted since the last round (a command's own poll drains the hints)."""

    spec: NotifySpec
    snapshot: Snapshot
    pending: bool = False
    own_names: set[str] = field(default_factory=set)
    own_entries: set[tuple[str, str]] = field(default_factory=set)

    @property
    def reports_selected(self) -> bool:
        """Changes to the selected mailbox are pushed between commands (RFC 5465 6.1)."""
        return bool(self.spec.selected_events & MESSAGE_EVENTS)

    @property
    def expunge_at_once(self) -> bool:
        """SELECTED sends EXPUNGE as soon as it can; SELECTED-DELAYED only when a command
        that allows it runs, or during IDLE (RFC 5465 6.1.1, 6.1.2)."""
        selected = self.spec.selected
        return selected is not None and selected.filter is Filter.SELECTED
