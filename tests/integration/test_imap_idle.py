"""Several sessions on one mailbox: IDLE woken by SMTP delivery and by another session's
STORE, EXPUNGE timing rules, per-session sequence numbers, \\Recent."""

from __future__ import annotations

import re

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import (
    Raw,
    both_ports,
    deliver,
    imapclient,
    message,
    new_user,
)

# Every test here runs over 993 (implicit TLS) and 143 (STARTTLS).
pytestmark = pytest.mark.usefixtures(both_ports.__name__)




def test_idle_is_woken_by_smtp_delivery(postel: PostelServer) -> None:
    # The wake-up is pushed by the change bus (no polling interval); the timeout below is
    # only a bound for a broken server, not a measured latency.
    user = new_user(postel)
    with imapclient(postel, user) as c:
        c.select_folder("INBOX")
        c.idle()
        deliver(postel, user, message("wake up"))
        responses = c.idle_check(timeout=30)
        c.idle_done()
        assert (1, b"EXISTS") in responses


def test_idle_is_woken_by_another_sessions_store(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("flag me"))
    with imapclient(postel, user) as watcher, imapclient(postel, user) as actor:
        watcher.select_folder("INBOX")
        actor.select_folder("INBOX")
        watcher.idle()
        actor.add_flags([1], [b"\\Flagged"])
        responses = watcher.idle_check(timeout=5)
        watcher.idle_done()
        fetches = [r for r in responses if len(r) > 1 and r[1] == b"FETCH"]
        assert fetches and b"\\Flagged" in fetches[0][2][fetches[0][2].index(b"FLAGS") + 1]


