"""Delivery, UIDs, MODSEQs, flags, expunge and change tracking: the contract both backends
share (RFC 3501 2.3.1.1 for UIDs, RFC 7162 for MODSEQs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from postel.store.errors import AlreadyExists, NotFound
from postel.store.model import (
    DeliveredMessage,
    Flags,
    FlagsChanged,
    MessageAdded,
    MessagesExpunged,
)
from postel.store.sql import rows as store_module  # where UIDVALIDITY is made
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, deliver_one, mailbox_id, put_message

SEEN = Flags(seen=True)
DELETED = Flags(deleted=True)


def uids(store: SqlStore, box_id: int) -> list[int]:
    return [m.uid for m in store.mail.list_messages(box_id)]


# -- deliver ------------------------------------------------------------------------------


def test_deliver_into_several_accounts_at_once(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    deliver_one(store, bob)  # bob's INBOX already holds UID 1
    changes: list[object] = []
    store.on_commit(changes.extend)
    blob, parsed = put_message(store, body="hello")
    delivered = store.mail.deliver(
        blob, parsed, [(alice.id, "INBOX"), (bob.id, "INBOX"), (alice.id, "Archive")]
    )
    alice_inbox, alice_archive = mailbox_id(store, alice), mailbox_id(store, alice, "Archive")
    bob_inbox = mailbox_id(store, bob)
    by_box = {d.mailbox_id: d for d in delivered}
    assert set(by_box) == {alice_inbox, alice_archive, bob_inbox}
    assert by_box[alice_inbox].uid == 1
    assert by_box[alice_archive].uid == 1
    assert by_box[bob_inbox].uid == 2
    assert by_box[bob_inbox].account_id == bob.id
    for d in delivered:
        assert isinstance(d, DeliveredMessage)
        box = store.mail.get_mailbox_by_id(d.mailbox_id)
        assert box is not None
        assert box.uidnext == d.uid + 1
        assert box.highestmodseq == d.modseq
        (meta,) = [m for m in store.mail.list_messages(d.mailbox_id) if m.uid == d.uid]
        assert meta.blob_sha256 == blob.sha256
        assert meta.size == blob.size
        assert meta.modseq == d.modseq
    # One commit, one batch of changes naming every copy.
    assert sorted(changes, key=repr) == sorted(
        (MessageAdded(d.account_id, d.mailbox_id, d.uid, d.modseq) for d in delivered), key=repr
    )


def test_deliver_is_all_or_nothing(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    blob, parsed = put_message(store)
    with pytest.raises(NotFound):
        store.mail.deliver(blob, parsed, [(alice.id, "INBOX"), (alice.id + 1000, "INBOX")])
    assert uids(store, mailbox_id(store, alice)) == []
    box = store.mail.get_mailbox(alice.id, "INBOX")
    assert box is not None and box.uidnext == 1


def test_deliver_to_missing_mailbox_falls_back_to_inbox(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    (delivered,) = store.mail.deliver(*put_message(store), [(alice.id, "Lists/Rust")])
    assert delivered.mailbox_id == mailbox_id(store, alice)


def test_deliver_same_mailbox_twice_stores_one_copy(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    delivered = store.mail.deliver(
        *put_message(store), [(alice.id, "INBOX"), (alice.id, "INBOX"), (alice.id, "Gone")]
    )
    assert len(delivered) == 1
    assert uids(store, mailbox_id(store, alice)) == [1]


def test_deliver_stores_flags_date_and_parsed_fields(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    when = datetime(2024, 2, 29, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    flags = Flags(seen=True, flagged=True, keywords=("$Forwarded", "project"))
    uid = deliver_one(store, alice, flags=flags, internal_date=when)
    (meta,) = store.mail.list_messages(mailbox_id(store, alice))
    assert meta.uid == uid
    assert meta.flags == flags
    assert meta.internal_date == when  # same instant
    assert meta.internal_date.tzinfo is not None
    assert meta.internal_date.utcoffset() == timedelta(0)  # handed back in UTC
    fields = store.mail.get_message_fields(meta.mailbox_id, uid)
    assert fields is not None
    assert fields["subject"] == "x"
    assert isinstance(fields["envelope"], list)  # JSON columns come back decoded
    assert isinstance(fields["headers"], list)
    assert isinstance(fields["mime"], dict)
    assert json.dumps(fields["envelope"])
    assert fields["saved_date"].tzinfo is not None
    assert store.mail.get_message_fields(meta.mailbox_id, uid + 1) is None


def test_append(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    drafts = mailbox_id(store, alice, "Drafts")
    blob, parsed = put_message(store)
    appended = store.mail.append(alice.id, drafts, blob, parsed, flags=Flags(draft=True))
    assert (appended.mailbox_id, appended.uid) == (drafts, 1)
    assert store.mail.list_messages(drafts)[0].flags == Flags(draft=True)
    with pytest.raises(NotFound):  # someone else's mailbox
        store.mail.append(bob.id, drafts, blob, parsed)


# -- UIDs, MODSEQs, UIDVALIDITY -----------------------------------------------------------


def test_uids_ascend_and_are_never_reused(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    assert [deliver_one(store, alice) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert store.mail.expunge(box, [4, 5]) == [4, 5]
    assert deliver_one(store, alice) == 6  # not 4
    store.mail.set_flags(box, [1, 2, 3, 6], DELETED)
    assert store.mail.expunge(box) == [1, 2, 3, 6]
    assert uids(store, box) == []
    assert deliver_one(store, alice) == 7
    mailbox = store.mail.get_mailbox_by_id(box)
    assert mailbox is not None and mailbox.uidnext == 8


def test_modseq_increases_with_every_write(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    seen = []

    def highest() -> int:
        mailbox = store.mail.get_mailbox_by_id(box)
        assert mailbox is not None
        return mailbox.highestmodseq

    seen.append(highest())
    deliver_one(store, alice)
    seen.append(highest())
    deliver_one(store, alice)
    seen.append(highest())
    store.mail.set_flags(box, [1], SEEN, mode="add")
    seen.append(highest())
    store.mail.expunge(box, [2])
    seen.append(highest())
    assert seen == sorted(set(seen)), seen  # strictly increasing
    (meta,) = store.mail.list_messages(box)
    assert meta.modseq == seen[3]  # the STORE gave message 1 a new MODSEQ


def test_modseq_is_per_mailbox(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    sent = store.mail.get_mailbox(alice.id, "Sent")
    assert sent is not None
    deliver_one(store, alice)
    deliver_one(store, alice)
    assert store.mail.get_mailbox(alice.id, "Sent") == sent  # untouched by INBOX deliveries


def test_uidvalidity_distinct_for_recreated_mailbox(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    store.mail.create_mailbox(alice.id, "Projects")
    before = {b.name: b.uidvalidity for b in store.mail.list_mailboxes(alice.id)}
    deliver_one(store, alice)
    store.directory.remove_account("alice@example.test")
    again = add_user(store, "alice@example.test")
    store.mail.create_mailbox(again.id, "Projects")
    after = {b.name: b.uidvalidity for b in store.mail.list_mailboxes(again.id)}
    assert set(before) == set(after)
    for name in before:
        # A client that cached UIDs for this login and name must see they are void.
        assert after[name] != before[name], name
        assert after[name] > before[name], name


FIXED_CLOCK = SimpleNamespace(time=lambda: 1_700_000_000.0)  # every write in one second


def test_uidvalidity_not_reused_by_another_instance(
    make_store: Callable[[], SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server created the accounts; the CLI (another process, its own counter) removes
    # alice and adds her again within the same second.
    monkeypatch.setattr(store_module, "time", FIXED_CLOCK)
    server = make_store()
    alice = add_user(server, "alice@example.test")
    add_user(server, "bob@example.test")
    before = {b.name: b.uidvalidity for b in server.mail.list_mailboxes(alice.id)}
    cli = make_store()
    cli.directory.remove_account("alice@example.test")
    again = add_user(cli, "alice@example.test")
    after = {b.name: b.uidvalidity for b in cli.mail.list_mailboxes(again.id)}
    assert all(after[name] > before[name] for name in before), (before, after)


def test_uidvalidity_not_reused_after_removing_the_newest_mailboxes(
    make_store: Callable[[], SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "time", FIXED_CLOCK)
    server = make_store()
    alice = add_user(server, "alice@example.test")
    before = {b.name: b.uidvalidity for b in server.mail.list_mailboxes(alice.id)}
    cli = make_store()
    cli.directory.remove_account("alice@example.test")
    again = add_user(cli, "alice@example.test")
    after = {b.name: b.uidvalidity for b in cli.mail.list_mailboxes(again.id)}
    assert all(after[name] != before[name] for name in before), (before, after)


def test_create_mailbox(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    changes: list[object] = []
    store.on_commit(changes.extend)
    box = store.mail.create_mailbox(alice.id, "Lists/Python", None)
    assert box.name == "Lists/Python"
    assert box.uidnext == 1
    assert box.account_id == alice.id
    assert store.mail.get_mailbox(alice.id, "Lists/Python") == box
    assert len({b.uidvalidity for b in store.mail.list_mailboxes(alice.id)}) == 7
    assert len(changes) == 1
    with pytest.raises(AlreadyExists):
        store.mail.create_mailbox(alice.id, "Lists/Python")
    with pytest.raises(AlreadyExists):
        store.mail.create_mailbox(alice.id, "inbox")


# -- flags --------------------------------------------------------------------------------


def test_set_flags_modes(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    deliver_one(store, alice, flags=Flags(answered=True, keywords=("old",)))

    changed, failed = store.mail.set_flags(
        box, [1], Flags(seen=True, keywords=("new",)), mode="add"
    )
    assert failed == []
    assert [m.flags for m in changed] == [
        Flags(seen=True, answered=True, keywords=("new", "old"))
    ]
    changed, _ = store.mail.set_flags(
        box, [1], Flags(answered=True, keywords=("old",)), mode="remove"
    )
    assert [m.flags for m in changed] == [Flags(seen=True, keywords=("new",))]
    changed, _ = store.mail.set_flags(box, [1], Flags(flagged=True, draft=True), mode="replace")
    assert [m.flags for m in changed] == [Flags(flagged=True, draft=True)]
    assert store.mail.list_messages(box)[0].flags == Flags(flagged=True, draft=True)
    with pytest.raises(ValueError):
        store.mail.set_flags(box, [1], SEEN, mode="toggle")


def test_only_changed_messages_get_a_modseq(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    deliver_one(store, alice, flags=SEEN)
    deliver_one(store, alice)
    deliver_one(store, alice)
    before = {m.uid: m.modseq for m in store.mail.list_messages(box)}
    events: list[object] = []
    store.on_commit(events.extend)

    changed, failed = store.mail.set_flags(box, [1, 2, 99], SEEN, mode="add")
    assert failed == []
    assert [m.uid for m in changed] == [2]  # 1 was already \Seen; 99 does not exist
    after = {m.uid: m.modseq for m in store.mail.list_messages(box)}
    assert after[1] == before[1]
    assert after[3] == before[3]
    assert after[2] > max(before.values())
    assert events == [FlagsChanged(alice.id, box, 2, after[2], SEEN)]

    # Nothing changes: no MODSEQ is spent and nothing is published (RFC 7162 3.1.3).
    highest = store.mail.get_mailbox_by_id(box).highestmodseq  # type: ignore[union-attr]
    assert store.mail.set_flags(box, [1, 2], SEEN, mode="add") == ([], [])
    assert store.mail.get_mailbox_by_id(box).highestmodseq == highest  # type: ignore[union-attr]
    assert len(events) == 1


def test_set_flags_on_many_messages_shares_one_modseq(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    for _ in range(4):
        deliver_one(store, alice)
    changed, _ = store.mail.set_flags(box, [1, 2, 3, 4], Flags(flagged=True), mode="add")
    assert len({m.modseq for m in changed}) == 1
    mailbox = store.mail.get_mailbox_by_id(box)
    assert mailbox is not None and changed[0].modseq == mailbox.highestmodseq


def test_unchanged_since_conflicts(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    deliver_one(store, alice)
    deliver_one(store, alice)
    mod1 = {m.uid: m.modseq for m in store.mail.list_messages(box)}
    store.mail.set_flags(box, [2], Flags(flagged=True), mode="add")  # someone else's STORE
    mod2 = {m.uid: m.modseq for m in store.mail.list_messages(box)}
    assert mod2[2] > mod1[2]

    # RFC 7162 3.1.3: a message whose MODSEQ is above UNCHANGEDSINCE fails; others go on.
    changed, failed = store.mail.set_flags(box, [1, 2], SEEN, mode="add", unchanged_since=mod1[2])
    assert failed == [2]
    assert [m.uid for m in changed] == [1]
    flags = {m.uid: m.flags for m in store.mail.list_messages(box)}
    assert flags == {1: SEEN, 2: Flags(flagged=True)}
    # Equal MODSEQ is not "changed since".
    changed, failed = store.mail.set_flags(
        box, [2], SEEN, mode="add", unchanged_since=mod2[2]
    )
    assert failed == [] and [m.uid for m in changed] == [2]
    # UNCHANGEDSINCE 0 fails for every message (RFC 7162 3.1.3).
    changed, failed = store.mail.set_flags(box, [1, 2], DELETED, mode="add", unchanged_since=0)
    assert changed == [] and failed == [1, 2]


# -- expunge, changes ---------------------------------------------------------------------


def test_expunge_deleted_and_explicit(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    for _ in range(5):
        deliver_one(store, alice)
    events: list[object] = []
    store.on_commit(events.extend)
    assert store.mail.expunge(box) == []  # nothing \Deleted: no MODSEQ, no event
    assert events == []

    store.mail.set_flags(box, [2, 4], DELETED, mode="add")
    events.clear()
    highest = store.mail.get_mailbox_by_id(box).highestmodseq  # type: ignore[union-attr]
    assert store.mail.expunge(box) == [2, 4]
    mailbox = store.mail.get_mailbox_by_id(box)
    assert mailbox is not None and mailbox.highestmodseq == highest + 1
    assert events == [MessagesExpunged(alice.id, box, (2, 4), highest + 1)]
    assert uids(store, box) == [1, 3, 5]
    # Recorded with the MODSEQ of the removal (QRESYNC VANISHED, RFC 7162 3.2.10).
    assert store.mail.changes_since(box, highest).expunged_uids == [2, 4]
    assert store.mail.changes_since(box, highest + 1).expunged_uids == []

    # Explicit UIDs (MOVE, UID EXPUNGE after the caller's check): missing ones are ignored.
    assert store.mail.expunge(box, [5, 1, 42]) == [1, 5]
    assert uids(store, box) == [3]
    assert store.mail.expunge(box, []) == []
    assert store.mail.expunge(box, [42]) == []


def test_changes_since(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    start = store.mail.changes_since(box, 0)
    assert start.changed == [] and start.expunged_uids == []
    checkpoint = start.mailbox.highestmodseq

    for _ in range(4):
        deliver_one(store, alice)
    mid = store.mail.changes_since(box, checkpoint)
    assert [m.uid for m in mid.changed] == [1, 2, 3, 4]
    assert mid.mailbox.highestmodseq == max(m.modseq for m in mid.changed)
    checkpoint = mid.mailbox.highestmodseq

    store.mail.set_flags(box, [3], SEEN, mode="add")
    store.mail.expunge(box, [2])
    deliver_one(store, alice)
    later = store.mail.changes_since(box, checkpoint)
    assert [(m.uid, m.flags) for m in later.changed] == [(3, SEEN), (5, Flags())]
    assert later.expunged_uids == [2]
    assert later.mailbox.uidnext == 6

    nothing = store.mail.changes_since(box, later.mailbox.highestmodseq)
    assert nothing.changed == [] and nothing.expunged_uids == []
    # From the start, every expunged UID is reported too (QRESYNC VANISHED, RFC 7162 3.2.10).
    everything = store.mail.changes_since(box, 0)
    assert [m.uid for m in everything.changed] == [1, 3, 4, 5]
    assert everything.expunged_uids == [2]


def test_mailbox_counts(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    assert store.mail.mailbox_counts(box) == (0, 0, 0)
    sizes = []
    for i, flags in enumerate([SEEN, Flags(), Flags(flagged=True), SEEN]):
        blob, parsed = put_message(store, body="x" * i)
        store.mail.deliver(blob, parsed, [(alice.id, "INBOX")], flags=flags)
        sizes.append(blob.size)
    assert store.mail.mailbox_counts(box) == (4, 2, sum(sizes))
    store.mail.set_flags(box, [2], SEEN, mode="add")
    store.mail.expunge(box, [1])
    assert store.mail.mailbox_counts(box) == (3, 1, sum(sizes[1:]))
    assert store.mail.mailbox_counts(mailbox_id(store, alice, "Sent")) == (0, 0, 0)


def test_list_messages_in_uid_order(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    old = datetime(2001, 1, 1, tzinfo=UTC)
    for i in range(3):
        deliver_one(store, alice, internal_date=old - timedelta(days=i))
    messages = store.mail.list_messages(box)
    assert [m.uid for m in messages] == [1, 2, 3]
    assert all(m.mailbox_id == box for m in messages)
    assert [m.internal_date for m in messages] == [old - timedelta(days=i) for i in range(3)]


def test_keywords_are_kept_as_a_sorted_set(store: SqlStore) -> None:
    # Flags compare as values, so "b a" and "a b" must be one spelling, or a STORE that
    # changes nothing would spend a MODSEQ and announce a change (RFC 7162 3.1.3).
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    deliver_one(store, alice, flags=Flags(keywords=("beta", "alpha", "beta")))
    assert store.mail.list_messages(box)[0].flags == Flags(keywords=("alpha", "beta"))
    changed, _ = store.mail.set_flags(box, [1], Flags(keywords=("zulu", "yankee", "zulu")))
    assert [m.flags for m in changed] == [Flags(keywords=("yankee", "zulu"))]
    assert store.mail.list_messages(box)[0].flags == Flags(keywords=("yankee", "zulu"))
    assert store.mail.set_flags(box, [1], Flags(keywords=("yankee",)), mode="add") == ([], [])
    assert store.mail.set_flags(box, [1], Flags(keywords=("zulu", "yankee"))) == ([], [])
