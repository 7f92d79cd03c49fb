"""NOTIFY SET / NOTIFY NONE (RFC 5465), and the rounds that deliver its notifications.

A round runs when the change bus hints (or FULL_POLL_EVERY passes) while the client is
idle between commands or in IDLE: the selected mailbox is polled as usual (EXISTS, EXPUNGE,
FETCH, plus the FETCH items MessageNew asked for), then the mailbox rows (and the METADATA
entries the metadata events watch) are re-read and ``imap/notify.py`` turns the difference
from the last snapshot into LIST, STATUS and METADATA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel.imap.commands.fetch import fetch_responses
from postel.imap.commands.metadata import visible
from postel.imap.notify import (
    MAX_NOTIFICATIONS_PER_ROUND,
    EntryDigests,
    Listed,
    MetadataDue,
    Notification,
    NotifyRefused,
    NotifySpec,
    NotifyState,
    Snapshot,
    StatusDue,
    diff,
    digests,
    initial_status,
    names_touched,
)
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, Create, MailboxArg, Rename
from postel.imap.proto.fetchatt import FetchAtt
from postel.imap.proto.metadata import PREFIXES, SetMetadata
from postel.imap.proto.notify import Notify
from postel.store.model import Mailbox

if TYPE_CHECKING:
    from postel.imap.session import ImapSession


async def notify(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Notify)
    if args.groups is None:
        s.notify = None  # RFC 5465 3.1: NOTIFY NONE
        s.ok(cmd.tag, "NOTIFY completed")
        return
    try:
        spec = NotifySpec.from_command(args)
    except NotifyRefused as refused:
        if refused.status == "BAD":
            s.bad(cmd.tag, refused.text, refused.code)
        else:
            s.no(cmd.tag, refused.text, refused.code)
        return
    boxes, subscribed = await _mailboxes(s)
    selected_id = s.selected.mailbox_id if s.selected is not None else None
    watched = spec.watched(boxes, subscribed, selected_id)
    limit = s.services.config.max_notify_mailboxes
    if len(watched) > limit:
        # RFC 5465 3.1: refuse what would be prohibitively expensive; the old NOTIFY stays.
        s.no(cmd.tag, f"Watch at most {limit} mailboxes",
             "NOTIFICATIONOVERFLOW")
        return
    counts = await _counts(s, watched)
    metadata = await _metadata(s, spec, boxes, subscribed)
    s.notify = NotifyState(spec, Snapshot(boxes, counts, subscribed, metadata))
    if spec.status:
        for box_id in watched:
            _send(s, initial_status(boxes[box_id], counts[box_id], condstore=s.condstore))
    await s.poll()  # RFC 5465 3.1: a successful NOTIFY SET implies a NOOP
    s.ok(cmd.tag, "NOTIFY completed")


def note_command(s: ImapSession, cmd: Command) -> None:
    """Remember the mailbox names this session's own command changed (RFC 5465 5: the
    server should not notify a client of its own changes)."""
    assert s.notify is not None
    args = cmd.args
    names: list[str] = []
    if isinstance(args, MailboxArg | Create):
        names = [args.mailbox]
    elif isinstance(args, Rename):
        names = [args.old, args.new]
    elif isinstance(args, SetMetadata):
        mailbox = "INBOX" if args.mailbox.upper() == "INBOX" else args.mailbox
        s.notify.own_entries |= {(mailbox, entry) for entry, _ in args.values}
    s.notify.own_names |= names_touched(cmd.name, names)


async def deliver_notifications(s: ImapSession) -> None:
    """One round: what changed since the last one, as RFC 5465 5 says to tell it."""
    state = s.notify
    assert state is not None
    subscription = s.subscription
    if subscription is not None:
        if subscription.queue.full():
            # Hints were dropped: this client cannot keep up with its notifications.
            _overflow(s)
            return
        while not subscription.queue.empty():
            subscription.queue.get_nowait()  # this round re-reads all they could say
    if s.selected is not None and state.reports_selected:
        await _selected_round(s, state)
    state.pending = False  # hints from here on wake another round
    boxes, subscribed = await _mailboxes(s)
    selected_id = s.selected.mailbox_id if s.selected is not None else None
    old = state.snapshot
    watched = state.spec.watched(boxes, subscribed, selected_id)
    changed = [i for i in watched if old.needs_count(boxes[i])]
    counts = {i: n for i, n in old.messages.items() if i in boxes}
    counts.update(await _counts(s, changed))
    metadata = await _metadata(s, state.spec, boxes, subscribed)
    new = Snapshot(boxes, {i: counts[i] for i in watched}, subscribed, metadata)
    notes = diff(old, new, state.spec, selected_id=selected_id, condstore=s.condstore,
                 own_names=state.own_names, own_entries=state.own_entries)
    state.own_names = set()
    state.own_entries = set()
    if len(notes) > MAX_NOTIFICATIONS_PER_ROUND:
        _overflow(s)
        return
    state.snapshot = new
    for note in notes:
        _send(s, note)


async def _selected_round(s: ImapSession, state: NotifyState) -> None:
    """RFC 5465 5.1-5.3 for the selected mailbox: EXISTS then a FETCH of what MessageNew
    asked for, EXPUNGE (at once for SELECTED, only in IDLE for SELECTED-DELAYED), and
    FETCH (UID FLAGS) for flag changes."""
    sel = s.selected
    assert sel is not None
    last = sel.uids[-1] if sel.uids else 0
    await s.poll(allow_expunge=state.expunge_at_once or s.idling)
    group = state.spec.selected
    atts = list(group.fetch_atts) if group is not None else []
    fresh = [u for u in sel.uids if u > last]
    if fresh and atts:
        if not any(a.name == "UID" for a in atts):
            atts.insert(0, FetchAtt("UID"))
        await fetch_responses(s, fresh, atts)


async def _mailboxes(s: ImapSession) -> tuple[dict[int, Mailbox], frozenset[str]]:
    """The account's mailboxes and its subscription list, as the store has them now."""
    boxes = await s.run(s.store.mail.list_mailboxes, s.account_id())
    subscribed = await s.run(s.store.mail.subscriptions, s.account_id())
    return {b.id: b for b in boxes}, frozenset(subscribed)


