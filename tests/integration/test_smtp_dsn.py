"""DSN (RFC 3461) end to end: the parameters on 25, 587 (STARTTLS) and 465 with smtplib
(mail_options / rcpt_options), success DSNs for local delivery, and the queue: NOTIFY,
ORCPT, ENVID and RET in its DSNs, passed on to a next hop that offers DSN, "relayed" to
one that does not. The next hops are the scripted receivers of test_outbound_support."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.smtp_helpers import RawSmtp, connect, dsn_report
from tests.integration.test_outbound_delivery import ALICE, queue_empty, route, start_sender
from tests.integration.test_outbound_support import (
    DnsFixture,
    Receiver,
    dns_server,
    receivers,
    unused_port,
    wait_until,
)

__all__ = ["dns_server", "receivers"]  # fixtures used by name below

MESSAGE = b"From: alice@example.test\r\nSubject: dsn test\r\n\r\nHello.\r\n"
DSN_RECEIVER = ("8BITMIME", "SMTPUTF8", "SIZE 100000000", "PIPELINING", "DSN")


@pytest.mark.parametrize("port_name", ["smtp", "submission", "submissions"])
def test_dsn_is_offered_and_its_parameters_accepted(postel: PostelServer, port_name: str) -> None:
    before = len(postel.inbox("bob@example.test"))
    login = None if port_name == "smtp" else "alice@example.test"
    with connect(postel, port_name, login=login) as client:
        assert client.has_extn("dsn")
        client.sendmail(
            "alice@example.test", ["bob@example.test"], MESSAGE,
            mail_options=["RET=HDRS", "ENVID=QQ+2B1"],
            rcpt_options=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;bob@example.test"],
        )
    assert len(postel.inbox("bob@example.test")) == before + 1


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("MAIL FROM:<a@remote.test> RET=ALL", 501),
        ("MAIL FROM:<a@remote.test> ENVID=a+zz", 501),
        ("RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS", 501),
        ("RCPT TO:<bob@example.test> NOTIFY=SOMETIMES", 501),
        ("RCPT TO:<bob@example.test> ORCPT=bob@example.test", 501),
        ("RCPT TO:<bob@example.test> XYZ=1", 555),
    ],
)
def test_bad_dsn_syntax_is_5xx(postel: PostelServer, command: str, code: int) -> None:
    raw = RawSmtp(postel.port("smtp"))
    raw.command("EHLO client.test")
    if command.startswith("RCPT"):
        assert raw.command("MAIL FROM:<a@remote.test>")[0] == 250
    reply = raw.command(command)
    assert reply[0] == code and "Traceback" not in reply[1]
    assert raw.command("NOOP")[0] == 250  # the session goes on
    raw.close()


def test_notify_success_on_local_delivery_sends_a_delivered_dsn(postel: PostelServer) -> None:
    before = len(postel.inbox("alice@example.test"))
    with connect(postel, "submission", login="alice@example.test") as client:
        client.sendmail(
            "alice@example.test", ["bob@example.test"], MESSAGE,
            mail_options=["ENVID=env+2B42"],
            rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob+2Bx@example.test"],
        )
    inbox = postel.inbox("alice@example.test")
    assert len(inbox) == before + 1  # the DSN is stored before the 250
    dsn, groups = dsn_report(inbox[-1])
    assert dsn["Subject"] == "Successful Mail Delivery Report"
    assert groups[0]["Original-Envelope-Id"] == "env+42"
    assert groups[1]["Action"] == "delivered"
    assert groups[1]["Status"] == "2.0.0"
    assert groups[1]["Original-Recipient"] == "rfc822; Bob+x@example.test"
    assert groups[1]["Final-Recipient"] == "rfc822; bob@example.test"


def test_no_success_dsn_without_notify_success(postel: PostelServer) -> None:
    before = len(postel.inbox("alice@example.test"))
    with connect(postel, "submission", login="alice@example.test") as client:
        client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE,
                        rcpt_options=["NOTIFY=FAILURE"])
        client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
    assert len(postel.inbox("alice@example.test")) == before


def _submit(server: PostelServer, to: list[str], *, mail_options: list[str],
            rcpt_options: list[str], subject: str = "outbound dsn") -> None:
    message = (f"From: {ALICE}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n\r\n"
               "Hi there.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as client:
        client.starttls(context=server.client_tls())
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, to, message, mail_options=mail_options,
                        rcpt_options=rcpt_options)


def test_parameters_go_on_to_a_next_hop_that_offers_dsn(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers("127.0.0.2", port, extensions=DSN_RECEIVER)
    sender = start_sender(make_postel, dns_server, port)
    _submit(sender, ["bob@r.test"], mail_options=["RET=HDRS", "ENVID=a+2Bb"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b+3Do@r.test"])
    wait_until(lambda: len(remote.messages) == 1 and queue_empty(sender), what="delivery")
    mail = next(c for c in remote.commands if c.upper().startswith("MAIL"))
    rcpt = next(c for c in remote.commands if c.upper().startswith("RCPT"))
    assert "RET=HDRS" in mail.split() and "ENVID=a+2Bb" in mail.split()
    # xtext is re-encoded from the decoded value (RFC 3461 4: "=" must be encoded).
    assert "NOTIFY=FAILURE,SUCCESS" in rcpt.split() and "ORCPT=rfc822;b+3Do@r.test" in rcpt
    assert sender.inbox(ALICE) == []  # the next hop reports success itself


def test_relay_to_a_next_hop_without_dsn_sends_a_relayed_dsn(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers("127.0.0.2", port)  # no DSN offered
    sender = start_sender(make_postel, dns_server, port)
    _submit(sender, ["bob@r.test", "carol@r.test"], mail_options=["ENVID=relay1"],
            rcpt_options=["NOTIFY=SUCCESS"])
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 1, what="DSN")
    mail = next(c for c in remote.commands if c.upper().startswith("MAIL"))
    assert "ENVID" not in mail and not any("NOTIFY" in c for c in remote.commands)
    dsn, groups = dsn_report(sender.inbox(ALICE)[0])
    assert dsn["Subject"] == "Successful Mail Delivery Report"
    assert groups[0]["Original-Envelope-Id"] == "relay1"
    assert [g["Action"] for g in groups[1:]] == ["relayed", "relayed"]
    assert {g["Final-Recipient"] for g in groups[1:]} == {
        "rfc822; bob@r.test", "rfc822; carol@r.test"}


def test_failure_dsn_honours_notify_orcpt_and_ret(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    receivers("127.0.0.2", port, rcpt_reply=lambda a: "550 5.1.1 no such user")
    sender = start_sender(make_postel, dns_server, port)
    # NOTIFY=NEVER: no DSN at all.
    _submit(sender, ["nobody@r.test"], mail_options=[], rcpt_options=["NOTIFY=NEVER"],
            subject="never")
    wait_until(lambda: queue_empty(sender), what="the bounce")
    assert sender.inbox(ALICE) == []
    # RET=FULL: the whole message comes back; ORCPT is reported.
    _submit(sender, ["nobody@r.test"], mail_options=["RET=FULL", "ENVID=full1"],
            rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;nobody@r.test"], subject="full")
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 1, what="DSN")
    dsn, groups = dsn_report(sender.inbox(ALICE)[0])
    assert groups[0]["Original-Envelope-Id"] == "full1"
    assert groups[1]["Action"] == "failed"
    assert groups[1]["Original-Recipient"] == "rfc822; nobody@r.test"
    returned = next(p for p in dsn.walk() if p.get_content_type() == "message/rfc822")
    assert b"Hi there." in returned.as_bytes()
    # RET=HDRS: headers only.
    _submit(sender, ["nobody@r.test"], mail_options=["RET=HDRS"], rcpt_options=[],
            subject="hdrs")
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 2, what="DSN")
    dsn, _ = dsn_report(sender.inbox(ALICE)[1])
    types = [p.get_content_type() for p in dsn.walk()]
    assert "text/rfc822-headers" in types and "message/rfc822" not in types
