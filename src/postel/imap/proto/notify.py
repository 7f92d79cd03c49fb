"""The NOTIFY command's grammar (RFC 5465 8): NOTIFY NONE, NOTIFY SET [STATUS] groups.

Only the syntax lives here; which events Postel supports and the rules between events and
filters (RFC 5465 5, 6.1) are checked by ``imap/notify.py``, which answers them with NO
[BADEVENT] or BAD. Event names are matched case-insensitively (RFC 5465 8) and written
back in their canonical spelling; an unknown name is kept as given (event-ext = atom).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.imap.proto.cursor import Cursor, ParseError
from postel.imap.proto.fetchatt import FetchAtt, parse_fetch_atts


class Filter(enum.Enum):
    """filter-mailboxes (RFC 5465 6)."""

    SELECTED = "SELECTED"
    SELECTED_DELAYED = "SELECTED-DELAYED"
    INBOXES = "INBOXES"
    PERSONAL = "PERSONAL"
    SUBSCRIBED = "SUBSCRIBED"
    SUBTREE = "SUBTREE"
    MAILBOXES = "MAILBOXES"

    @property
    def is_selected(self) -> bool:
        return self in (Filter.SELECTED, Filter.SELECTED_DELAYED)


# Every event name RFC 5465 5 defines, in its canonical spelling.
EVENT_NAMES = (
    "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
    "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange", "QuotaChange",
)
_CANONICAL = {name.upper(): name for name in EVENT_NAMES}


@dataclass(frozen=True)
class EventGroup:
    """event-group = "(" filter-mailboxes SP events ")"; events NONE is the empty tuple."""

    filter: Filter
    mailboxes: tuple[str, ...] = ()  # the names of SUBTREE / MAILBOXES
    events: tuple[str, ...] = ()
    fetch_atts: tuple[FetchAtt, ...] = ()  # MessageNew's fetch-att list


@dataclass(frozen=True)
class Notify:
    """NOTIFY NONE (groups None) or NOTIFY SET [STATUS] event-groups."""

    groups: tuple[EventGroup, ...] | None
    status: bool = False


def parse_notify(c: Cursor) -> Notify:
    c.sp()
    word = c.atom().upper()
    if word == "NONE":
        return Notify(None)
    if word != "SET":
        raise ParseError("NOTIFY takes SET or NONE")
    c.sp()
    status = False
    if c.peek() != ord("("):
        if c.atom().upper() != "STATUS":  # status-indicator = SP "STATUS"
            raise ParseError("expected STATUS or an event group")
        status = True
        c.sp()
    groups = [_group(c)]
    while c.maybe_sp():
        groups.append(_group(c))
    return Notify(tuple(groups), status)


def _group(c: Cursor) -> EventGroup:
    c.expect(b"(")
    word = c.atom().upper()
    try:
        filter_ = Filter(word)
    except ValueError:
        raise ParseError(f"unknown mailbox filter {word}") from None
    mailboxes: tuple[str, ...] = ()
    if filter_ in (Filter.SUBTREE, Filter.MAILBOXES):
        c.sp()
        mailboxes = _one_or_more_mailbox(c)
    c.sp()
    events: list[str] = []
    fetch_atts: tuple[FetchAtt, ...] = ()
    if c.accept(b"("):
        while True:
            name = c.atom()  # an empty list fails here: events has at least one event
            name = _CANONICAL.get(name.upper(), name)
            events.append(name)
            if c.accept(b")"):
                break
            c.sp()
            if name == "MessageNew" and c.peek() == ord("("):
                # RFC 5465 8: "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]
                fetch_atts = tuple(parse_fetch_atts(c))
                if c.accept(b")"):
                    break
                c.sp()
    elif c.atom().upper() != "NONE":
        raise ParseError("expected an event list or NONE")
    c.expect(b")")
    return EventGroup(filter_, mailboxes, tuple(events), fetch_atts)


def _one_or_more_mailbox(c: Cursor) -> tuple[str, ...]:
    """one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")" (RFC 5465 8)."""
    if not c.accept(b"("):
        return (c.mailbox(),)
    names = [c.mailbox()]
    while not c.accept(b")"):
        c.sp()
        names.append(c.mailbox())
    return tuple(names)
