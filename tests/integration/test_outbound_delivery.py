"""Outbound delivery end to end on loopback: a real Postel sends through its queue to
scripted receivers found via a local DNS server. Retries, DSNs, expiry, null senders,
and a restart in the middle of a large queue."""

from __future__ import annotations

import email
import email.policy
import smtplib
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_outbound_support import (
    DnsFixture,
    Receiver,
    dns_server,
    log_entries,
    receivers,
    unused_port,
    wait_until,
)

__all__ = ["dns_server", "receivers"]  # fixtures used by name below

ALICE = "alice@a.test"


def sender_config(dns: DnsFixture, mx_port: int, **outbound: object) -> str:
    settings = {"mx_port": mx_port, "retry_schedule": "[0.2]", "poll_interval": 0.05,
                **outbound}
    lines = "\n".join(f"{key} = {value}" for key, value in settings.items())
    return dns.config + f"[outbound]\n{lines}\n"


def start_sender(make_postel: Callable[..., PostelServer], dns: DnsFixture, mx_port: int,
                 **outbound: object) -> PostelServer:
    server = make_postel("a", extra_config=sender_config(dns, mx_port, **outbound))
    server.add_user(ALICE)
    server.start()
    return server


def route(dns: DnsFixture, domain: str, ip: str) -> None:
    dns.zone.add(domain, "MX", f"10 mx.{domain}.")
    dns.zone.add(f"mx.{domain}", "A", ip)


