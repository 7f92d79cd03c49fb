"""Two Postel hosts on one PostgreSQL database behind Debian's HAProxy (TCP mode), as a
provider runs them (issue 14), each a supervisor with two workers: clients only ever talk
to the balancer.

- SMTP delivery through the balancer wakes IDLE sessions on whichever host holds them.
- Messages submitted through the balancer to remote recipients are each delivered exactly
  once (a local SMTP sink counts them), with both hosts' queue workers sharing the work.
- Concurrent APPENDs through the balancer get distinct ascending UIDs.
- The PROXY protocol (v2, from the balancer only) puts the real client in the Received
  header, not the balancer's address.
- kill -9 of one host: nothing acknowledged is lost, the balancer sends new connections to
  the other host, and the dead host's queue claims are taken over once their lease ends.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.balancer import Balancer
from tests.harness import (
    PASSWORD,
    PostelServer,
    drop_pg_database,
    free_ports,
    fresh_pg_database,
)
from tests.integration.test_outbound_support import Receiver, _make_handler, _Server

pytestmark = pytest.mark.postgres

USER = "alice@example.test"
WAIT = 30.0  # a bound for the waits below, not a timing claim
SUBMITTED = 500  # messages to remote recipients, over 10 connections (the 500)


@dataclass
class Cluster:
    hosts: list[PostelServer]
    balancer: Balancer
    sink: Receiver


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    url = fresh_pg_database()
    sink_port = free_ports(1)[0]
    sink = Receiver("127.0.0.1", sink_port)
    sink_server = _Server(("127.0.0.1", sink_port), _make_handler(sink))
    threading.Thread(target=sink_server.serve_forever, daemon=True).start()
    outbound = (f'[outbound]\nsmarthost = "127.0.0.1:{sink_port}"\nsmarthost_tls = "none"\n'
                "poll_interval = 0.5\nclaim_lease = 3.0\n"
                # The balancer connects from 127.0.0.2 and says who the client is.
                '[connections]\ntrusted_proxies = ["127.0.0.2"]\n'
                'proxy_protocol = ["smtp", "submission", "imap", "imaps", "pop3"]\n')
    # Each host as `postel serve` runs it: a supervisor with two workers.
    first = PostelServer(tmp_path_factory.mktemp("host-a"), storage_url=url,
                         extra_config=outbound, workers=2)
    first.add_user(USER)
    first.start()  # makes the self-signed certificate that both hosts serve
    key = first.cert_path.with_suffix(".key")
    shared_tls = f'[tls]\ncert = "{first.cert_path}"\nkey = "{key}"\n'
    second = PostelServer(tmp_path_factory.mktemp("host-b"), storage_url=url,
                          extra_config=outbound + shared_tls, workers=2)
    second.start()
    hosts = [first, second]
    balancer = Balancer(Path(tmp_path_factory.mktemp("haproxy")), hosts, proxy_protocol=True)
    balancer.start()
    yield Cluster(hosts, balancer, sink)
    balancer.stop()
    for host in hosts:
        host.close()
    sink_server.shutdown()
    sink_server.server_close()
    drop_pg_database(url)


def imap(cluster: Cluster) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", cluster.balancer.port("imap"), timeout=WAIT)
    client.starttls(cluster.hosts[0].client_tls())
    client.login(USER, PASSWORD)
    return client


def test_delivery_through_the_balancer_wakes_idle_on_every_host(cluster: Cluster) -> None:
    # Round robin: of several IDLE sessions through the balancer, some are on each host.
    watchers = []
    for _ in range(4):
        client = imap(cluster)
        client.select("INBOX")
        tag = client._new_tag()  # type: ignore[attr-defined]
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        watchers.append(client)
    with smtplib.SMTP("127.0.0.1", cluster.balancer.port("smtp"), timeout=WAIT) as smtp:
        smtp.sendmail("x@remote.test", [USER],
                      f"From: x@remote.test\r\nTo: {USER}\r\nSubject: hi\r\n\r\nhi\r\n".encode())
    for client in watchers:
        deadline = time.monotonic() + WAIT
        while not re.match(rb"\* \d+ EXISTS", client.readline()):
            assert time.monotonic() < deadline
        client.shutdown()
    served = [host.log_path.read_text().count('"imap login"') for host in cluster.hosts]
    assert all(served), f"the balancer did not spread the sessions: {served}"


def test_submissions_through_the_balancer_are_delivered_exactly_once(
    cluster: Cluster,
) -> None:
    def submit(first: int, count: int) -> None:
        with smtplib.SMTP("127.0.0.1", cluster.balancer.port("submission"),
                          timeout=WAIT) as smtp:
            smtp.starttls(context=cluster.hosts[0].client_tls())
            smtp.login(USER, PASSWORD)
            for n in range(first, first + count):
                smtp.sendmail(USER, [f"friend{n}@remote.test"], (
                    f"From: {USER}\r\nTo: friend{n}@remote.test\r\nSubject: {n}\r\n"
                    f"Message-ID: <balanced-{n}@example.test>\r\n\r\nhello {n}\r\n").encode())

    per = SUBMITTED // 10
    threads = [threading.Thread(target=submit, args=(i * per, per)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    def delivered() -> list[str]:
        return [m for m in cluster.sink.message_ids() if m.startswith("<balanced-")]

    cluster.sink.wait_for(lambda: len(delivered()) >= SUBMITTED, timeout=120)
    time.sleep(1)  # a second delivery of any of them would arrive now
    counts = Counter(delivered())
    assert len(counts) == SUBMITTED
    assert [m for m, n in counts.items() if n > 1] == []
    # Both hosts' queue workers took part.
    senders = [host.log_path.read_text().count('"msg": "delivery"') for host in cluster.hosts]
    assert all(senders), f"one host's queue worker delivered nothing: {senders}"


def test_concurrent_appends_through_the_balancer_get_ascending_uids(cluster: Cluster) -> None:
    client = imap(cluster)
    client.create("Balanced")
    client.logout()
    uids: list[int] = []
    lock = threading.Lock()

    def append() -> None:
        c = imap(cluster)
        for i in range(5):
            typ, data = c.append("Balanced", None, None, f"Subject: {i}\r\n\r\nx\r\n".encode())
            assert typ == "OK"
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0])  # type: ignore[arg-type]
            assert m
            with lock:
                uids.append(int(m.group(1)))
        c.logout()

    threads = [threading.Thread(target=append) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(uids) == list(range(1, 21))


def test_the_received_header_names_the_real_client(cluster: Cluster) -> None:
    # The test's client is 127.0.0.1; the balancer reaches the hosts from 127.0.0.2.
    with smtplib.SMTP("127.0.0.1", cluster.balancer.port("smtp"), timeout=WAIT) as smtp:
        smtp.sendmail("x@remote.test", [USER], (
            f"From: x@remote.test\r\nTo: {USER}\r\nSubject: who\r\n"
            "Message-ID: <who@remote.test>\r\n\r\nwho am I\r\n").encode())
    stored = [m for m in cluster.hosts[0].inbox(USER) if b"<who@remote.test>" in m]
    assert len(stored) == 1
    received = stored[0].split(b"\r\n\r\n")[0].split(b"Received:")[1]
    assert b"[127.0.0.1]" in received
    assert b"127.0.0.2" not in received


def test_kill_9_of_a_host_loses_nothing_and_its_claims_are_taken_over(
    cluster: Cluster,
) -> None:
    """Last in this module: it kills host A (its supervisor; the workers die with it)."""
    a = cluster.hosts[0]
    cluster.sink.data_delay = 0.3  # slow deliveries: A holds claims when it dies
    acknowledged = []
    with smtplib.SMTP("127.0.0.1", cluster.balancer.port("submission"), timeout=WAIT) as smtp:
        smtp.starttls(context=a.client_tls())
        smtp.login(USER, PASSWORD)
        for n in range(40):
            mid = f"<failover-{n}@example.test>"
            smtp.sendmail(USER, [f"far{n}@remote.test"], (
                f"From: {USER}\r\nTo: far{n}@remote.test\r\nSubject: {n}\r\n"
                f"Message-ID: {mid}\r\n\r\nhello\r\n").encode())
            acknowledged.append(mid)
    a.kill()
    # New connections go to B (HAProxy's checks take A out), and they work.
    for _ in range(4):
        with smtplib.SMTP("127.0.0.1", cluster.balancer.port("smtp"), timeout=WAIT) as smtp:
            smtp.sendmail("x@remote.test", [USER],
                          b"From: x@remote.test\r\nSubject: after\r\n\r\nafter\r\n")
    # Every acknowledged message reaches the sink: what A had claimed, B took over after
    # the lease (3 s here). At least once: a message A handed over just before it died
    # may come twice (SMTP's own rule: the sender retries what it did not see accepted).
    cluster.sink.wait_for(
        lambda: set(acknowledged) <= set(cluster.sink.message_ids()), timeout=120)
    cluster.sink.data_delay = 0.0
