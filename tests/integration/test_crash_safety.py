"""SIGKILL at random moments under a mixed write load: nothing acknowledged is lost.

Every write path runs at once against a real server: SMTP delivery on 25, submission on
587 to a local and a remote recipient (the remote copy goes through the queue to a sink
SMTP server set as smarthost), IMAP APPEND / COPY / STORE / MOVE / EXPUNGE, POP3 DELE +
QUIT, webmail send and a password reset through the web. Each client records what the
server acknowledged (and the one change it had in flight). The server is killed with
SIGKILL at a random moment and restarted on the same data; then every acknowledged change
must be there exactly once, the change in flight either done or not at all (never half:
no row without its body, no duplicate), and the store's own check clean. The durability
rule under test: a 250 / OK / +OK / 200 is sent only after the fsync and the commit.

`make test` runs KILLS rounds; the slow variant runs SLOW_KILLS. Both backends
(POSTEL_TEST_BACKEND=postgres).
"""

from __future__ import annotations

import imaplib
import poplib
import random
import re
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest

from postel.mail.mime import parse_message_bytes
from tests.harness import PASSWORD, PostelServer
from tests.integration.test_outbound_support import Receiver, _make_handler, _Server
from tests.web.helpers import ask_reset, client, csrf, local_path, reset_link, start

KILLS = 4
SLOW_KILLS = 10
D = "example.test"
MX, SUB, LOCAL, IMAPU, POP = (f"{n}@{D}" for n in ("mx", "sub", "local", "imap", "pop"))
WEB, WEBRCPT, RESET, RESETBOX = (f"{n}@{D}" for n in ("web", "webrcpt", "reset", "resetbox"))
FAR = "far@remote.test"
PATHS = ("mx", "sub", "imap", "pop", "web", "reset")
COVER_TIMEOUT = 90.0  # seconds for every path to get one change through (a loaded host)
ID = re.compile(rb"X-Crash-Id: (\S+)", re.IGNORECASE)
SUBJECT = re.compile(rb"Subject: (crash-\S+)", re.IGNORECASE)
UID = re.compile(rb"UID (\d+)")
FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")

# An IMAP message's state: the (mailbox, \Flagged, \Deleted) places its id is in.
Places = frozenset[tuple[str, bool, bool]]


def message(ident: str, to: str, sender: str = "sender@remote.test") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"crash-{ident}"
    msg["X-Crash-Id"] = ident
    msg.set_content(f"{ident}\n" + "some text of the body\n" * random.randint(1, 40))
    return msg.as_bytes()


@dataclass
class Journal:
    """What the clients saw acknowledged, per path, and what was in flight at the kill."""

    acked: dict[str, list[str]] = field(default_factory=dict)  # path -> ids
    in_doubt: dict[str, list[str]] = field(default_factory=dict)
    imap_state: dict[str, Places] = field(default_factory=dict)  # id -> acked places
    imap_pending: dict[str, Places] = field(default_factory=dict)  # id -> places in flight
    password: str = PASSWORD  # the reset account's acknowledged password
    password_pending: str | None = None
    absent: dict[str, set[str]] = field(default_factory=dict)  # in doubt, found not done
    landed: dict[str, set[str]] = field(default_factory=dict)  # in doubt, found done
    unexpected: list[str] = field(default_factory=list)
    killed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    round_acks: dict[str, int] = field(default_factory=dict)  # path -> acks this round

    def ack(self, path: str, ident: str) -> None:
        with self.lock:
            self.acked.setdefault(path, []).append(ident)
            self.round_acks[path] = self.round_acks.get(path, 0) + 1

    def covered(self) -> bool:
        """Every path has had a change acknowledged in this round."""
        with self.lock:
            return all(self.round_acks.get(p) for p in PATHS)

    def doubt(self, path: str, ident: str) -> None:
        with self.lock:
            self.in_doubt.setdefault(path, []).append(ident)


class QuietSink(_Server):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the killed server resets its connections: expected, not worth a traceback