async def _counts(s: ImapSession, mailbox_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for box_id in mailbox_ids:
        messages, _unseen, _size = await s.run(s.store.mail.mailbox_counts, box_id)
        counts[box_id] = messages
    return counts


async def _metadata(
    s: ImapSession, spec: NotifySpec, boxes: dict[int, Mailbox], subscribed: frozenset[str]
) -> dict[int | None, EntryDigests]:
    """The entries MailboxMetadataChange and ServerMetadataChange watch, as the client may
    see them (RFC 5465 5.6, 5.7): every entry of each watched target. Two queries at most,
    and none when no metadata event is asked for."""
    ids = spec.metadata_watched(boxes, subscribed)
    everything = list(PREFIXES)  # "/private" and "/shared", with every entry below
    private = s.config.metadata_private
    out: dict[int | None, EntryDigests] = {}
    if ids:
        stored = await s.run(s.store.metadata.entries_of_mailboxes, ids, everything,
                             descendants=True)
        out.update((i, digests(visible(stored.get(i, {}), private))) for i in ids)
    if spec.server_metadata:
        server = await s.run(s.store.metadata.get_entries, s.account_id(), None, everything,
                             descendants=True)
        out[None] = digests(visible(server, private))
    return out


def _overflow(s: ImapSession) -> None:
    # RFC 5465 5.8: say so, then behave as after NOTIFY NONE.
    s.notify = None
    s.untagged("OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is now NONE")


def _send(s: ImapSession, note: Notification) -> None:
    if isinstance(note, StatusDue):
        s.untagged(r.status(s.mailbox_name(note.name), note.items))
        return
    if isinstance(note, MetadataDue):
        # RFC 5464 4.4.2: the unsolicited form names the entries, without values or
        # parentheses (entry-list = entry *(SP entry)); the client fetches what it wants.
        entries = b" ".join(r.astring(entry) for entry in note.entries)
        s.untagged(b"METADATA " + s.mailbox_name(note.mailbox) + b" " + entries)
        return
    s.untagged(_list_line(s, note))


def _list_line(s: ImapSession, note: Listed) -> bytes:
    if not note.exists:
        attrs = ["\\NonExistent"]  # RFC 5465 5.4 (RFC 5258: implies \Noselect)
    else:
        attrs = ["\\HasChildren" if note.has_children else "\\HasNoChildren"]
        if note.subscribed:
            attrs.append("\\Subscribed")  # RFC 5465 5.5
    line = f"LIST ({' '.join(attrs)}) \"/\" ".encode() + s.mailbox_name(note.name)
    if note.old_name is not None:
        line += b' ("OLDNAME" (' + s.mailbox_name(note.old_name) + b"))"
    return line

