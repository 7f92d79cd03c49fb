"""Postel A sends to Postel B on loopback, with a local DNS server: B's
Authentication-Results says spf, dkim and dmarc pass; forged From headers fail DMARC and
are rejected or quarantined per the domain's policy; a DNS failure answers 451."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable

import dkim as dkimpy
import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_outbound_support import DnsFixture, dns_server, wait_until

__all__ = ["dns_server"]

ALICE, BOB = "alice@a.test", "bob@b.test"


def mailbox(server: PostelServer, email: str, name: str) -> list[bytes]:
    account = server.store.directory.get_account(email)
    assert account is not None
    box = server.store.mail.get_mailbox(account.id, name)
    assert box is not None
    return [server.store.blobs.path(m.blob_sha256).read_bytes()
            for m in server.store.mail.list_messages(box.id)]


def our_results(message: bytes) -> list[str]:
    """Every Authentication-Results value claiming B's authserv-id, unfolded."""
    header_section = message.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header_section)
    return [line.partition(":")[2].strip() for line in unfolded.split("\r\n")
            if line.lower().startswith("authentication-results:")
            and line.partition(":")[2].strip().lower().startswith("mail.example.test;")]


@pytest.fixture
def receiving(make_postel: Callable[..., PostelServer], dns_server: DnsFixture) -> PostelServer:
    """Postel B: hosts b.test and checks every client (no trusted networks)."""
    server = make_postel("b", extra_config=dns_server.config
                         + '[mailauth]\ntrusted_networks = []\ndmarc_policy = "reject"\n')
    server.add_user(BOB)
    server.start()
    zone = dns_server.zone
    zone.add("b.test", "MX", "10 mx.b.test.")
    zone.add("mx.b.test", "A", "127.0.0.1")
    zone.add("a.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
    zone.add("mail.example.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")  # both HELO names
    zone.add("_dmarc.a.test", "TXT", "v=DMARC1; p=reject")
    return server


def test_a_to_b_passes_spf_dkim_and_dmarc(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture,
    receiving: PostelServer,
) -> None:
    outbound = f"[outbound]\nmx_port = {receiving.port('smtp')}\npoll_interval = 0.05\n"
    sender = make_postel("a", extra_config=dns_server.config + outbound)
    sender.add_user(ALICE)
    generated = sender.cli("dkim", "generate", "a.test", "--selector", "s1")
    assert generated.returncode == 0, generated.stderr
    name, _, quoted = generated.stdout.strip().splitlines()[-1].partition(" IN TXT ")
    assert name == "s1._domainkey.a.test."
    record = "".join(re.findall(r'"([^"]*)"', quoted))
    dns_server.zone.add("s1._domainkey.a.test", "TXT", record)
    sender.start()

    with smtplib.SMTP("127.0.0.1", sender.port("submission"), timeout=30) as client:
        client.starttls(context=sender.client_tls())
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [BOB], (
            f"From: Alice <{ALICE}>\r\nTo: {BOB}\r\nSubject: signed\r\n"
            "Message-ID: <signed@a.test>\r\n\r\nHello Bob.\r\n"
        ).encode())
    wait_until(lambda: len(mailbox(receiving, BOB, "INBOX")) == 1, what="delivery to B")
    stored = mailbox(receiving, BOB, "INBOX")[0]
    assert stored.startswith(b"Return-Path: <alice@a.test>\r\nReceived: from mail.example.test")
    [results] = our_results(stored)
    assert "spf=pass smtp.mailfrom=alice@a.test" in results
    assert "spf=pass smtp.helo=mail.example.test" in results
    assert "dkim=pass header.d=a.test header.s=s1" in results
    assert "dmarc=pass header.from=a.test" in results
    # An independent verifier agrees with the signature A made.
    assert dkimpy.verify(stored, dnsfunc=lambda name, timeout=5: record.encode())
    # B stores the message before it answers 250, and A removes the queue row only when
    # that answer arrives: wait for the row to go rather than race the two processes.
    wait_until(lambda: sender.store.queue.list_all() == [], what="A's queue to empty")


def forged(receiving: PostelServer, mail_from: str, author: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", receiving.port("smtp"), timeout=30) as client:
        client.ehlo("mail.evil.test")
        client.sendmail(mail_from, [BOB], (
            "Authentication-Results: mail.example.test; dmarc=pass header.from=a.test\r\n"
            f"From: {author}\r\nTo: {BOB}\r\nSubject: {subject}\r\n\r\nPay now.\r\n"
        ).encode())


def test_forged_from_is_rejected_under_p_reject(
    dns_server: DnsFixture, receiving: PostelServer
) -> None:
    dns_server.zone.add("evil.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")  # SPF passes
    with pytest.raises(smtplib.SMTPDataError) as refused:
        forged(receiving, "x@evil.test", "CEO <ceo@a.test>", "urgent")
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.7.1 DMARC policy of a.test (reject)")
    assert mailbox(receiving, BOB, "INBOX") == [] and mailbox(receiving, BOB, "Junk") == []


def test_forged_from_is_quarantined_under_p_quarantine(
    dns_server: DnsFixture, receiving: PostelServer
) -> None:
    dns_server.zone.add("evil.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.zone.add("_dmarc.q.test", "TXT", "v=DMARC1; p=quarantine")
    forged(receiving, "x@evil.test", "boss@q.test", "invoice")
    assert mailbox(receiving, BOB, "INBOX") == []
    [junk] = mailbox(receiving, BOB, "Junk")
    # The forged "dmarc=pass" for our authserv-id is gone; ours says fail.
    [results] = our_results(junk)
    assert "dmarc=fail" in results and "policy.dmarc=quarantine" in results
    assert "spf=pass smtp.mailfrom=x@evil.test" in results and "dkim=none" in results


def test_dns_failure_answers_451(dns_server: DnsFixture, receiving: PostelServer) -> None:
    dns_server.zone.failing.update({"flaky.test", "_dmarc.flaky.test"})
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        forged(receiving, "x@flaky.test", "someone@flaky.test", "later")
    assert deferred.value.smtp_code == 451
    assert mailbox(receiving, BOB, "INBOX") == []
    # The server is fine afterwards: the same mail goes through once DNS answers.
    dns_server.zone.failing.clear()
    forged(receiving, "x@flaky.test", "someone@flaky.test", "now")
    assert len(mailbox(receiving, BOB, "INBOX")) == 1
