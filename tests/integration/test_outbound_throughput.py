"""Outbound throughput to local receiving servers (slow: run with
`.venv/bin/pytest -m slow tests/integration/test_outbound_throughput.py -s`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.harness import PostelServer
from tests.integration.test_outbound_support import (
    DnsFixture,
    Receiver,
    dns_server,
    receivers,
    unused_port,
    wait_until,
)

__all__ = ["dns_server", "receivers"]

MESSAGES = 2000
DOMAINS = 10


@pytest.mark.slow
def test_outbound_throughput(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    remotes = []
    for n in range(DOMAINS):
        dns_server.zone.add(f"d{n}.test", "MX", f"10 mx.d{n}.test.")
        dns_server.zone.add(f"mx.d{n}.test", "A", f"127.0.1.{n + 1}")
        remotes.append(receivers(f"127.0.1.{n + 1}", port))
    sender = make_postel("a", extra_config=dns_server.config
                         + f"[outbound]\nmx_port = {port}\npoll_interval = 0.05\n")
    sender.add_user("alice@a.test")
    body = b"x" * 2000 + b"\r\n"
    for number in range(MESSAGES):
        blob = sender.store.blobs.put(
            f"From: alice@a.test\r\nTo: bob@d{number % DOMAINS}.test\r\n"
            f"Message-ID: <t{number}@a.test>\r\nSubject: {number}\r\n\r\n".encode() + body
        )
        sender.store.queue.enqueue(
            queue_id=f"T{number}", blob=blob, body_offset=0, mail_from="alice@a.test",
            recipients=[f"bob@d{number % DOMAINS}.test"], account_id=None, smtputf8=False,
            body_8bit=False,
        )
    started = time.monotonic()
    sender.start()
    wait_until(lambda: sum(len(r.messages) for r in remotes) == MESSAGES, timeout=600)
    elapsed = time.monotonic() - started
    print(f"\n{MESSAGES} messages to {DOMAINS} domains in {elapsed:.1f} s "
          f"(including start-up): {MESSAGES / elapsed:.0f} messages/s")
    assert sum(len(set(r.message_ids())) for r in remotes) == MESSAGES
