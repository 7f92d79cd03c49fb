"""Writers in parallel threads, as the asyncio servers run store calls in worker threads.

On SQLite the process-wide write lock serialises writers; on PostgreSQL the mailbox row
lock does. Either way UIDs, MODSEQs and flags must come out as if the writes ran one by
one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from postel.store.errors import AlreadyExists
from postel.store.model import Flags
from postel.store.sql.store import SqlStore
from tests.store.helpers import add_user, deliver_one, mailbox_id, put_message

THREADS = 8


def run_in_threads(work: Callable[[int], object], threads: int = THREADS) -> list[object]:
    """Run work(0..threads-1) at the same moment in separate threads; re-raise any error."""
    barrier = threading.Barrier(threads)

    def start(i: int) -> object:
        barrier.wait(timeout=30)
        return work(i)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(start, i) for i in range(threads)]
        return [f.result(timeout=60) for f in futures]


@pytest.mark.timeout(60)
def test_parallel_deliveries_get_distinct_ascending_uids(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    per_thread = 25

    def deliver_many(i: int) -> list[tuple[int, int]]:
        got = []
        for n in range(per_thread):
            blob, parsed = put_message(store, body=f"thread {i} message {n}")
            (d,) = store.mail.deliver(blob, parsed, [(alice.id, "INBOX")])
            got.append((d.uid, d.modseq))
        return got

    results = run_in_threads(deliver_many)
    total = THREADS * per_thread
    returned = [pair for got in results for pair in got]  # type: ignore[attr-defined]
    assert sorted(uid for uid, _ in returned) == list(range(1, total + 1))
    for got in results:
        # Within one thread, later deliveries get higher UIDs and MODSEQs.
        assert got == sorted(got)  # type: ignore[type-var]
    messages = store.mail.list_messages(box)
    assert [m.uid for m in messages] == list(range(1, total + 1))
    assert len({m.blob_sha256 for m in messages}) == total
    # A UID and its MODSEQ are taken together, so MODSEQ order is UID order.
    modseqs = [m.modseq for m in messages]
    assert modseqs == sorted(set(modseqs))
    mailbox = store.mail.get_mailbox_by_id(box)
    assert mailbox is not None
    assert mailbox.uidnext == total + 1
    assert mailbox.highestmodseq == modseqs[-1]


@pytest.mark.timeout(60)
def test_parallel_multi_recipient_deliveries_do_not_deadlock(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    bob = add_user(store, "bob@example.test")
    rounds = 10

    def deliver_both(i: int) -> None:
        # Half the threads name the recipients in the opposite order.
        targets = [(alice.id, "INBOX"), (bob.id, "INBOX")]
        if i % 2:
            targets.reverse()
        for _ in range(rounds):
            store.mail.deliver(*put_message(store), targets)

    run_in_threads(deliver_both)
    for account in (alice, bob):
        uids = [m.uid for m in store.mail.list_messages(mailbox_id(store, account))]
        assert uids == list(range(1, THREADS * rounds + 1))


@pytest.mark.timeout(60)
def test_parallel_flag_changes_are_not_lost(store: SqlStore) -> None:
    # Each thread adds its own keyword to every message, one STORE at a time. A STORE that
    # read the flags before another committed and then wrote over them would lose a keyword.
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    count = 15
    for _ in range(count):
        deliver_one(store, alice)

    def add_keyword(i: int) -> None:
        for uid in range(1, count + 1):
            store.mail.set_flags(box, [uid], Flags(keywords=(f"k{i}",)), mode="add")

    run_in_threads(add_keyword)
    everything = tuple(sorted(f"k{i}" for i in range(THREADS)))
    messages = store.mail.list_messages(box)
    assert {m.uid: m.flags.keywords for m in messages} == {
        uid: everything for uid in range(1, count + 1)
    }
    # Every effective STORE spent its own MODSEQ.
    mailbox = store.mail.get_mailbox_by_id(box)
    assert mailbox is not None
    assert mailbox.highestmodseq == 1 + count + THREADS * count


@pytest.mark.timeout(60)
def test_parallel_expunges_remove_each_message_once(store: SqlStore) -> None:
    alice = add_user(store, "alice@example.test")
    box = mailbox_id(store, alice)
    removed_total: list[int] = []
    for round_ in range(5):
        first = deliver_one(store, alice)
        for _ in range(3):
            deliver_one(store, alice)
        store.mail.set_flags(box, list(range(first, first + 4)), Flags(deleted=True), mode="add")
        results = run_in_threads(lambda _i: store.mail.expunge(box))
        removed = [uid for r in results for uid in r]  # type: ignore[attr-defined]
        assert sorted(removed) == list(range(first, first + 4)), f"round {round_}"
        removed_total += removed
    assert store.mail.list_messages(box) == []
    assert store.mail.changes_since(box, 0).expunged_uids == sorted(removed_total)


@pytest.mark.timeout(60)
def test_parallel_creation_of_one_name_reports_already_exists(store: SqlStore) -> None:
    # Two admins (web, CLI) adding the same domain or user at once: one wins, the others
    # get the store's AlreadyExists (a 409 / a clear CLI message), never a raw SQL error.
    def add(kind: str) -> Callable[[int], str]:
        def work(_i: int) -> str:
            try:
                if kind == "domain":
                    store.directory.add_domain("example.test")
                elif kind == "account":
                    store.directory.add_account("alice@example.test", "hash")
                else:  # two IMAP sessions sending CREATE
                    (account,) = store.directory.list_accounts()
                    store.mail.create_mailbox(account.id, "Projects")
            except AlreadyExists:
                return "exists"
            return "created"

        return work

    for kind in ("domain", "account", "mailbox"):
        outcomes = run_in_threads(add(kind))
        assert sorted(outcomes) == ["created"] + ["exists"] * (THREADS - 1), kind  # type: ignore[type-var]
    assert [a.email for a in store.directory.list_accounts()] == ["alice@example.test"]
    (account,) = store.directory.list_accounts()
    assert len(store.mail.list_mailboxes(account.id)) == 7


@pytest.mark.timeout(60)
def test_two_store_instances_deliver_in_parallel(make_store: Callable[[], SqlStore]) -> None:
    # Two processes on one database (each with its own write lock on SQLite): the
    # database's own locking must still hand out each UID once.
    stores = [make_store(), make_store()]
    alice = add_user(stores[0], "alice@example.test")
    per_thread = 10

    def deliver_many(i: int) -> list[int]:
        store = stores[i % 2]
        return [
            store.mail.deliver(*put_message(store, body=f"{i}/{n}"), [(alice.id, "INBOX")])[0].uid
            for n in range(per_thread)
        ]

    results = run_in_threads(deliver_many)
    total = THREADS * per_thread
    assert sorted(uid for got in results for uid in got) == list(range(1, total + 1))  # type: ignore[attr-defined]
    box = mailbox_id(stores[1], alice)
    assert [m.uid for m in stores[1].mail.list_messages(box)] == list(range(1, total + 1))
