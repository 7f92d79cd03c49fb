"""\\Recent and the message count under concurrency (issue 11, item 1), on 993 and 143.

Several sessions append, expunge and re-SELECT one mailbox at once. RFC 3501 2.3.2: a
message is \\Recent in exactly one session; and when the churn stops, every session's
view is the store's.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, new_user

pytestmark = pytest.mark.usefixtures(both_ports.__name__)

APPENDERS = 2
PER_APPENDER = 25
SELECTORS = 3


def _uids(lines: list[bytes]) -> set[int]:
    found = next(line for line in lines if line.startswith(b"* SEARCH"))
    return {int(n) for n in found.split()[2:]}


class Observer:
    """A read-write session that records, per SELECT, the UIDs \\Recent for it."""

    def __init__(self, postel: PostelServer, user: str) -> None:
        self.raw = Raw(postel)
        self.raw.login(user)
        self.selections: list[set[int]] = []

    def select(self) -> None:
        assert self.raw.cmd(b"s", b"SELECT INBOX")[-1].startswith(b"s OK")
        self.selections.append(set())
        self.observe()

    def observe(self) -> None:
        """UID SEARCH RECENT until a search reports no new messages after it: only then
        has every claim of this selection been seen."""
        while True:
            lines = self.raw.cmd(b"r", b"UID SEARCH RECENT")
            self.selections[-1] |= _uids(lines)
            if not any(re.match(rb"\* \d+ EXISTS", line) for line in lines):
                return

    def settle(self) -> set[int]:
        """After the churn: report everything, then the session's view of the mailbox."""
        self.raw.cmd(b"n", b"NOOP")
        self.observe()
        return _uids(self.raw.cmd(b"a", b"UID SEARCH ALL"))


def test_recent_exactly_once_and_views_match_the_store(postel: PostelServer) -> None:
    user = new_user(postel)
    done = threading.Event()
    errors: list[BaseException] = []
    appended: list[int] = []

    def guarded(work: object) -> threading.Thread:
        def run() -> None:
            try:
                work()  # type: ignore[operator]
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
        return threading.Thread(target=run)

    def append_some(n: int) -> None:
        raw = Raw(postel)
        raw.login(user)
        for i in range(PER_APPENDER):
            body = b"Subject: a%d-%d\r\n\r\nbody\r\n" % (n, i)
            lines = raw.cmd(b"ap", b"APPEND INBOX {%d+}\r\n" % len(body) + body)
            m = re.search(rb"APPENDUID \d+ (\d+)", lines[-1])
            assert m, lines
            appended.append(int(m.group(1)))
        raw.close()

    observers = [Observer(postel, user) for _ in range(SELECTORS)]
    expunger = Observer(postel, user)

    def reselect(observer: Observer) -> None:
        while not done.is_set():
            observer.select()

    def expunge() -> None:
        while not done.is_set():
            expunger.select()
            view = _uids(expunger.raw.cmd(b"a", b"UID SEARCH ALL"))
            doomed = sorted(view)[::4][:3]
            if doomed:
                ids = ",".join(str(u) for u in doomed).encode()
                expunger.raw.cmd(b"d", b"UID STORE " + ids + b" +FLAGS.SILENT (\\Deleted)")
                expunger.raw.cmd(b"x", b"UID EXPUNGE " + ids)
            expunger.observe()

    appenders = [guarded(lambda n=n: append_some(n)) for n in range(APPENDERS)]
    others = [guarded(lambda o=o: reselect(o)) for o in observers] + [guarded(expunge)]
    for thread in others + appenders:
        thread.start()
    for thread in appenders:
        thread.join()
    done.set()
    for thread in others:
        thread.join()
    assert not errors, errors

    # A last SELECT claims what arrived after the others stopped selecting.
    final = Observer(postel, user)
    final.select()
    everyone = [*observers, expunger, final]
    views = [o.settle() for o in everyone]
    account = postel.store.directory.get_account(user)
    assert account is not None
    inbox = postel.store.mail.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    stored = {m.uid for m in postel.store.mail.list_messages(inbox.id)}
    for view in views:
        assert view == stored, f"a session sees {len(view)} of {len(stored)} messages"
    counts = Counter(u for o in everyone for selection in o.selections for u in selection)
    doubles = {u: n for u, n in counts.items() if n > 1}
    assert not doubles, f"\\Recent in more than one session: {doubles}"
    never = sorted(stored - set(counts))
    assert not never, f"never \\Recent for any session: {never}"
    assert len(appended) == APPENDERS * PER_APPENDER
    for o in everyone:
        o.raw.close()
