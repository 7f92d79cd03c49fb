"""REQUIRETLS (RFC 8689): offered and accepted only over TLS (25 after STARTTLS, 587,
465; smtplib), kept with the queue row, and then relayed only over verified TLS to a
server that offers REQUIRETLS (a second Postel as smarthost or as MX), else bounced with
5.7.30 (a scripted plaintext receiver); an MX must also come from a DNSSEC-validated MX
answer and hold a certificate for its own name (RFC 8689 4.2.1)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.smtp_helpers import RawSmtp, dsn_report
from tests.integration.test_outbound_delivery import ALICE, queue_empty, route, start_sender
from tests.integration.test_outbound_smarthost import start_pair
from tests.integration.test_outbound_support import (
    DnsFixture,
    Receiver,
    dns_server,
    receivers,
    unused_port,
    wait_until,
)

__all__ = ["dns_server", "receivers"]  # fixtures used by name below

MESSAGE = b"From: alice@example.test\r\nSubject: secret\r\n\r\nHello.\r\n"


@pytest.mark.parametrize("port_name", ["smtp", "submission", "submissions"])
def test_requiretls_is_offered_only_over_tls(postel: PostelServer, port_name: str) -> None:
    if port_name == "submissions":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            "127.0.0.1", postel.port(port_name), context=postel.client_tls())
        client.ehlo()
    else:
        client = smtplib.SMTP("127.0.0.1", postel.port(port_name))
        client.ehlo()
        assert not client.has_extn("requiretls")
        client.starttls(context=postel.client_tls())
        client.ehlo()
    with client:
        assert client.has_extn("requiretls")
        if port_name != "smtp":
            client.login("alice@example.test", PASSWORD)
        before = len(postel.inbox("bob@example.test"))
        client.sendmail("alice@example.test", ["bob@example.test"], MESSAGE,
                        mail_options=["REQUIRETLS"])
    assert len(postel.inbox("bob@example.test")) == before + 1


def test_requiretls_without_tls_is_refused(postel: PostelServer) -> None:
    raw = RawSmtp(postel.port("smtp"))
    raw.command("EHLO client.test")
    code, text = raw.command("MAIL FROM:<a@remote.test> REQUIRETLS")
    assert (code, text) == (530, "5.7.10 REQUIRETLS needs TLS")
    assert raw.command("MAIL FROM:<a@remote.test> REQUIRETLS=yes")[0] == 501
    assert raw.command("MAIL FROM:<a@remote.test>")[0] == 250  # the session goes on
    raw.close()


def _submit(server: PostelServer, to: str, sender: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as client:
        client.starttls(context=server.client_tls())
        client.login(sender, PASSWORD)
        client.sendmail(sender, [to], f"From: {sender}\r\nSubject: {subject}\r\n\r\nhi\r\n"
                        .encode(), mail_options=["REQUIRETLS"])


def test_a_next_hop_without_tls_gets_nothing_and_the_sender_a_5_7_30_dsn(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receivers: Callable[..., Receiver],
) -> None:
    port = unused_port()
    route(dns_server, "r.test", "127.0.0.2")
    remote = receivers("127.0.0.2", port)  # plaintext, no REQUIRETLS
    sender = start_sender(make_postel, dns_server, port)
    _submit(sender, "bob@r.test", ALICE, "must not travel in clear")
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 1, what="DSN")
    assert remote.messages == [] and not any(c.startswith("MAIL") for c in remote.commands)
    _, groups = dsn_report(sender.inbox(ALICE)[0])
    assert groups[1]["Status"] == "5.7.30" and groups[1]["Action"] == "failed"


def test_verified_tls_to_a_requiretls_server_delivers(
    make_postel: Callable[..., PostelServer],
) -> None:
    sender, smarthost = start_pair(make_postel, port_name="submission", mode="starttls",
                                   trust=True)
    _submit(sender, "bob@b.test", "alice@a.test", "over verified TLS")
    wait_until(lambda: len(smarthost.inbox("bob@b.test")) == 1, what="relayed mail")
    assert b"Subject: over verified TLS" in smarthost.inbox("bob@b.test")[0]
    wait_until(lambda: sender.store.queue.list_all() == [], what="queue emptied")
    assert sender.inbox("alice@a.test") == []


def test_the_mx_must_be_dnssec_validated_and_its_certificate_match_its_name(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 8689 4.2.1 with a real TLS next hop: a second Postel, whose self-signed
    certificate (for mail.example.test) the sender trusts through SSL_CERT_FILE. It is
    the MX of every domain here, under its own name or under mx.w.test, a name its
    certificate does not carry. The loopback DNS server sets the AD bit for the signed
    domains, as a validating resolver would."""
    receiver = make_postel("receiver")
    for domain in ("r.test", "w.test", "m.test", "u.test"):
        receiver.add_user(f"bob@{domain}")
    receiver.start()
    zone = dns_server.zone
    zone.add("mail.example.test", "A", "127.0.0.1")
    zone.add("mx.w.test", "A", "127.0.0.1")
    for domain, exchangers in [("r.test", ["10 mail.example.test."]),
                               ("w.test", ["10 mx.w.test."]),
                               ("m.test", ["10 mx.w.test.", "20 mail.example.test."]),
                               ("u.test", ["10 mail.example.test."])]:
        for exchanger in exchangers:
            zone.add(domain, "MX", exchanger)
    zone.validated |= {"r.test", "w.test", "m.test"}  # u.test: not signed
    monkeypatch.setenv("SSL_CERT_FILE", str(receiver.cert_path))
    sender = start_sender(make_postel, dns_server, receiver.port("smtp"))
    for domain in ("r.test", "w.test", "m.test", "u.test"):
        _submit(sender, f"bob@{domain}", ALICE, f"secret for {domain}")
    wait_until(lambda: queue_empty(sender) and len(sender.inbox(ALICE)) == 2, what="DSNs")
    # Validated MX, certificate for its name: delivered; m.test after skipping mx.w.test.
    assert len(receiver.inbox("bob@r.test")) == 1 and len(receiver.inbox("bob@m.test")) == 1
    # mx.w.test's certificate does not name it; u.test's MX answer is not validated.
    assert receiver.inbox("bob@w.test") == [] and receiver.inbox("bob@u.test") == []
    reports = {}
    for raw in sender.inbox(ALICE):
        _, groups = dsn_report(raw)
        reports[groups[1]["Final-Recipient"]] = groups[1]
    assert {k: (g["Status"], g["Action"]) for k, g in reports.items()} == {
        "rfc822; bob@w.test": ("5.7.30", "failed"), "rfc822; bob@u.test": ("5.7.30", "failed")}
    assert "did not verify" in reports["rfc822; bob@w.test"]["Diagnostic-Code"]
    assert "DNSSEC" in reports["rfc822; bob@u.test"]["Diagnostic-Code"]