class Load:
    """One round's client threads; each runs its path until the server dies."""

    def __init__(self, server: PostelServer, journal: Journal, round_no: int) -> None:
        self.server, self.journal, self.round = server, journal, round_no
        self.threads = [threading.Thread(target=self._run, args=(work,), daemon=True)
                        for work in (self.smtp, self.submission, self.imap, self.pop,
                                     self.web_send, self.reset)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive(), "a client did not notice the dead server"

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # the kill shows as any client error; before it, a bug
            if not self.journal.killed.is_set():
                self.journal.unexpected.append(f"{work.__name__}: {exc!r}")

    def _ids(self, path: str) -> Iterator[str]:
        n = 0
        while True:
            n += 1
            yield f"{path}-{self.round}-{n}"

    # -- the paths ----------------------------------------------------------------------

    def smtp(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.server.port("smtp"), timeout=20) as smtp:
            for ident in self._ids("mx"):
                self.journal.doubt("mx", ident)
                smtp.sendmail("sender@remote.test", [MX], message(ident, MX))
                self.journal.ack("mx", ident)

    def submission(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.server.port("submission"), timeout=20) as smtp:
            smtp.starttls(context=self.server.client_tls())
            smtp.login(SUB, PASSWORD)
            for ident in self._ids("sub"):
                self.journal.doubt("sub", ident)
                smtp.sendmail(SUB, [LOCAL, FAR], message(ident, f"{LOCAL}, {FAR}", SUB))
                self.journal.ack("sub", ident)

    def imap(self) -> None:
        j = self.journal
        with imaplib.IMAP4_SSL("127.0.0.1", self.server.port("imaps"),
                               ssl_context=self.server.client_tls(), timeout=20) as imap:
            imap.login(IMAPU, PASSWORD)

            def step(ident: str, after: Places, command: Callable[[], Any]) -> Any:
                j.imap_pending[ident] = after
                typ, data = command()
                assert typ == "OK", (typ, data)
                j.imap_state[ident] = after
                del j.imap_pending[ident]
                with j.lock:
                    j.round_acks["imap"] = j.round_acks.get("imap", 0) + 1
                return data

            for ident in self._ids("imap"):
                raw = message(ident, IMAPU)
                step(ident, frozenset({("Work", False, False)}),
                     lambda raw=raw: imap.append("Work", "", None, raw))
                work_uid = uid_of(imap, "Work", ident)
                step(ident, frozenset({("Work", False, False), ("Copies", False, False)}),
                     lambda u=work_uid: imap.uid("COPY", u, "Copies"))
                step(ident, frozenset({("Work", True, False), ("Copies", False, False)}),
                     lambda u=work_uid: imap.uid("STORE", u, "+FLAGS", "(\\Flagged)"))
                step(ident, frozenset({("Moved", True, False), ("Copies", False, False)}),
                     lambda u=work_uid: imap.uid("MOVE", u, "Moved"))
                copy_uid = uid_of(imap, "Copies", ident)
                step(ident, frozenset({("Moved", True, False), ("Copies", False, True)}),
                     lambda u=copy_uid: imap.uid("STORE", u, "+FLAGS", "(\\Deleted)"))
                step(ident, frozenset({("Moved", True, False)}),
                     lambda u=copy_uid: imap.uid("EXPUNGE", u))

    def pop(self) -> None:
        while True:
            pop = poplib.POP3_SSL("127.0.0.1", self.server.port("pop3s"),
                                  context=self.server.client_tls(), timeout=20)
            pop.user(POP)
            pop.pass_(PASSWORD)
            if pop.stat()[0] == 0:
                # Every seeded message is taken already (logins from the credentials cache
                # are fast): nothing to delete until the next round seeds more.
                pop.quit()
                time.sleep(0.2)
                continue
            top = b"\n".join(pop.top(1, 0)[1])
            found = ID.search(top)
            assert found, top
            ident = found.group(1).decode()
            pop.dele(1)
            self.journal.doubt("pop", ident)
            assert pop.quit().startswith(b"+OK")
            self.journal.ack("pop", ident)

    def web_send(self) -> None:
        with client(self.server) as http:
            token = http.get("/api/v1/session").json()["csrf_token"]
            answer = http.post("/api/v1/session", json={"email": WEB, "password": PASSWORD},
                               headers={"X-CSRF-Token": token})
            assert answer.status_code == 200, answer.text
            token = answer.json()["csrf_token"]
            for ident in self._ids("web"):
                self.journal.doubt("web", ident)
                sent = http.post("/api/v1/mail/send", headers={"X-CSRF-Token": token},
                                 json={"to": [WEBRCPT], "subject": f"crash-{ident}",
                                       "text": f"{ident}\n"})
                assert sent.status_code == 200, sent.text
                self.journal.ack("web", ident)

    def reset(self) -> None:
        j = self.journal
        with client(self.server) as http:
            for ident in self._ids("reset"):
                seen = len(self._resetbox())
                assert ask_reset(http, RESET).status_code == 200
                deadline = time.monotonic() + 30
                while len(mails := self._resetbox()) <= seen:
                    assert time.monotonic() < deadline, "no reset mail"
                    time.sleep(0.05)
                link = reset_link(mails[-1])
                form = http.get(local_path(link))
                assert form.status_code == 200, form.text
                new = f"Quartz lamp {random.randrange(10**12)}"
                j.password_pending = new
                done = http.post("/reset-password", data={
                    "csrf_token": csrf(form.text), "token": urlsplit(link).query[6:],
                    "password": new, "confirm": new})
                assert done.status_code == 200, done.text
                j.password, j.password_pending = new, None
                j.ack("reset", ident)

    def _resetbox(self) -> list[Any]:
        from email import message_from_bytes
        from email.policy import default

        return [message_from_bytes(m, policy=default) for m in self.server.inbox(RESETBOX)]


def uid_of(imap: imaplib.IMAP4, mailbox: str, ident: str) -> str:
    """Select the mailbox and find the message's UID by its id."""
    imap.select(mailbox)
    typ, data = imap.uid("SEARCH", "HEADER", "X-Crash-Id", ident)
    assert typ == "OK" and data[0], (typ, data)
    return str(data[0].split()[-1].decode())


# -- checking what survived -----------------------------------------------------------


def imap_contents(server: PostelServer, user: str, password: str = PASSWORD
                  ) -> dict[str, list[tuple[str, bool, bool]]]:
    """id -> [(mailbox, flagged, deleted)] for every message an IMAP client sees."""
    found: dict[str, list[tuple[str, bool, bool]]] = {}
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                           ssl_context=server.client_tls(), timeout=30) as imap:
        imap.login(user, password)
        _, listing = imap.list()
        for line in listing:
            assert isinstance(line, bytes)
            name = line.decode().rsplit(" ", 1)[-1].strip('"')
            typ, _ = imap.select(name, readonly=True)
            assert typ == "OK"
            # The header fields come from the blob: a row without its body cannot answer.
            typ, data = imap.uid(
                "FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (X-CRASH-ID SUBJECT)])")
            assert typ == "OK", data
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head, body = item
                flags = FLAGS.search(head)
                flag_text = flags.group(1) if flags else b""
                ident = ID.search(body) or SUBJECT.search(body)
                if ident is None:
                    continue
                key = ident.group(1).decode().removeprefix("crash-")
                found.setdefault(key, []).append(
                    (name, b"\\Flagged" in flag_text, b"\\Deleted" in flag_text))
    return found


