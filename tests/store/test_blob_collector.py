"""Removing an account deletes the bodies nothing else names, and only those: not a body
another account's message or a queued row still names, nor one a delivery has just
written and not yet committed (content-addressed blobs are shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from postel.store import blobs as blobs_module
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, message, put_message


def enqueue(store: SqlStore, blob: object, account_id: int) -> None:
    store.queue.enqueue(
        queue_id="Q1", blob=blob, body_offset=0, mail_from="alice@example.test",  # type: ignore[arg-type]
        recipients=["x@remote.test"], account_id=account_id, smtputf8=False, body_8bit=False,
    )


def test_removed_accounts_unshared_blobs_go_and_shared_ones_stay(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    only_alice, parsed = put_message(store, body="only alice")
    shared, shared_parsed = put_message(store, body="alice and bob")
    queued, queued_parsed = put_message(store, body="alice, and queued for remote")
    store.mail.deliver(only_alice, parsed, [(alice.id, "INBOX"), (alice.id, "Sent")])
    store.mail.deliver(shared, shared_parsed, [(alice.id, "INBOX"), (bob.id, "INBOX")])
    store.mail.deliver(queued, queued_parsed, [(alice.id, "Sent")])
    enqueue(store, queued, alice.id)

    store.directory.remove_account("alice@example.test")

    assert not store.blobs.exists(only_alice.sha256)
    assert store.blobs.exists(shared.sha256)  # Bob's message names it
    assert store.blobs.exists(queued.sha256)  # the queued row names it
    (bobs,) = store.mail.list_messages(store.mail.get_mailbox(bob.id, "INBOX").id)  # type: ignore[union-attr]
    assert store.blobs.path(bobs.blob_sha256).read_bytes() == message(body="alice and bob")[0]


def test_a_blob_written_but_not_yet_committed_survives(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    blob, parsed = put_message(store, body="same content")
    store.mail.deliver(blob, parsed, [(alice.id, "INBOX")])
    # A delivery to Bob of the same bytes has made its blob durable (found the file in
    # place) and not committed its row yet when Alice is removed.
    again, _ = put_message(store, body="same content")
    assert again == blob

    store.directory.remove_account("alice@example.test")

    assert store.blobs.exists(blob.sha256)
    store.mail.deliver(again, parsed, [(bob.id, "INBOX")])
    # Once Bob's row names it, the blob goes with the last message that names it.
    store.directory.remove_account("bob@example.test")
    assert not store.blobs.exists(blob.sha256)


def test_a_blob_no_row_ever_named_stops_being_pinned(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = add_user(store, "alice@example.test")
    blob, parsed = put_message(store, body="delivered")
    store.mail.deliver(blob, parsed, [(alice.id, "INBOX")])
    monkeypatch.setattr(blobs_module, "PIN_SECONDS", 0.0)
    put_message(store, body="delivered")  # a rejected duplicate: its pin lapses at once

    store.directory.remove_account("alice@example.test")

    assert not store.blobs.exists(blob.sha256)


def test_a_blob_another_process_installed_is_kept_until_it_commits(tmp_path: Path) -> None:
    # Two shared BlobStores on one folder stand for two worker processes: their in-memory
    # pins are separate, so only the pin files in blobs/.pins protect the other's install.
    writer = blobs_module.BlobStore(tmp_path / "blobs", tmp_path / "tmp", shared=True)
    collector = blobs_module.BlobStore(tmp_path / "blobs", tmp_path / "tmp", shared=True)
    blob = writer.put(b"Subject: in flight\r\n\r\nnot committed yet\r\n")

    assert collector.collect([blob.sha256], lambda names: set()) == []
    assert writer.exists(blob.sha256)

    writer.release(blob.sha256)  # its row committed (and was since removed)
    assert collector.collect([blob.sha256], lambda names: set()) == [blob.sha256]
    assert not writer.exists(blob.sha256)
