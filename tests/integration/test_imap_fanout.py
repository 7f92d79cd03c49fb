"""Issue 12 items 1-2 over real sockets: the selected mailbox's index (arrays read once at
SELECT) answers FETCH FLAGS/UID, STORE and sequence numbers exactly as the store would;
many IDLE sessions of one mailbox share one change read, and \\Recent still goes to
exactly one of them (RFC 3501 2.3.2)."""

from __future__ import annotations

import re
import threading

from postel.mail.mime import parse_message_bytes
from postel.store.model import Flags
from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, deliver, message, new_user

WATCHERS = 8


def _idle(raw: Raw) -> None:
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")


def _wake(raw: Raw, exists: int) -> int:
    """Lines until `* <exists> EXISTS` and its RECENT; returns that RECENT count."""
    while raw.line() != b"* %d EXISTS" % exists:
        pass
    line = raw.line()
    found = re.fullmatch(rb"\* (\d+) RECENT", line)
    assert found, line
    return int(found.group(1))


def test_one_delivery_wakes_every_idle_session_and_is_recent_in_one(
    postel: PostelServer,
) -> None:
    user = new_user(postel)
    watchers = [Raw(postel) for _ in range(WATCHERS)]
    try:
        for raw in watchers:
            raw.login(user)
            assert raw.cmd(b"s", b"SELECT INBOX")[-1].startswith(b"s OK")
        for round_ in (1, 2):
            for raw in watchers:
                _idle(raw)
            deliver(postel, user, message(f"wake {round_}"))
            recent: list[int] = [0] * WATCHERS

            def wait(i: int, raw: Raw, exists: int, into: list[int]) -> None:
                into[i] = _wake(raw, exists)

            threads = [threading.Thread(target=wait, args=(i, raw, round_, recent))
                       for i, raw in enumerate(watchers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            # Each session's RECENT counts the messages it claimed, over both rounds.
            assert sum(1 for n in recent if n) >= 1
            claimed: list[set[int]] = []
            for raw in watchers:
                raw.send(b"DONE\r\n")
                assert raw.until(b"i")[-1].startswith(b"i OK")
                lines = raw.cmd(b"r", b"UID SEARCH RECENT")
                found = next(line for line in lines if line.startswith(b"* SEARCH"))
                claimed.append({int(n) for n in found.split()[2:]})
            holders = [uids for uids in claimed if round_ in uids]
            assert len(holders) == 1, claimed  # \Recent in exactly one session
    finally:
        for raw in watchers:
            raw.close()


def _fetch_flags(raw: Raw, command: bytes) -> dict[int, set[bytes]]:
    out: dict[int, set[bytes]] = {}
    for line in raw.cmd(b"f", command)[:-1]:
        found = re.fullmatch(rb"\* \d+ FETCH \((?:UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\)"
                             rb" UID (\d+))\)", line)
        assert found, line
        uid = int(found.group(1) or found.group(4))
        names = found.group(2) if found.group(1) else found.group(3)
        out[uid] = set(names.split()) - {b"\\Recent"}  # this session claimed them all
    return out


def test_the_index_answers_like_the_store_for_a_mailbox_of_300(postel: PostelServer) -> None:
    user = new_user(postel)
    account = postel.store.directory.get_account(user)
    assert account is not None
    box = postel.store.mail.get_mailbox(account.id, "INBOX")
    assert box is not None
    items = []
    for n in range(1, 301):
        data = message(f"m{n}")
        flags = Flags(seen=n % 3 != 1, flagged=n % 7 == 0,
                      keywords=("$Label1",) if n % 10 == 0 else ())
        items.append((postel.store.blobs.put(data), parse_message_bytes(data), flags, None))
    postel.store.mail.append_many(account.id, box.id, items)
    raw = Raw(postel)
    try:
        raw.login(user)
        lines = raw.cmd(b"s", b"SELECT INBOX")
        assert b"* 300 EXISTS" in lines
        assert b"* OK [UNSEEN 1] First unseen message" in lines
        assert any(b"$Label1" in line for line in lines if line.startswith(b"* FLAGS"))
        flags = _fetch_flags(raw, b"UID FETCH 1:* (FLAGS)")
        assert sorted(flags) == list(range(1, 301))
        for n in (1, 2, 7, 10, 70, 300):
            want = {b"\\Seen"} if n % 3 != 1 else set()
            want |= {b"\\Flagged"} if n % 7 == 0 else set()
            want |= {b"$Label1"} if n % 10 == 0 else set()
            assert flags[n] == want, n
        # Several ranges, out of order and overlapping, by sequence number.
        some = _fetch_flags(raw, b"FETCH 299:*,2,5:7,6 (UID FLAGS)")
        assert sorted(some) == [2, 5, 6, 7, 299, 300]
        # Expunge 100 messages (more than are deleted in place), then renumbering.
        assert raw.cmd(b"d", b"UID STORE 101:200 +FLAGS.SILENT (\\Deleted)")[-1].startswith(
            b"d OK")
        lines = raw.cmd(b"e", b"EXPUNGE")
        assert sum(1 for line in lines if line.endswith(b" EXPUNGE")) == 100
        rest = _fetch_flags(raw, b"FETCH 1:* (UID FLAGS)")
        assert sorted(rest) == [*range(1, 101), *range(201, 301)]
        lines = raw.cmd(b"q", b"FETCH 101 (UID)")
        assert lines[0] == b"* 101 FETCH (UID 201)"
        # A keyword set and removed through the index shows in a fresh SELECT too.
        raw.cmd(b"k", b"UID STORE 250 +FLAGS ($Work)")
        raw.cmd(b"k2", b"UID STORE 10 -FLAGS ($Label1)")
        raw.cmd(b"s2", b"SELECT INBOX")
        again = _fetch_flags(raw, b"UID FETCH 10,250 (FLAGS)")
        assert b"$Label1" not in again[10] and b"$Work" in again[250]
    finally:
        raw.close()


def _status(raw: Raw, box: bytes) -> tuple[int, int, int]:
    line = raw.cmd(b"t", b"STATUS " + box + b" (MESSAGES UNSEEN SIZE)")[0]
    found = re.search(rb"MESSAGES (\d+) UNSEEN (\d+) SIZE (\d+)", line)
    assert found, line
    return int(found.group(1)), int(found.group(2)), int(found.group(3))


def _counted(raw: Raw, box: bytes) -> tuple[int, int, int]:
    """The same three figures counted from the messages themselves."""
    raw.cmd(b"x", b"EXAMINE " + box)
    lines = raw.cmd(b"c", b"FETCH 1:* (FLAGS RFC822.SIZE)")[:-1]
    unseen = sum(1 for line in lines if b"\\Seen" not in line)
    size = sum(int(m.group(1)) for line in lines
               if (m := re.search(rb"RFC822\.SIZE (\d+)", line)))
    raw.cmd(b"u", b"UNSELECT")
    return len(lines), unseen, size


def test_status_counters_follow_every_kind_of_write(postel: PostelServer) -> None:
    """STATUS MESSAGES/UNSEEN/SIZE come from counters in the mailbox row (migration
    0010); after delivery, APPEND, MULTIAPPEND, STORE, COPY, MOVE, EXPUNGE and RENAME of
    INBOX they still equal what the messages say."""
    user = new_user(postel)
    for n in range(4):
        deliver(postel, user, message(f"c{n}", body="x" * (100 * n)))
    raw = Raw(postel)
    try:
        raw.login(user)

        def check(*boxes: bytes) -> None:
            for box in boxes:
                assert _status(raw, box) == _counted(raw, box), box

        check(b"INBOX")
        data = message("appended")
        raw.send(b"a APPEND INBOX (\\Seen) {%d+}\r\n" % len(data) + data
                 + b" {%d+}\r\n" % len(data) + data + b"\r\n")
        assert raw.until(b"a")[-1].startswith(b"a OK")
        raw.cmd(b"s", b"SELECT INBOX")
        raw.cmd(b"f", b"STORE 1,2 +FLAGS (\\Seen)")
        raw.cmd(b"f2", b"STORE 5 -FLAGS (\\Seen)")
        check(b"INBOX")
        raw.cmd(b"s", b"SELECT INBOX")
        raw.cmd(b"k", b"COPY 1:3 Archive")
        raw.cmd(b"m", b"MOVE 2 Trash")
        raw.cmd(b"d", b"STORE 1 +FLAGS (\\Deleted)")
        raw.cmd(b"e", b"EXPUNGE")
        check(b"INBOX", b"Archive", b"Trash")
        raw.cmd(b"s", b"SELECT Archive")
        raw.cmd(b"e2", b"UID STORE 1:* +FLAGS (\\Deleted)")
        raw.cmd(b"c", b"CLOSE")
        assert raw.cmd(b"r", b"RENAME INBOX Old")[-1].startswith(b"r OK")
        check(b"INBOX", b"Old", b"Archive", b"Trash")
        assert _status(raw, b"INBOX") == (0, 0, 0)
    finally:
        raw.close()


def test_search_subject_prefilter_keeps_every_match(postel: PostelServer) -> None:
    """SEARCH SUBJECT is answered from the subject column first (issue 12 item 5); the
    pre-filter must not lose what the exact rule finds: casefolded matches (RFC 9051
    6.4.4 "case-insensitive"), and a second Subject field."""
    user = new_user(postel)
    deliver(postel, user, message("Stra\u00dfe nach Rom"))
    deliver(postel, user, b"From: a@example.org\r\nSubject: first\r\nSubject: zweite Zeile"
                          b"\r\n\r\nbody\r\n")
    deliver(postel, user, message("nothing here"))
    raw = Raw(postel)
    try:
        raw.login(user)
        raw.cmd(b"s", b"SELECT INBOX")

        def found(text: bytes) -> list[bytes]:
            lines = raw.cmd(b"q", b"UID SEARCH " + text)
            assert lines[-1].startswith(b"q OK"), lines
            return next(line for line in lines if line.startswith(b"* SEARCH")).split()[2:]

        assert found(b"SUBJECT STRASSE") == [b"1"]
        assert found(b"SUBJECT ZWEITE") == [b"2"]
        assert found(b"SUBJECT first") == [b"2"]
        assert found(b"SUBJECT here UNSEEN") == [b"3"]
        assert found(b"OR SUBJECT rom SUBJECT zweite") == [b"1", b"2"]
        assert found(b"SUBJECT absent") == []
    finally:
        raw.close()