def store_contents(server: PostelServer, user: str) -> dict[str, list[tuple[str, bool, bool]]]:
    """The same as `imap_contents`, read from the store (cheaper than an Argon2 login per
    account on a loaded host): every message row's body is read, so a row whose blob is
    missing fails here as it would over IMAP."""
    account = server.store.directory.get_account(user)
    assert account is not None
    found: dict[str, list[tuple[str, bool, bool]]] = {}
    for box in server.store.mail.list_mailboxes(account.id):
        for meta in server.store.mail.list_messages(box.id):
            body = server.store.blobs.path(meta.blob_sha256).read_bytes()
            ident = ID.search(body) or SUBJECT.search(body)
            if ident is not None:
                key = ident.group(1).decode().removeprefix("crash-")
                found.setdefault(key, []).append(
                    (box.name, meta.flags.flagged, meta.flags.deleted))
    return found


def check_round(server: PostelServer, journal: Journal, sink: Receiver,
                counts: dict[str, int]) -> None:
    mx = store_contents(server, MX)
    local = store_contents(server, LOCAL)
    for path, got in (("mx", mx), ("sub", local)):
        acked = set(journal.acked.get(path, []))
        for ident in acked | journal.landed.get(path, set()):
            assert got.get(ident) == [("INBOX", False, False)], (path, ident, got.get(ident))
        for ident in journal.in_doubt.get(path, []):
            assert len(got.get(ident, [])) <= 1, (path, ident, got[ident])
        resolve(journal, path, got)
        counts[path] = len(acked)
    # Submission's remote copies: in the queue now, or already at the sink.
    queued = {ident for item in server.store.queue.list_all()
              for ident in [_queue_ident(server, item.blob_sha256)]}
    at_sink = sink_ids(sink)
    for ident in journal.acked.get("sub", []):
        assert ident in queued or ident in at_sink, f"remote copy of {ident} lost"
    # A submission whose local copy landed has its remote copy too, acknowledged or not:
    # local copies and queue rows commit in one transaction (delivery.deliver), so no
    # kill leaves half a submission.
    half = [ident for ident in journal.landed.get("sub", set())
            if ident not in queued and ident not in at_sink]
    assert half == [], f"local copy without its remote copy: {half}"
    counts["sub_local_only"] = len(half)

    boxes = imap_contents(server, IMAPU)
    for ident, state in journal.imap_state.items():
        actual = frozenset(boxes.get(ident, []))
        assert len(actual) == len(boxes.get(ident, [])), (ident, boxes[ident])  # no dupes
        allowed = {state, journal.imap_pending.get(ident, state)}
        assert actual in allowed, (ident, actual, allowed)
    for ident, pending in journal.imap_pending.items():
        if ident not in journal.imap_state:  # an APPEND in flight: all or nothing
            assert frozenset(boxes.get(ident, [])) in (frozenset(), pending), ident
    # What the kill decided is now fixed: later rounds must find exactly that.
    for ident in list(journal.imap_pending):
        journal.imap_state[ident] = frozenset(boxes.get(ident, []))
        del journal.imap_pending[ident]
    counts["imap"] = len(journal.imap_state)

    pop_left = store_contents(server, POP)
    for ident in journal.acked.get("pop", []):
        assert ident not in pop_left, f"POP3 DELE of {ident} acknowledged but it is back"
    for ident, places in pop_left.items():
        assert len(places) == 1, (ident, places)
    for ident in journal.in_doubt.pop("pop", []):  # a QUIT in flight: done or not, now fixed
        if ident not in pop_left and ident not in journal.acked.get("pop", []):
            journal.ack("pop", ident)
    counts["pop"] = len(journal.acked.get("pop", []))

    received = store_contents(server, WEBRCPT)
    sent = store_contents(server, WEB)
    for ident in set(journal.acked.get("web", [])) | journal.landed.get("web", set()):
        assert received.get(ident) == [("INBOX", False, False)], (ident, received.get(ident))
    for ident in journal.acked.get("web", []):
        assert [p[0] for p in sent.get(ident, [])] == ["Sent"], (ident, sent.get(ident))
    for ident in journal.in_doubt.get("web", []):
        assert len(received.get(ident, [])) <= 1 and len(sent.get(ident, [])) <= 1
    resolve(journal, "web", received)
    counts["web"] = len(journal.acked.get("web", []))

    # The acknowledged password works; a reset in flight may have landed instead.
    candidates = [journal.password] + ([journal.password_pending]
                                       if journal.password_pending else [])
    for password in candidates:
        with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                               ssl_context=server.client_tls(), timeout=30) as imap:
            try:
                imap.login(RESET, password)
            except imaplib.IMAP4.error:
                continue
            journal.password, journal.password_pending = password, None
            break
    else:
        raise AssertionError("the acknowledged reset password no longer works")
    counts["reset"] = len(journal.acked.get("reset", []))

    report = server.store.integrity.check()
    assert report.clean, report.problems


