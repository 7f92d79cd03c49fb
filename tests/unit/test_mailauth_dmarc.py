"""DMARC (RFC 7489): policy discovery, alignment, pct, and the inbound decision."""

from __future__ import annotations

import asyncio
from pathlib import Path

from postel.config import MailauthConfig
from postel.mailauth import dkim
from postel.mailauth.authresults import claims_authserv_id, copy_without_forgeries
from postel.mailauth.dkim import DkimResult, DkimVerdict, SigningKey
from postel.mailauth.dmarc import (
    Disposition,
    DmarcResult,
    evaluate,
    organizational_domain,
    parse_record,
)
from postel.mailauth.dns import FakeResolver
from postel.mailauth.inbound import Action, check_inbound
from postel.mailauth.spf import SpfResult, SpfVerdict

SPF_PASS = SpfVerdict(SpfResult.PASS, "a.test")
SPF_FAIL = SpfVerdict(SpfResult.FAIL, "a.test")


def dkim_pass(domain: str) -> DkimVerdict:
    return DkimVerdict(DkimResult.PASS, domain, "sel", "abc")


def run_evaluate(resolver: FakeResolver, from_domain: str, spf: SpfVerdict, spf_domain: str,
                 dkims: list[DkimVerdict], sample: float = 0.0) -> tuple[DmarcResult, str]:
    verdict = asyncio.run(
        evaluate(resolver, [from_domain], spf, spf_domain, dkims, sample=sample)
    )
    return verdict.result, verdict.disposition.value


def policy(record: str, name: str = "_dmarc.a.test") -> FakeResolver:
    resolver = FakeResolver()
    resolver.add(name, "TXT", record)
    return resolver


def test_organizational_domain() -> None:
    assert organizational_domain("mail.sub.a.test") == "a.test"
    assert organizational_domain("a.test") == "a.test"
    assert organizational_domain("x.example.co.uk") == "example.co.uk"


def test_record_parsing() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=none; adkim=s; pct=50")
    assert record is not None
    assert record.policy is Disposition.REJECT and record.subdomain_policy is Disposition.NONE
    assert record.adkim == "s" and record.aspf == "r" and record.pct == 50
    assert parse_record("v=spf1 -all") is None
    assert parse_record("v=DMARC1; p=bogus") is None


def test_aligned_spf_or_dkim_passes() -> None:
    resolver = policy("v=DMARC1; p=reject")
    assert run_evaluate(resolver, "a.test", SPF_PASS, "a.test", [])[0] is DmarcResult.PASS
    # Relaxed alignment: a subdomain of the same organizational domain aligns.
    assert run_evaluate(resolver, "a.test", SPF_PASS, "bounce.a.test", [])[0] is (
        DmarcResult.PASS
    )
    assert run_evaluate(resolver, "a.test", SPF_FAIL, "a.test", [dkim_pass("a.test")])[0] is (
        DmarcResult.PASS
    )


def test_unaligned_passes_fail_with_the_policy() -> None:
    resolver = policy("v=DMARC1; p=reject")
    result, disposition = run_evaluate(
        resolver, "a.test", SpfVerdict(SpfResult.PASS, "evil.test"), "evil.test",
        [dkim_pass("evil.test")],
    )
    assert (result, disposition) == (DmarcResult.FAIL, "reject")


def test_strict_alignment() -> None:
    resolver = policy("v=DMARC1; p=quarantine; aspf=s; adkim=s")
    result, disposition = run_evaluate(
        resolver, "a.test", SPF_PASS, "bounce.a.test", [dkim_pass("mail.a.test")]
    )
    assert (result, disposition) == (DmarcResult.FAIL, "quarantine")


def test_subdomain_policy_and_pct() -> None:
    resolver = policy("v=DMARC1; p=reject; sp=quarantine; pct=20")
    assert run_evaluate(resolver, "x.a.test", SPF_FAIL, "x.a.test", [], sample=0.0) == (
        DmarcResult.FAIL, "quarantine"
    )
    # Outside the sampled percentage the next weaker policy applies (RFC 7489 6.6.4).
    assert run_evaluate(resolver, "a.test", SPF_FAIL, "a.test", [], sample=50.0) == (
        DmarcResult.FAIL, "quarantine"
    )
    assert run_evaluate(resolver, "a.test", SPF_FAIL, "a.test", [], sample=10.0) == (
        DmarcResult.FAIL, "reject"
    )


def test_no_policy_and_dns_failure() -> None:
    assert run_evaluate(FakeResolver(), "a.test", SPF_FAIL, "a.test", [])[0] is DmarcResult.NONE
    failing = FakeResolver()
    failing.fail("_dmarc.a.test")
    assert run_evaluate(failing, "a.test", SPF_PASS, "a.test", [])[0] is DmarcResult.TEMPERROR


