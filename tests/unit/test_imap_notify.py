"""NOTIFY (RFC 5465) without sockets: the grammar (also fed byte by byte), the rules of a
NOTIFY SET, the filters, the snapshot diff, and a session's overflow on a real store."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postel.imap.commands.notify import deliver_notifications
from postel.imap.notify import (
    MAX_NOTIFICATIONS_PER_ROUND,
    Listed,
    MetadataDue,
    NotifyRefused,
    NotifySpec,
    Snapshot,
    StatusDue,
    covers,
    diff,
    digests,
)
from postel.imap.proto.commands import Command, CommandError, parse_command
from postel.imap.proto.fetchatt import FetchAtt, Section
from postel.imap.proto.notify import EventGroup, Filter, Notify
from postel.imap.proto.receiver import CommandBytes, Receiver
from postel.imap.session import ImapSession, State
from postel.store.model import Mailbox
from postel.store.sql.store import SqlStore
from tests.unit.test_imap_session import FakeIO, make_services, run, store

__all__ = ["store"]  # the module-scoped store fixture of the session tests


def parse(line: bytes, *, split: bool = False) -> Command:
    receiver = Receiver()
    chunks = [line[i : i + 1] for i in range(len(line))] if split else [line]
    commands: list[CommandBytes] = []
    for chunk in chunks:
        receiver.feed(chunk)
        while (event := receiver.next_event()) is not None:
            if isinstance(event, CommandBytes):  # (the other: a literal's continuation)
                commands.append(event)
    assert len(commands) == 1
    return parse_command(commands[0])


EXAMPLE = (b'a NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From)])'
           b' messageexpunge FlagChange)) (subtree ("Lists" INBOX) (MessageNew MessageExpunge))'
           b' (mailboxes {5}\r\nOther (MailboxName)) (personal NONE)\r\n')


@pytest.mark.parametrize("split", [False, True])
def test_notify_set_parses_into_groups(split: bool) -> None:
    cmd = parse(EXAMPLE, split=split)
    assert cmd.name == "NOTIFY"
    assert cmd.args == Notify((
        EventGroup(Filter.SELECTED, (), ("MessageNew", "MessageExpunge", "FlagChange"),
                   (FetchAtt("UID"),
                    FetchAtt("BODY", Section((), "HEADER.FIELDS", ("FROM",)), peek=True))),
        EventGroup(Filter.SUBTREE, ("Lists", "INBOX"), ("MessageNew", "MessageExpunge")),
        EventGroup(Filter.MAILBOXES, ("Other",), ("MailboxName",)),
        EventGroup(Filter.PERSONAL, (), ()),
    ), status=True)


def test_notify_none_parses() -> None:
    assert parse(b"a notify none\r\n").args == Notify(None)


@pytest.mark.parametrize("line", [
    b"a NOTIFY\r\n", b"a NOTIFY SET\r\n", b"a NOTIFY NONE extra\r\n",
    b"a NOTIFY SET STATUS\r\n", b"a NOTIFY SET STATUSX (personal NONE)\r\n",
    b"a NOTIFY SET (personal)\r\n", b"a NOTIFY SET (personal ())\r\n",
    b"a NOTIFY SET (personal NONE\r\n", b"a NOTIFY SET (personal (MessageNew ())\r\n",
    b"a NOTIFY SET (subtree (MessageNew))\r\n", b"a NOTIFY SET (mailboxes () (MailboxName))\r\n",
    b"a NOTIFY SET (personal NONE)(inboxes NONE)\r\n",
])
def test_bad_syntax_is_a_command_error(line: bytes) -> None:
    with pytest.raises(CommandError):
        parse(line)


def spec_of(text: bytes) -> NotifySpec:
    args = parse(b"a NOTIFY SET " + text + b"\r\n").args
    assert isinstance(args, Notify)
    return NotifySpec.from_command(args)


@pytest.mark.parametrize(("text", "status", "code"), [
    (b"(personal (QuotaChange))", "NO", "BADEVENT ("),
    (b"(personal (SomethingNew))", "NO", "BADEVENT ("),
    (b"(personal (MessageExpunge))", "BAD", None),
    (b"(personal (FlagChange MessageNew))", "BAD", None),
    (b"(selected-delayed (SubscriptionChange))", "BAD", None),
    (b"(selected NONE) (selected-delayed NONE)", "BAD", None),
])
def test_rules_between_events_and_filters(text: bytes, status: str, code: str | None) -> None:
    with pytest.raises(NotifyRefused) as refused:
        spec_of(text)
    assert refused.value.status == status
    assert (refused.value.code or "").startswith(code or "")


def box(box_id: int, name: str, **values: object) -> Mailbox:
    fields: dict[str, object] = dict(
        id=box_id, account_id=1, name=name, special_use=None, uidvalidity=7, uidnext=1,
        highestmodseq=1, first_recent_uid=1)
    fields.update(values)
    return Mailbox(**fields)  # type: ignore[arg-type]


def test_filters_cover_their_mailboxes() -> None:
    inbox, junk = box(1, "INBOX"), box(2, "Junk", special_use="\\Junk")
    lists, ietf, other = box(3, "Lists"), box(4, "Lists/IETF"), box(5, "Listsx")
    unsubscribed = box(6, "Quiet")
    subscribed = {"INBOX", "Junk", "Lists", "Lists/IETF", "Listsx"}

    def group(filter_: Filter, *names: str) -> EventGroup:
        return EventGroup(filter_, names, ("MailboxName",))

    everything = [inbox, junk, lists, ietf, other, unsubscribed]
    def covered(g: EventGroup) -> list[str]:
        return [b.name for b in everything if covers(g, b, subscribed)]

    assert covered(group(Filter.INBOXES)) == ["INBOX", "Junk"]
    assert covered(group(Filter.SUBTREE, "Lists")) == ["Lists", "Lists/IETF"]
    assert covered(group(Filter.MAILBOXES, "Lists/%")) == []
    assert covered(group(Filter.SUBSCRIBED)) == sorted(subscribed, key=[
        b.name for b in everything].index)
    assert covered(group(Filter.PERSONAL)) == [b.name for b in everything]


def test_the_first_group_that_covers_a_mailbox_decides() -> None:
    spec = spec_of(b"(mailboxes Quiet NONE) (personal (MessageNew MessageExpunge))")
    assert spec.events_for(box(1, "Quiet"), set()) == frozenset()
    assert spec.events_for(box(2, "Loud"), set()) == {"MessageNew", "MessageExpunge"}


def test_diff_lists_and_statuses() -> None:
    spec = spec_of(b"(personal (MessageNew MessageExpunge FlagChange MailboxName "
                   b"SubscriptionChange))")
    old = Snapshot.of([box(1, "INBOX"), box(2, "Old"), box(3, "Gone"), box(4, "Sub"),
                       box(5, "Busy", uidnext=3), box(6, "Flags")],
                      {1: 0, 2: 0, 3: 0, 4: 0, 5: 2, 6: 0}, ["Old", "Sub"])
    new = Snapshot.of([box(1, "INBOX"), box(2, "New"), box(4, "Sub"),
                       box(5, "Busy", uidnext=3, highestmodseq=9), box(6, "Flags",
                                                                     highestmodseq=4),
                       box(7, "New/Child")],
                      {1: 0, 2: 0, 4: 0, 5: 1, 6: 0, 7: 0}, ["New", "New/Child"])
    notes = diff(old, new, spec, selected_id=1, condstore=True)
    assert notes == [
        Listed("Gone", exists=False),
        Listed("New", old_name="Old", has_children=True, subscribed=True),
        Listed("Sub", subscribed=False),
        StatusDue("Busy", (("UIDNEXT", 3), ("MESSAGES", 1), ("HIGHESTMODSEQ", 9))),
        StatusDue("Flags", (("UIDVALIDITY", 7), ("HIGHESTMODSEQ", 4))),
        Listed("New/Child", subscribed=True),
    ]
    # Without CONDSTORE a flag change elsewhere has nothing to say (RFC 5465 5.1).
    assert StatusDue("Flags", (("UIDVALIDITY", 7), ("HIGHESTMODSEQ", 4))) not in diff(
        old, new, spec, selected_id=1, condstore=False)
    # This session's own changes are not reported back (RFC 5465 5).
    quiet = diff(old, new, spec, selected_id=1, condstore=True,
                 own_names={"Gone", "New", "Sub", "New/Child"})
    assert [type(n) for n in quiet] == [StatusDue, StatusDue]


def test_the_selected_mailbox_gets_no_status() -> None:
    spec = spec_of(b"(personal (MessageNew MessageExpunge))")
    old = Snapshot.of([box(1, "INBOX")], {1: 0})
    new = Snapshot.of([box(1, "INBOX", uidnext=2)], {1: 1})
    assert diff(old, new, spec, selected_id=1, condstore=False) == []
    assert diff(old, new, spec, selected_id=None, condstore=False) == [
        StatusDue("INBOX", (("UIDNEXT", 2), ("MESSAGES", 1)))]


def test_metadata_events_watch_the_covered_mailboxes_and_the_server() -> None:
    spec = spec_of(b"(mailboxes (Notes) (MailboxMetadataChange)) (inboxes (MailboxName))")
    boxes = {1: box(1, "INBOX"), 2: box(2, "Notes")}
    assert spec.metadata_watched(boxes, set()) == [2] and not spec.server_metadata
    # RFC 5465 5.7: ServerMetadataChange names no mailbox, so any group asks for it.
    assert spec_of(b"(inboxes (ServerMetadataChange))").server_metadata


def test_diff_names_the_entries_set_changed_and_removed() -> None:
    spec = spec_of(b"(personal (MailboxMetadataChange ServerMetadataChange))")
    before = digests({"/private/a": b"1", "/shared/b": b"2", "/shared/c": b"3"})
    after = digests({"/private/a": b"1", "/shared/b": b"changed", "/shared/d": b"new"})
    old = Snapshot.of([box(1, "Old name"), box(2, "Fresh")], {}, (),
                      {1: before, None: digests({"/shared/motd": b"x"})})
    new = Snapshot.of([box(1, "Renamed"), box(2, "Fresh")], {}, (),
                      {1: after, 2: {}, None: digests({"/shared/motd": b"y"})})
    # Box 2 is watched for the first time: a baseline, no notification; the renamed one
    # is reported by its new name; the server as "".
    assert diff(old, new, spec, selected_id=1, condstore=False) == [
        MetadataDue("Renamed", ("/shared/b", "/shared/c", "/shared/d")),
        MetadataDue("", ("/shared/motd",)),
    ]
    # The session's own SETMETADATA is not reported back (RFC 5465 5).
    own = {("Renamed", "/shared/b"), ("Renamed", "/shared/c"), ("", "/shared/motd")}
    assert diff(old, new, spec, selected_id=1, condstore=False, own_entries=own) == [
        MetadataDue("Renamed", ("/shared/d",))]
    assert diff(new, new, spec, selected_id=None, condstore=False) == []


def _session(store: SqlStore, tmp: Path) -> tuple[ImapSession, FakeIO]:
    io = FakeIO()
    session = ImapSession(make_services(store, tmp), io, Receiver(), "127.0.0.1",
                          tls=True, tls_available=True)
    session.account = store.directory.get_account("fuzz@example.test")
    session.state = State.AUTHENTICATED
    session.subscribe()
    return session, io


async def _command(session: ImapSession, line: bytes) -> None:
    session.receiver.feed(line)
    while (event := session.receiver.next_event()) is not None:
        await session.handle(event)


def test_a_full_hint_queue_ends_notify_with_overflow(store: SqlStore, tmp_path: Path) -> None:
    async def scenario() -> bytes:
        session, io = _session(store, tmp_path)
        await _command(session, b"n NOTIFY SET (personal (MessageNew MessageExpunge))\r\n")
        assert session.notify is not None
        subscription = session.subscription
        assert subscription is not None
        while not subscription.queue.full():
            subscription.queue.put_nowait([])  # a client that stopped reading
        await deliver_notifications(session)
        assert session.notify is None  # RFC 5465 5.8: as if NOTIFY NONE
        session.close()
        return bytes(io.out)

    out = asyncio.run(scenario())
    assert out.endswith(b"* OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is now "
                        b"NONE\r\n")


def test_too_many_notifications_in_one_round_overflow(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> bytes:
        session, io = _session(store, tmp_path)
        await _command(session, b"n NOTIFY SET (personal (MailboxName))\r\n")
        assert session.notify is not None
        # A snapshot from before the account's mailboxes existed: every one is news.
        session.notify.snapshot = dataclasses.replace(session.notify.snapshot, boxes={})
        await deliver_notifications(session)
        session.close()
        return bytes(io.out)

    monkeypatch.setattr("postel.imap.commands.notify.MAX_NOTIFICATIONS_PER_ROUND", 2)
    assert MAX_NOTIFICATIONS_PER_ROUND > 2
    assert asyncio.run(scenario()).endswith(b"* OK [NOTIFICATIONOVERFLOW] Too many "
                                            b"notifications; NOTIFY is now NONE\r\n")


TOKENS = ["SET", "NONE", "STATUS", "(", ")", "selected", "selected-delayed", "inboxes",
          "personal", "subscribed", "subtree", "mailboxes", "INBOX", '"Lists"', "MessageNew",
          "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange",
          "AnnotationChange", "(UID FLAGS)", "BODY[]", "{0+}\r\n", "Foo"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(TOKENS), max_size=10))
def test_random_notify_commands_never_crash(
    store: SqlStore, tmp_path: Path, tokens: list[str]
) -> None:
    line = ("x NOTIFY " + " ".join(tokens)).encode() + b"\r\nz NOOP\r\n"
    out = run(store, tmp_path, line)
    assert b"SERVERBUG" not in out
    assert b"x OK" in out or b"x NO" in out or b"x BAD" in out
    assert b"z OK NOOP completed" in out
