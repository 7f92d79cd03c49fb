"""SMTP load generator: N parallel aiosmtplib connections, one transaction per message.

Each client opens one connection, says EHLO, then sends message after message on it with
MAIL/RCPT/DATA and no RSET between them (aiosmtplib only sends RSET after an error). The
clock starts once every client is connected, so connection set-up is not timed; a message's
latency is from its MAIL command to the 250 after its DATA.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiosmtplib

from bench.procstat import SystemCpu, self_cpu

SENDER_DOMAIN = "remote.test"
MESSAGE_ID = re.compile(rb"^Message-ID: <(bench-[0-9a-f]+-\d+)@" + SENDER_DOMAIN.encode() + rb">",
                        re.MULTILINE | re.IGNORECASE)


def make_message(
    run: str, number: int, size: int, recipient: str, author: str | None = None
) -> bytes:
    """A plain-text message of exactly `size` bytes with a unique Message-ID; `author`
    for submission, where the From must be the signed-in user."""
    head = (
        f"From: {author or f'load{number}@{SENDER_DOMAIN}'}\r\nTo: {recipient}\r\n"
        f"Message-ID: <bench-{run}-{number}@{SENDER_DOMAIN}>\r\n"
        f"Subject: bench {number}\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = (f"benchmark message {number} filler text ".encode() * 4)[:76] + b"\r\n"
    body = bytearray()
    while len(head) + len(body) + len(line) <= size:
        body += line
    rest = size - len(head) - len(body)
    if rest >= 2:
        body += b"x" * (rest - 2) + b"\r\n"
    message = head + bytes(body)
    return message + b"\r\n"[: size - len(message)]


def message_ids(data: bytes) -> list[str]:
    return [m.decode() for m in MESSAGE_ID.findall(data)]


@dataclass
class LoadResult:
    messages: int
    sent: int = 0
    elapsed: float = 0.0  # seconds from the start signal to the last 250
    latencies: list[float] = field(default_factory=list)  # seconds, one per accepted message
    errors: list[str] = field(default_factory=list)
    client_cpu: float = 0.0  # CPU seconds this process used while sending
    machine_busy: float = 0.0  # busy fraction of all cores while sending
    start_wall: float = 0.0  # time.time() at the start signal
    run: str = ""  # the token inside every Message-ID of this run
    finished: float = 0.0  # perf_counter() at the last 250

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


async def _client(
    port: int,
    work: Iterator[tuple[int, bytes]],
    start: asyncio.Event,
    ready: list[int],
    result: LoadResult,
    sender_recipient: tuple[str, str],
    submit: Submit | None,
) -> None:
    sender, recipient = sender_recipient

    async def connect() -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, timeout=120,
            local_hostname="loadgen.remote.test",
        )
        await smtp.connect()
        await smtp.ehlo()
        if submit is not None:  # port 587: STARTTLS, then AUTH PLAIN, once per connection
            await smtp.starttls(tls_context=submit.tls)
            await smtp.login(submit.user, submit.password)
        return smtp

    smtp: aiosmtplib.SMTP | None = await connect()
    ready.append(1)
    await start.wait()
    for number, message in work:
        began = time.perf_counter()
        try:
            if smtp is None:
                smtp = await connect()
            await smtp.sendmail(sender.format(n=number), [recipient], message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            result.errors.append(f"message {number}: {type(exc).__name__}: {exc}")
            if smtp is not None:
                smtp.close()
            smtp = None
            continue
        result.finished = time.perf_counter()
        result.latencies.append(result.finished - began)
        result.sent += 1
    if smtp is not None:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()


@dataclass(frozen=True)
class Submit:
    """Submission instead of relay-free delivery: STARTTLS with this context, then AUTH;
    the envelope sender and From are the user."""

    tls: ssl.SSLContext
    user: str
    password: str


async def _run(
    port: int, messages: int, clients: int, size: int, recipient: str, submit: Submit | None,
) -> LoadResult:
    run = secrets.token_hex(4)
    result = LoadResult(messages=messages, run=run)
    author = submit.user if submit is not None else None
    bodies = [(n, make_message(run, n, size, recipient, author)) for n in range(messages)]
    work = iter(bodies)  # shared: whichever client is free takes the next message
    start = asyncio.Event()
    ready: list[int] = []
    tasks = [
        asyncio.create_task(
            _client(port, work, start, ready, result,
                    (author or f"load{{n}}@{SENDER_DOMAIN}", recipient), submit)
        )
        for _ in range(clients)
    ]
    deadline = time.monotonic() + 30
    while len(ready) < clients:
        failed = [t for t in tasks if t.done() and t.exception() is not None]
        if failed:
            for task in tasks:
                task.cancel()
            raise ConnectionError(f"client could not connect: {failed[0].exception()!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(ready)}/{clients} clients connected in 30 s")
        await asyncio.sleep(0.01)
    cpu_before, machine_before = self_cpu(), SystemCpu.read()
    result.start_wall = time.time()
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    result.elapsed = (result.finished or time.perf_counter()) - began
    result.client_cpu = self_cpu() - cpu_before
    result.machine_busy = SystemCpu.read().since(machine_before)
    return result


def run_load(
    port: int, *, messages: int, clients: int, size: int, recipient: str,
    submit: Submit | None = None,
) -> LoadResult:
    """Send `messages` messages over `clients` connections to 127.0.0.1:`port`; the
    connections (with STARTTLS and AUTH when `submit`) are set up before the clock."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_run(port, messages, clients, size, recipient, submit))
