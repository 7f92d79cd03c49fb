"""METADATA entries (RFC 5464): the contract both backends share."""

from __future__ import annotations

import pytest

from postel.store.errors import LimitReached, NotFound
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, mailbox_id


def test_mailbox_entries_set_replace_remove(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    inbox = mailbox_id(store, alice)
    md = store.metadata
    md.set_entries(alice.id, inbox, {"/private/comment": b"mine", "/shared/comment": b"ours"},
                   max_entries=10)
    assert md.get_entries(alice.id, inbox, ["/private/comment", "/shared/comment"]) == {
        "/private/comment": b"mine", "/shared/comment": b"ours"}
    md.set_entries(alice.id, inbox, {"/private/comment": b"new\x00bin", "/shared/comment": None},
                   max_entries=10)
    assert md.get_entries(alice.id, inbox, ["/private/comment", "/shared/comment"]) == {
        "/private/comment": b"new\x00bin"}
    # A mailbox's entries are not the server's, nor another mailbox's.
    assert md.get_entries(alice.id, None, ["/private/comment"]) == {}
    assert md.get_entries(alice.id, mailbox_id(store, alice, "Sent"), ["/private/comment"]) == {}


def test_descendants_match_below_the_name_only(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    inbox = mailbox_id(store, alice)
    names = ["/private/a", "/private/a/b", "/private/a/b/c", "/private/ab", "/private/a_x"]
    store.metadata.set_entries(alice.id, inbox, {n: n.encode() for n in names}, max_entries=10)
    found = store.metadata.get_entries(alice.id, inbox, ["/private/a"], descendants=True)
    assert sorted(found) == ["/private/a", "/private/a/b", "/private/a/b/c"]
    # "_" is an ordinary character, not a LIKE wildcard.
    found = store.metadata.get_entries(alice.id, inbox, ["/private/a_"], descendants=True)
    assert found == {}


def test_server_entries_private_per_account_shared_by_all(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    md = store.metadata
    md.set_entries(alice.id, None, {"/private/comment": b"alice's",
                                    "/shared/comment": b"everyone's"}, max_entries=10)
    names = ["/private/comment", "/shared/comment"]
    assert md.get_entries(alice.id, None, names) == {
        "/private/comment": b"alice's", "/shared/comment": b"everyone's"}
    assert md.get_entries(bob.id, None, names) == {"/shared/comment": b"everyone's"}
    md.set_entries(bob.id, None, {"/shared/comment": b"changed"}, max_entries=10)
    assert md.get_entries(alice.id, None, ["/shared/comment"]) == {"/shared/comment": b"changed"}


def test_too_many_entries_sets_none(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    inbox = mailbox_id(store, alice)
    md = store.metadata
    md.set_entries(alice.id, inbox, {"/private/one": b"1"}, max_entries=2)
    with pytest.raises(LimitReached):
        md.set_entries(alice.id, inbox, {"/private/two": b"2", "/private/three": b"3"},
                       max_entries=2)
    assert md.get_entries(alice.id, inbox, ["/private"], descendants=True) == {
        "/private/one": b"1"}
    # Replacing and removing never count as more.
    md.set_entries(alice.id, inbox, {"/private/one": None, "/private/two": b"2",
                                     "/private/three": b"3"}, max_entries=2)


def test_mailbox_of_another_account_is_not_found(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    with pytest.raises(NotFound):
        store.metadata.set_entries(bob.id, mailbox_id(store, alice), {"/private/x": b"1"},
                                   max_entries=10)


def test_entries_of_many_mailboxes(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    inbox, sent = mailbox_id(store, alice), mailbox_id(store, alice, "Sent")
    store.metadata.set_entries(alice.id, inbox, {"/shared/color": b"red"}, max_entries=10)
    store.metadata.set_entries(alice.id, sent, {"/shared/color": b"blue"}, max_entries=10)
    assert store.metadata.entries_of_mailboxes([inbox, sent], ["/shared/color"]) == {
        inbox: {"/shared/color": b"red"}, sent: {"/shared/color": b"blue"}}


def test_entries_go_with_mailbox_rename_delete_and_account(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    store.mail.create_mailbox(alice.id, "Work")
    work = mailbox_id(store, alice, "Work")
    store.metadata.set_entries(alice.id, work, {"/private/comment": b"w"}, max_entries=10)
    store.mail.rename_mailbox(alice.id, "Work", "Job")
    job = mailbox_id(store, alice, "Job")
    assert store.metadata.get_entries(alice.id, job, ["/private/comment"]) == {
        "/private/comment": b"w"}
    store.mail.delete_mailbox(alice.id, "Job")
    store.mail.create_mailbox(alice.id, "Job")
    again = mailbox_id(store, alice, "Job")
    assert store.metadata.get_entries(alice.id, again, ["/private/comment"]) == {}
    inbox = mailbox_id(store, alice)
    store.metadata.set_entries(alice.id, inbox, {"/private/comment": b"i"}, max_entries=10)
    store.metadata.set_entries(alice.id, None, {"/private/comment": b"s",
                                                "/shared/comment": b"server"}, max_entries=10)
    store.directory.remove_account("alice@example.test")
    bob = add_user(store, "bob@example.test")
    # The server's shared entries outlive the account that set them.
    assert store.metadata.get_entries(bob.id, None, ["/private/comment", "/shared/comment"]) == {
        "/shared/comment": b"server"}
    assert store.metadata.entries_of_mailboxes([inbox], ["/private/comment"]) == {}