def test_several_from_domains_are_permerror() -> None:
    verdict = asyncio.run(
        evaluate(policy("v=DMARC1; p=reject"), ["a.test", "b.test"], SPF_PASS, "a.test", [])
    )
    assert verdict.result is DmarcResult.PERMERROR


# -- Authentication-Results and the inbound decision -----------------------------------


def test_forged_results_for_our_id_are_removed(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(
        b"Authentication-Results: mx.b.test; dkim=pass\r\n"
        b"Authentication-Results: (comment) MX.B.TEST;\r\n\tspf=pass\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"Subject: x\r\n\r\nAuthentication-Results: mx.b.test; in the body stays\r\n"
    )
    out = bytearray()
    with source.open("rb") as handle:
        removed = copy_without_forgeries(handle, out.extend, "mx.b.test")
    assert removed == 2
    assert bytes(out) == (
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"Subject: x\r\n\r\nAuthentication-Results: mx.b.test; in the body stays\r\n"
    )
    assert not claims_authserv_id("mx.b.test.evil; x", "mx.b.test")


def inbound(resolver: FakeResolver, path: Path, *, ip: str = "192.0.2.1",
            mail_from: str = "alice@a.test", config: MailauthConfig | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(
        check_inbound(
            resolver, config or MailauthConfig(), "mx.b.test", path,
            ip=ip, helo="mail.a.test", mail_from=mail_from,
        )
    )


def test_inbound_pass_and_header(tmp_path: Path) -> None:
    key = dkim.generate_key("ed25519-sha256")
    resolver = FakeResolver()
    resolver.add("a.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    resolver.add("mail.a.test", "TXT", "v=spf1 a -all")
    resolver.add("mail.a.test", "A", "192.0.2.1")
    resolver.add("_dmarc.a.test", "TXT", "v=DMARC1; p=reject")
    resolver.add("k._domainkey.a.test", "TXT", dkim.dns_record(key))
    message = b"From: Alice <alice@a.test>\r\nSubject: hi\r\n\r\nhello\r\n"
    path = tmp_path / "m"
    path.write_bytes(message)
    signature = dkim.sign(path, SigningKey("a.test", "k", "ed25519-sha256", key))
    path.write_bytes(signature + message)
    verdict = inbound(resolver, path)
    assert verdict.action is Action.ACCEPT
    header = verdict.header.decode()
    assert header.startswith("Authentication-Results: mx.b.test;\r\n\t")
    assert "spf=pass smtp.mailfrom=alice@a.test" in header
    assert "spf=pass smtp.helo=mail.a.test" in header
    assert "dkim=pass header.d=a.test header.s=k" in header
    assert "dmarc=pass" in header and "header.from=a.test" in header


def test_inbound_forged_from_is_rejected_or_quarantined(tmp_path: Path) -> None:
    resolver = FakeResolver()
    resolver.add("evil.test", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    resolver.add("_dmarc.a.test", "TXT", "v=DMARC1; p=reject")
    path = tmp_path / "m"
    path.write_bytes(b"From: ceo@a.test\r\nSubject: pay\r\n\r\nnow\r\n")
    verdict = inbound(resolver, path, mail_from="x@evil.test")
    assert verdict.action is Action.REJECT
    assert b"dmarc=fail" in verdict.header and b"spf=pass" in verdict.header
    verdict = inbound(resolver, path, mail_from="x@evil.test",
                      config=MailauthConfig(dmarc_policy="quarantine"))
    assert verdict.action is Action.QUARANTINE
    verdict = inbound(resolver, path, mail_from="x@evil.test",
                      config=MailauthConfig(dmarc_policy="none"))
    assert verdict.action is Action.ACCEPT and b"dmarc=fail" in verdict.header


def test_inbound_dns_failure_defers_and_trusted_networks_skip(tmp_path: Path) -> None:
    resolver = FakeResolver()
    resolver.fail("_dmarc.a.test")
    resolver.fail("a.test")
    path = tmp_path / "m"
    path.write_bytes(b"From: alice@a.test\r\n\r\nx\r\n")
    verdict = inbound(resolver, path)
    assert verdict.action is Action.DEFER
    assert b"spf=temperror" in verdict.header and b"dmarc=temperror" in verdict.header
    trusted = inbound(resolver, path, ip="127.0.0.1")
    assert trusted.action is Action.ACCEPT and trusted.header == b""
    assert resolver.queries.count(("a.test", "TXT")) == 1  # none for the trusted client