def submit(server: PostelServer, to: list[str], subject: str = "hello",
           sender: str = ALICE) -> None:
    message = (
        f"From: Alice <{sender}>\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@a.test>\r\n\r\nHi there.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as client:
        client.starttls(context=server.client_tls())
        client.login(sender, PASSWORD)
        client.sendmail(sender, to, message.encode())


def queue_empty(server: PostelServer) -> bool:
    return not server.store.queue.list_all()


def test_a_new_queue_row_is_attempted_without_waiting_for_the_poll(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    # The queue looks once at start and then, by the poll alone, only in an hour: the
    # message goes out because the commit of its row wakes the queue.
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers("127.0.0.2", port)
    sender = start_sender(make_postel, dns_server, port, poll_interval=3600)
    submit(sender, ["bob@r.test"], "at once")
    wait_until(lambda: len(remote.messages) == 1 and queue_empty(sender), what="delivery")
    assert b"Subject: at once" in remote.messages[0].data


def test_451_twice_then_250_delivers_once(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers("127.0.0.2", port, data_replies=["451 4.3.0 busy", "451 4.3.0 busy"])
    sender = start_sender(make_postel, dns_server, port)
    submit(sender, ["bob@r.test"], "retried")
    wait_until(lambda: len(remote.messages) == 1 and queue_empty(sender), what="delivery")
    assert remote.connections == 3
    [message] = remote.messages
    assert message.mail_from == ALICE and message.recipients == ["bob@r.test"]
    assert b"Subject: retried" in message.data and b"Return-Path" not in message.data
    attempts = [e for e in log_entries(sender, "delivery") if e["domain"] == "r.test"]
    assert [e["attempt"] for e in attempts] == [1, 2, 3]
    assert [bool(e["delivered"]) for e in attempts] == [False, False, True]
    assert "451 4.3.0 busy" in next(iter(attempts[0]["failed"].values()))
    assert sender.inbox(ALICE) == []  # no DSN for a message that got through


def test_550_gives_one_well_formed_dsn(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers(
        "127.0.0.2", port,
        rcpt_reply=lambda a: "550 5.1.1 no such user" if a.startswith("nobody") else "250 OK",
    )
    sender = start_sender(make_postel, dns_server, port)
    submit(sender, ["nobody@r.test", "bob@r.test"], "partly bounced")
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 1, what="DSN")
    assert [m.recipients for m in remote.messages] == [["bob@r.test"]]
    raw = sender.inbox(ALICE)[0]
    assert raw.startswith(b"Return-Path: <>\r\n")
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(dsn, EmailMessage)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["Auto-Submitted"] == "auto-replied"
    text, status, headers = dsn.get_payload()  # type: ignore[misc]
    assert "nobody@r.test" in text.get_content()
    assert status.get_content_type() == "message/delivery-status"
    fields = status.get_payload()
    assert fields[0]["Reporting-MTA"] == "dns; mail.example.test"
    assert fields[1]["Final-Recipient"] == "rfc822; nobody@r.test"
    assert fields[1]["Action"] == "failed" and fields[1]["Status"] == "5.1.1"
    assert fields[1]["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert len(fields) == 2  # bob was delivered: not in the report
    assert headers.get_content_type() == "text/rfc822-headers"
    original = headers.get_payload(decode=True)
    assert b"Subject: partly bounced" in original and b"Message-ID: <partly-bounced@a.test>" in (
        original
    )


def test_unreachable_host_past_expiry_gives_one_dsn(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
) -> None:
    port = unused_port()
    route(dns_server, "down.test", "127.0.0.3")  # nothing listens there
    sender = start_sender(make_postel, dns_server, port, expire_after=1.0)
    submit(sender, ["bob@down.test"], "never arrives")
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 1, what="DSN")
    dsn = email.message_from_bytes(sender.inbox(ALICE)[0], policy=email.policy.default)
    status = dsn.get_payload()[1].get_payload()  # type: ignore[index, union-attr]
    assert status[1]["Action"] == "failed" and status[1]["Status"] == "4.4.7"
    assert "cannot connect" in status[1]["Diagnostic-Code"]
    attempts = [e for e in log_entries(sender, "delivery") if e["domain"] == "down.test"]
    assert len(attempts) >= 2  # retried before giving up
    assert len(sender.inbox(ALICE)) == 1


def test_null_sender_is_never_bounced(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers("127.0.0.2", port, rcpt_reply=lambda a: "550 5.1.1 gone")
    sender = start_sender(make_postel, dns_server, port)
    sender.store.directory.add_alias("fwd@a.test", "gone@r.test")  # forwards on to r.test
    with smtplib.SMTP("127.0.0.1", sender.port("smtp"), timeout=30) as client:
        client.sendmail("", ["fwd@a.test"], b"From: daemon@x.test\r\nSubject: dsn\r\n\r\nx\r\n")
    wait_until(lambda: remote.connections >= 1 and queue_empty(sender), what="attempt")
    assert remote.messages == []
    assert sender.inbox(ALICE) == []
    assert any(e.get("queue_id") for e in log_entries(
        sender, "queue: not bouncing a message with the null sender"))


def test_null_mx_bounces_at_once(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
) -> None:
    dns_server.zone.add("nomail.test", "MX", "0 .")
    sender = start_sender(make_postel, dns_server, unused_port())
    submit(sender, ["bob@nomail.test"], "null mx")
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 1, what="DSN")
    assert b"Status: 5.1.10" in sender.inbox(ALICE)[0]


@pytest.mark.parametrize("count", [500])
def test_restart_in_the_middle_of_the_queue_delivers_each_once(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver], count: int,
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers("127.0.0.2", port)
    sender = make_postel("a", extra_config=sender_config(
        dns_server, port, max_connections=4, max_connections_per_domain=4))
    sender.add_user(ALICE)
    store = sender.store
    for number in range(count):
        blob = store.blobs.put(
            f"Received: test\r\nFrom: {ALICE}\r\nTo: bob@r.test\r\n"
            f"Message-ID: <m{number}@a.test>\r\nSubject: {number}\r\n\r\nbody\r\n".encode()
        )
        store.queue.enqueue(queue_id=f"Q{number}", blob=blob, body_offset=0, mail_from=ALICE,
                      recipients=["bob@r.test"], account_id=None, smtputf8=False,
                      body_8bit=False)
    sender.start()
    remote.wait_for(lambda: len(remote.messages) >= 50)
    assert sender.stop() == 0  # SIGTERM: deliveries in flight finish
    delivered_before = len(remote.messages)
    assert delivered_before < count, "the queue drained before the restart; make it bigger"
    sender.start()
    wait_until(lambda: queue_empty(sender), timeout=120, what="the queue to drain")
    ids = remote.message_ids()
    assert len(ids) == count and len(set(ids)) == count
    assert sorted(ids) == sorted(f"<m{n}@a.test>" for n in range(count))