def test_expunge_from_another_session_and_sequence_numbers(postel: PostelServer) -> None:
    user = new_user(postel)
    for i in range(3):
        deliver(postel, user, message(f"m{i}"))
    a, b = Raw(postel), Raw(postel)
    a.login(user)
    b.login(user)
    a.cmd(b"s", b"SELECT INBOX")
    b.cmd(b"s", b"SELECT INBOX")
    b.cmd(b"x", b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert b.cmd(b"y", b"EXPUNGE")[0] == b"* 2 EXPUNGE"
    # RFC 9051 7.4.1: no EXPUNGE during FETCH by sequence number; numbers stay put.
    lines = a.cmd(b"f", b"FETCH 3 (UID)")
    assert lines[0] == b"* 3 FETCH (UID 3)"
    assert not any(b"EXPUNGE" in line for line in lines)
    lines = a.cmd(b"n", b"NOOP")
    assert lines[0] == b"* 2 EXPUNGE"
    assert a.cmd(b"g", b"FETCH 2 (UID)")[0] == b"* 2 FETCH (UID 3)"
    deliver(postel, user, message("new"))
    lines = a.cmd(b"n2", b"NOOP")
    assert b"* 3 EXISTS" in lines
    a.close()
    b.close()


def test_recent_goes_to_one_session(postel: PostelServer) -> None:
    user = new_user(postel)
    a, b = Raw(postel), Raw(postel)
    a.login(user)
    b.login(user)
    a.cmd(b"s", b"SELECT INBOX")
    b.cmd(b"s", b"SELECT INBOX")
    deliver(postel, user, message("recent"))
    lines_a = a.cmd(b"n", b"NOOP")
    lines_b = b.cmd(b"n", b"NOOP")
    assert b"* 1 RECENT" in lines_a
    assert b"* 0 RECENT" in lines_b
    assert a.cmd(b"r", b"SEARCH RECENT")[0] == b"* SEARCH 1"
    assert b.cmd(b"r", b"SEARCH RECENT")[0] == b"* SEARCH"
    a.close()
    b.close()


def test_idle_done_and_idle_in_authenticated_state(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    raw.send(b"DONE\r\n")
    assert raw.until(b"i")[-1] == b"i OK IDLE terminated"
    raw.cmd(b"s", b"SELECT INBOX")
    raw.send(b"j IDLE\r\n")
    assert raw.line() == b"+ idling"
    deliver(postel, user, message("x"))
    assert raw.line() == b"* 1 EXISTS"
    raw.send(b"DONE\r\n")
    lines = raw.until(b"j")
    assert lines[-1] == b"j OK IDLE terminated"
    raw.close()


def test_many_sessions_see_the_same_mailbox(postel: PostelServer) -> None:
    user = new_user(postel)
    sessions = [Raw(postel) for _ in range(4)]
    for i, s in enumerate(sessions):
        s.login(user)
        s.cmd(b"s", b"SELECT INBOX")
        s.send(b"a%d APPEND INBOX {%d+}\r\n" % (i, len(message(f"from {i}")))
               + message(f"from {i}") + b"\r\n")
    for i, s in enumerate(sessions):
        s.until(b"a%d" % i)
    for s in sessions:
        s.cmd(b"n", b"NOOP")
        lines = s.cmd(b"u", b"UID SEARCH ALL")
        assert lines[0] == b"* SEARCH 1 2 3 4"
        s.close()


def test_deleting_a_mailbox_selected_elsewhere(postel: PostelServer) -> None:
    user = new_user(postel)
    a, b = Raw(postel), Raw(postel)
    a.login(user)
    b.login(user)
    a.cmd(b"c", b"CREATE Doomed")
    b.cmd(b"s", b"SELECT Doomed")
    assert a.cmd(b"d", b"DELETE Doomed")[-1].startswith(b"d OK")
    b.send(b"n NOOP\r\n")
    assert b.line() == b"* BYE Selected mailbox was deleted"
    a.close()
    b.close()


def test_any_command_reports_new_mail_in_the_selected_mailbox(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"s", b"SELECT INBOX")
    deliver(postel, user, message("arrives"))
    lines = raw.cmd(b"t", b"STATUS Trash (MESSAGES)")
    assert lines[0] == b"* 1 EXISTS"
    assert lines[-2] == b"* STATUS Trash (MESSAGES 0)"
    raw.close()


def test_concurrent_sessions_converge(postel: PostelServer) -> None:
    """Four clients append, flag and expunge at once; afterwards every session (and a new
    one) agrees on the UIDs and flags, and no UID was handed out twice."""
    import random
    import threading

    user = new_user(postel)
    errors: list[BaseException] = []
    appended: list[int] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        raw = Raw(postel)
        try:
            raw.login(user)
            raw.cmd(b"s", b"SELECT INBOX")
            for i in range(15):
                op = rng.choice(["append", "append", "flag", "expunge", "noop"])
                if op == "append":
                    body = message(f"w{seed}-{i}")
                    lines = raw.cmd(b"a", b"APPEND INBOX {%d+}\r\n" % len(body) + body)
                    uid = int(lines[-1].split(b"]")[0].split()[-1])
                    with lock:
                        appended.append(uid)
                elif op == "flag":
                    raw.cmd(b"f", b"UID STORE 1:* +FLAGS.SILENT (\\Flagged)")
                elif op == "expunge":
                    raw.cmd(b"d", b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % rng.randint(1, 30))
                    raw.cmd(b"e", b"EXPUNGE")
                else:
                    raw.cmd(b"n", b"NOOP")
            raw.cmd(b"n", b"NOOP")
            views.append(raw)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    views: list[Raw] = []
    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(appended) == len(set(appended)), "a UID was handed out twice"
    fresh = Raw(postel)
    fresh.login(user)
    fresh.cmd(b"s", b"SELECT INBOX")
    expected = fresh.cmd(b"x", b"UID FETCH 1:* (FLAGS)")
    expected = [re.sub(rb" \\Recent|\\Recent ?", b"", line) for line in expected[:-1]]
    for raw in views:
        raw.cmd(b"n", b"NOOP")
        got = raw.cmd(b"x", b"UID FETCH 1:* (FLAGS)")
        assert [re.sub(rb" \\Recent|\\Recent ?", b"", line) for line in got[:-1]] == expected
        raw.close()
    fresh.close()
