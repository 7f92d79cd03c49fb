"""Soak: a mixed load of every protocol against one Postel for SOAK_SECONDS, then a check
that every acknowledged message is where it belongs.

    make soak                      # 600 s (SOAK_SECONDS, bounded to 10..3600)
    SOAK_SECONDS=120 .venv/bin/python bench/soak.py

Load, one thread each, every iteration on a fresh connection (so logins, TLS handshakes
and session teardown are soaked too): SMTP in on 25, submission on 587 to a remote domain
(delivered by the queue through a smarthost, a sink in this process), IMAP (APPEND,
SELECT, FETCH, SEARCH, STORE), POP3 (STAT, UIDL, RETR), the webmail API (log on, list,
send to the remote domain, log off). Every few seconds the server's RSS and open fds are
sampled. At the end the queue is given time to drain and every acknowledged message is
looked for: mail in and APPENDs in the store, mail out at the sink. Prints memory and fds
at start and end, messages acknowledged and found per kind, errors; exit status 1 when a
message is lost or any error happened.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import poplib
import re
import smtplib
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for the tests' harness (`tests.harness`)

import httpx  # noqa: E402
from tests.harness import PASSWORD, PostelServer  # noqa: E402

USERS = [f"soak{i}@example.test" for i in range(4)]
REMOTE = "sink@remote.test"
TOKEN = re.compile(rb"soak-[0-9a-f]{16}")
PAUSE = 0.1  # seconds between iterations of one worker: steady load, not a flood
SAMPLE_EVERY = 5.0
MIN_SECONDS, MAX_SECONDS = 10, 3600


def bounded_seconds(raw: str | None, default: int = 600) -> int:
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = default
    return max(MIN_SECONDS, min(MAX_SECONDS, value))


def new_token() -> str:
    return f"soak-{token_hex(8)}"


def message(sender: str, rcpt: str, token: str) -> bytes:
    return (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {token}\r\nX-Soak: {token}\r\n"
            f"Message-ID: <{token}@soak.test>\r\n\r\nbody of {token}\r\n"
            + "filler line to give the body some weight\r\n" * 40).encode()


# -- the smarthost sink ------------------------------------------------------------------


class Sink:
    """A minimal SMTP server: accepts everything, remembers the soak tokens it got."""

    def __init__(self) -> None:
        self.tokens: set[bytes] = set()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                                 b"250 SIZE 100000000\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    body = bytearray()
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    self.tokens.update(TOKEN.findall(bytes(body)))
                    writer.write(b"250 2.0.0 kept\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
        finally:
            writer.close()


# -- the run -----------------------------------------------------------------------------


@dataclass
class Soak:
    server: PostelServer
    sink: Sink
    deadline: float
    acked_in: set[bytes] = field(default_factory=set)    # must end up in the store
    acked_out: set[bytes] = field(default_factory=set)   # must end up at the sink
    iterations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, where: set[bytes], token: str) -> None:
        with self.lock:
            where.add(token.encode())

    def worker(self, name: str, step: Callable[[int], None]) -> None:
        n = 0
        while time.monotonic() < self.deadline:
            try:
                step(n)
                with self.lock:
                    self.iterations[name] += 1
            except Exception:  # counted and shown: the soak's purpose is to find these
                with self.lock:
                    self.errors[name] += 1
                    if len(self.first_errors) < 10:
                        self.first_errors.append(f"{name}: {traceback.format_exc(limit=3)}")
            n += 1
            time.sleep(PAUSE)

    # one iteration per protocol ------------------------------------------------------

    def smtp_in(self, n: int) -> None:
        token, rcpt = new_token(), USERS[n % len(USERS)]
        with smtplib.SMTP("127.0.0.1", self.server.port("smtp"), timeout=60) as smtp:
            smtp.sendmail("someone@elsewhere.test", [rcpt], message(
                "someone@elsewhere.test", rcpt, token))
        self.ack(self.acked_in, token)

    def submission(self, n: int) -> None:
        token, user = new_token(), USERS[n % len(USERS)]
        with smtplib.SMTP("127.0.0.1", self.server.port("submission"), timeout=60) as smtp:
            smtp.starttls(context=self.server.client_tls())
            smtp.login(user, PASSWORD)
            smtp.sendmail(user, [REMOTE], message(user, REMOTE, token))
        self.ack(self.acked_out, token)

    def imap(self, n: int) -> None:
        token, user = new_token(), USERS[n % len(USERS)]
        with imaplib.IMAP4_SSL("127.0.0.1", self.server.port("imaps"),
                               ssl_context=self.server.client_tls(), timeout=60) as conn:
            conn.login(user, PASSWORD)
            typ, _ = conn.append("INBOX", None, None, message(user, user, token))
            if typ != "OK":
                raise RuntimeError(f"APPEND answered {typ}")
            self.ack(self.acked_in, token)
            typ, data = conn.select("INBOX")
            count = int(data[0] or 0)
            conn.fetch(f"{max(1, count - 20)}:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")
            conn.search(None, "SUBJECT", token)
            conn.store(str(count), "+FLAGS", "\\Seen")
            conn.logout()

    def pop3(self, n: int) -> None:
        pop = poplib.POP3_SSL("127.0.0.1", self.server.port("pop3s"),
                              context=self.server.client_tls(), timeout=60)
        try:
            pop.user(USERS[n % len(USERS)])
            pop.pass_(PASSWORD)
            count, _ = pop.stat()
            pop.uidl()
            if count:
                pop.retr(1 + n % count)
        finally:
            pop.quit()

    def webmail(self, n: int) -> None:
        token, user = new_token(), USERS[n % len(USERS)]
        with httpx.Client(base_url=f"https://127.0.0.1:{self.server.port('https')}",
                          verify=False, timeout=60) as http:
            csrf = http.get("/api/v1/session").json()["csrf_token"]
            answer = http.post("/api/v1/session", headers={"X-CSRF-Token": csrf},
                               json={"email": user, "password": PASSWORD})
            answer.raise_for_status()
            csrf = answer.json()["csrf_token"]
            folders = http.get("/api/v1/mail/folders").json()["folders"]
            inbox = next(f for f in folders if f["role"] == "inbox")
            http.get(f"/api/v1/mail/folders/{inbox['id']}/messages",
                     params={"limit": 20}).raise_for_status()
            sent = http.post("/api/v1/mail/send", headers={"X-CSRF-Token": csrf}, json={
                "to": [REMOTE], "subject": token, "text": f"body of {token}"})
            sent.raise_for_status()
            self.ack(self.acked_out, token)
            http.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})

    # sampling and the final check ----------------------------------------------------

    def sample(self) -> tuple[float, int, int]:
        assert self.server.process is not None
        pid = self.server.process.pid
        rss_kb = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        point = (time.monotonic(), rss_kb, fds)
        with self.lock:
            self.samples.append(point)
        return point

    def sampler(self) -> None:
        while time.monotonic() < self.deadline:
            self.sample()
            time.sleep(SAMPLE_EVERY)

    def stored_tokens(self) -> set[bytes]:
        store = self.server.store
        found: set[bytes] = set()
        for user in USERS:
            account = store.directory.get_account(user)
            assert account is not None
            for box in store.mail.list_mailboxes(account.id):
                for m in store.mail.list_messages(box.id):
                    found.update(TOKEN.findall(store.blobs.path(m.blob_sha256).read_bytes()))
        return found


@dataclass
class Result:
    seconds: int
    rss_start_kb: int
    rss_end_kb: int
    rss_max_kb: int
    fds_start: int
    fds_end: int
    fds_max: int
    iterations: dict[str, int]
    errors: dict[str, int]
    first_errors: list[str]
    acked_in: int
    found_in: int
    acked_out: int
    found_out: int
    log_errors: int

    @property
    def lost(self) -> int:
        return self.acked_in - self.found_in + self.acked_out - self.found_out

    @property
    def ok(self) -> bool:
        return self.lost == 0 and not self.errors and not self.log_errors

    def report(self) -> str:
        lines = [
            f"soak: {self.seconds} s",
            f"memory (RSS): start {self.rss_start_kb / 1024:.1f} MiB, end "
            f"{self.rss_end_kb / 1024:.1f} MiB, max {self.rss_max_kb / 1024:.1f} MiB",
            f"open fds: start {self.fds_start}, end {self.fds_end}, max {self.fds_max}",
            "iterations: " + ", ".join(f"{k} {v}" for k, v in sorted(self.iterations.items())),
            f"messages in (SMTP 25 + IMAP APPEND): acknowledged {self.acked_in}, found "
            f"{self.found_in}",
            f"messages out (587 + webmail, via the queue): acknowledged {self.acked_out}, "
            f"found at the sink {self.found_out}",
            "errors: " + (", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
                          or "none"),
            f"error lines in the server log: {self.log_errors}",
        ]
        lines += self.first_errors
        lines.append("OK" if self.ok else f"FAILED: {self.lost} messages lost")
        return "\n".join(lines)


def run_soak(seconds: int, root: Path) -> Result:
    sink = Sink()
    sink.start()
    server = PostelServer(root, extra_config=(
        "[outbound]\n"
        f'smarthost = "127.0.0.1:{sink.port}"\nsmarthost_tls = "none"\n'
        "retry_schedule = [1.0]\n"
        "[web]\nlogin_backoff_base = 0.0\n"
        "[auth]\nmax_failures_per_ip = 0\nmax_failures_per_account = 0\n"))
    for user in USERS:
        server.add_user(user)
    server.start()
    try:
        deadline_wait = time.monotonic() + 30
        while True:  # HTTPS may bind just after the mail ports
            try:
                httpx.get(f"https://127.0.0.1:{server.port('https')}/logon", verify=False,
                          timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline_wait:
                    raise
                time.sleep(0.1)
        soak = Soak(server, sink, time.monotonic() + seconds)
        _, rss_start, fds_start = soak.sample()
        steps: dict[str, Callable[[int], None]] = {
            "smtp-in": soak.smtp_in, "submission": soak.submission, "imap": soak.imap,
            "pop3": soak.pop3, "webmail": soak.webmail}
        threads = [threading.Thread(target=soak.worker, args=(name, step), daemon=True)
                   for name, step in steps.items()]
        threads.append(threading.Thread(target=soak.sampler, daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Let the queue drain (it retries after 1 s) and idle sessions close.
        drain = time.monotonic() + 120
        while time.monotonic() < drain and not soak.acked_out <= sink.tokens:
            time.sleep(0.5)
        time.sleep(2)
        _, rss_end, fds_end = soak.sample()
        stored = soak.stored_tokens()
        log = server.log_path.read_text(errors="replace")
        log_errors = sum(1 for line in log.splitlines()
                         if '"level": "error"' in line or "Traceback" in line)
        return Result(
            seconds=seconds, rss_start_kb=rss_start, rss_end_kb=rss_end,
            rss_max_kb=max(s[1] for s in soak.samples), fds_start=fds_start,
            fds_end=fds_end, fds_max=max(s[2] for s in soak.samples),
            iterations=dict(soak.iterations), errors=dict(soak.errors),
            first_errors=soak.first_errors, acked_in=len(soak.acked_in),
            found_in=len(soak.acked_in & stored), acked_out=len(soak.acked_out),
            found_out=len(soak.acked_out & sink.tokens), log_errors=log_errors)
    finally:
        server.close()


def main() -> int:
    seconds = bounded_seconds(os.environ.get("SOAK_SECONDS"))
    with tempfile.TemporaryDirectory(prefix="postel-soak-") as tmp:
        result = run_soak(seconds, Path(tmp))
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
