"""The queue and BODY=BINARYMIME (RFC 3030): a binary message goes on by BDAT with
BODY=BINARYMIME, octet for octet, to a next hop offering BINARYMIME and CHUNKING; to one
that does not, it is not converted but bounced with 5.6.3 (RFC 3463 3.6 "conversion
required but not supported"), as an 8BITMIME message is to a hop without 8BITMIME
(RFC 6152 3), unless it is 7-bit in fact. One sender, three scripted next hops
(test_outbound_support)."""

from __future__ import annotations

import email
import email.policy
import smtplib
from collections.abc import Callable

from tests.harness import PASSWORD, PostelServer
from tests.integration.smtp_helpers import dsn_report
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

PART = b"\x00bin\rary\n.\r\n\xff\r"
MESSAGE = (
    b"From: <alice@a.test>\r\nSubject: binary out\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
    b"\r\n" + PART
)
EIGHT_BIT = b"From: <alice@a.test>\r\nSubject: 8bit\r\n\r\ncaf\xc3\xa9\r\n"
SEVEN_BIT = b"From: <alice@a.test>\r\nSubject: ascii\r\n\r\ncafe\r\n"
BASE = ("SIZE 100000000", "PIPELINING", "ENHANCEDSTATUSCODES")


def submit_binary(client: smtplib.SMTP, rcpt: str, *mail_options: str) -> None:
    options = " ".join(("BODY=BINARYMIME", *mail_options))
    assert client.docmd("MAIL", f"FROM:<{ALICE}> {options}")[0] == 250
    assert client.docmd("RCPT", f"TO:<{rcpt}>")[0] == 250
    client.send(b"BDAT %d LAST\r\n" % len(MESSAGE) + MESSAGE)
    assert client.getreply()[0] == 250


def test_binary_and_8bit_messages_to_hops_with_and_without_support(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "bin.test", "127.0.0.2")
    route(dns_server, "plain.test", "127.0.0.3")
    route(dns_server, "seven.test", "127.0.0.4")
    binary_hop = receivers("127.0.0.2", port,
                           extensions=(*BASE, "8BITMIME", "CHUNKING", "BINARYMIME"))
    # CHUNKING alone is not enough: BDAT without BINARYMIME is text (RFC 3030 2).
    plain_hop = receivers("127.0.0.3", port, extensions=(*BASE, "8BITMIME", "CHUNKING"))
    seven_hop = receivers("127.0.0.4", port, extensions=BASE)
    sender = start_sender(make_postel, dns_server, port)
    with smtplib.SMTP("127.0.0.1", sender.port("submission"), timeout=30) as client:
        client.starttls(context=sender.client_tls())
        client.login(ALICE, PASSWORD)
        submit_binary(client, "bob@bin.test")
        submit_binary(client, "bob@plain.test", "RET=FULL")
        client.sendmail(ALICE, ["bob@seven.test"], EIGHT_BIT, mail_options=["BODY=8BITMIME"])
        # Declared 8BITMIME but 7-bit in fact: it may go, without the BODY parameter.
        client.sendmail(ALICE, ["carol@seven.test"], SEVEN_BIT, mail_options=["BODY=8BITMIME"])
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 2, what="DSNs")

    [sent] = binary_hop.messages
    assert "BODY=BINARYMIME" in sent.mail_params.split()
    assert sent.data.startswith(b"Received: ") and sent.data.endswith(MESSAGE)
    assert any(c.startswith("BDAT") for c in binary_hop.commands)
    assert not any(c.upper() == "DATA" for c in binary_hop.commands)
    # Neither hop without support was given the binary or the 8-bit message, in any form.
    assert plain_hop.messages == [] and not any(c.startswith("MAIL") for c in plain_hop.commands)
    [ascii_only] = seven_hop.messages
    assert ascii_only.recipients == ["carol@seven.test"]
    assert ascii_only.mail_params == f"SIZE={len(ascii_only.data)}"  # no BODY=8BITMIME
    assert ascii_only.data.endswith(SEVEN_BIT)

    reports = {}
    for raw in sender.inbox(ALICE):
        dsn, groups = dsn_report(raw)
        [recipient] = groups[1:]
        reports[recipient["Final-Recipient"]] = (dsn, recipient)
    for rcpt in ("bob@plain.test", "bob@seven.test"):
        dsn, recipient = reports[f"rfc822; {rcpt}"]
        assert recipient["Action"] == "failed" and recipient["Status"] == "5.6.3"
    # RET=FULL of a binary original returns its headers only: the DSN stays text.
    dsn, _ = reports["rfc822; bob@plain.test"]
    types = [part.get_content_type() for part in dsn.walk()]
    assert "text/rfc822-headers" in types and "message/rfc822" not in types
    raw_dsn = next(r for r in sender.inbox(ALICE) if b"bob@plain.test" in r)
    assert b"\0" not in raw_dsn and b"Subject: binary out" in raw_dsn
    assert email.message_from_bytes(raw_dsn, policy=email.policy.default) is not None