def sink_ids(sink: Receiver) -> set[str]:
    """The ids of what the sink accepted (after the final dot only)."""
    with sink.lock:
        found = [ID.search(m.data) for m in sink.messages]
    assert all(found), "the sink accepted a message without its id: cut short?"
    return {f.group(1).decode() for f in found if f}


def resolve(journal: Journal, path: str, got: dict[str, list[Any]]) -> None:
    """Changes in flight at the kill either happened or not; from now on that is fixed:
    one that landed counts as acknowledged, one that did not must never appear."""
    absent = journal.absent.setdefault(path, set())
    for ident in absent:
        assert ident not in got, f"{path} {ident} appeared after it was found absent"
    acked = set(journal.acked.get(path, []))
    landed = journal.landed.setdefault(path, set())
    for ident in journal.in_doubt.pop(path, []):
        if ident in acked:
            continue
        if ident in got:
            landed.add(ident)
        else:
            absent.add(ident)


_IDENTS: dict[str, str] = {}


def _queue_ident(server: PostelServer, sha: str) -> str:
    if sha not in _IDENTS:
        found = ID.search(server.store.blobs.path(sha).read_bytes())
        _IDENTS[sha] = found.group(1).decode() if found else ""
    return _IDENTS[sha]


# -- the test -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sink() -> Iterator[Receiver]:
    from tests.harness import free_ports

    (port,) = free_ports(1)
    receiver = Receiver("127.0.0.1", port)
    server = QuietSink(("127.0.0.1", port), _make_handler(receiver))
    receiver.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield receiver
    server.shutdown()
    server.server_close()


def make_server(make_postel: Callable[..., PostelServer], sink: Receiver) -> PostelServer:
    server = make_postel(extra_config=(
        "[web]\ntest_hooks = true\nlogin_backoff_base = 0.0\nreset_max_per_ip = 100000\n"
        "reset_max_per_account = 100000\n"
        f'[outbound]\nsmarthost = "127.0.0.1:{sink.port}"\nsmarthost_tls = "none"\n'))
    for user in (MX, SUB, LOCAL, IMAPU, POP, WEB, WEBRCPT, RESETBOX):
        server.add_user(user)
    server.add_user(RESET, backup_email=RESETBOX)
    account = server.store.directory.get_account(IMAPU)
    assert account is not None
    for name in ("Work", "Copies", "Moved"):
        server.store.mail.create_mailbox(account.id, name)
    return server


def top_up_pop(server: PostelServer, round_no: int, count: int = 20) -> None:
    """Keep mail in the POP3 user's INBOX for its DELEs (a few per round)."""
    account = server.store.directory.get_account(POP)
    assert account is not None
    if len(server.inbox(POP)) >= count:
        return
    for n in range(count):
        raw = message(f"pop-{round_no}-{n}", POP)
        blob = server.store.blobs.put(raw)
        server.store.mail.deliver(blob, parse_message_bytes(raw), [(account.id, "INBOX")])


def crash_rounds(make_postel: Callable[..., PostelServer], sink: Receiver,
                 kills: int) -> dict[str, int]:
    server = make_server(make_postel, sink)
    journal = Journal()
    counts: dict[str, int] = {}
    rng = random.Random()
    for round_no in range(1, kills + 1):
        top_up_pop(server, round_no)
        journal.killed.clear()
        t0 = time.monotonic()
        start(server)
        t1 = time.monotonic()
        if round_no > 1:
            check_round(server, journal, sink, counts)  # what the last kill left
        t1b = time.monotonic()
        load = Load(server, journal, round_no)
        journal.round_acks.clear()
        load.start()
        # A random moment once every path is under way (on a loaded host the slowest
        # path, a reset with its mail round trip, may need seconds for its first change).
        deadline = time.monotonic() + COVER_TIMEOUT
        while not journal.covered() and not journal.unexpected:
            assert time.monotonic() < deadline, f"paths stuck: {journal.round_acks}"
            time.sleep(0.05)
        t2 = time.monotonic()
        time.sleep(rng.uniform(0.0, 1.5))
        print(f"round {round_no}: start {t1 - t0:.1f}s, check {t1b - t1:.1f}s, "
              f"cover {t2 - t1b:.1f}s")
        journal.killed.set()
        server.kill()
        load.join()
        assert not journal.unexpected, journal.unexpected
    start(server)
    check_round(server, journal, sink, counts)
    # The queue hands every remote copy to the sink once the server runs undisturbed.
    acked_sub = set(journal.acked.get("sub", []))

    sink.wait_for(lambda: acked_sub <= sink_ids(sink), timeout=60)
    result = server.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    # Crash leftovers (a body fsynced whose row never committed) are the one thing a
    # kill may leave: repairable, never an error.
    leftovers = server.store.integrity.check(stale_after=0)
    assert all(p.repairable for p in leftovers.problems), leftovers.problems
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    counts["kills"] = kills
    counts["leftover_orphans"] = len(leftovers.problems)
    counts["sink_duplicates"] = len(sink.messages) - len(sink_ids(sink))
    print("crash safety:", counts)
    server.close()
    return counts


@pytest.mark.timeout(900)  # rounds of server starts: minutes on a loaded 2-core host
def test_sigkill_under_load_loses_nothing_acknowledged(
    make_postel: Callable[..., PostelServer], sink: Receiver
) -> None:
    crash_rounds(make_postel, sink, KILLS)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_ten_times_under_load_loses_nothing_acknowledged(
    make_postel: Callable[..., PostelServer], sink: Receiver
) -> None:
    crash_rounds(make_postel, sink, SLOW_KILLS)
