"""The DNS records a domain should publish, and the check that compares them with DNS
(an in-memory resolver: no network)."""

from __future__ import annotations

import asyncio
from typing import Any

from postel.autoconfig.dnscheck import Checked, Status, check_all, compare
from postel.autoconfig.dnsrecords import DnsRecord, DomainDns, Match, domain_dns
from postel.autoconfig.settings import mail_settings
from postel.config import parse_config
from postel.mailauth.dns import FakeResolver

DKIM = ("postel202501", "v=DKIM1; k=rsa; p=" + "A" * 400)


def records(dkim: list[tuple[str, str]] | None = None, **raw: Any) -> DomainDns:
    config = parse_config({"hostname": "mail.example.test", **raw})
    return domain_dns(config, mail_settings(config), "example.test", dkim or [])


def by_name(dns: DomainDns) -> dict[tuple[str, str], DnsRecord]:
    return {(r.name, r.rtype): r for r in dns.records}


def test_every_record_a_domain_needs() -> None:
    dns = by_name(records([DKIM], autoconfig={"mta_sts_mode": "enforce"}))
    assert dns["example.test", "MX"].value == "10 mail.example.test."
    assert dns["example.test", "TXT"].value == "v=spf1 mx ~all"
    assert dns["postel202501._domainkey.example.test", "TXT"].value == DKIM[1]
    assert dns["_dmarc.example.test", "TXT"].value.startswith("v=DMARC1; p=")
    assert dns["_mta-sts.example.test", "TXT"].value.startswith("v=STSv1; id=")
    assert dns["mta-sts.example.test", "CNAME"].value == "mail.example.test."
    assert dns["_smtp._tls.example.test", "TXT"].value.startswith("v=TLSRPTv1; rua=")
    assert dns["autoconfig.example.test", "CNAME"].value == "mail.example.test."
    assert dns["autodiscover.example.test", "CNAME"].value == "mail.example.test."
    srv = {name.split(".")[0]: r.value for (name, rtype), r in dns.items() if rtype == "SRV"}
    assert srv == {
        "_imaps": "0 1 993 mail.example.test.", "_imap": "1 1 143 mail.example.test.",
        "_pop3s": "0 1 995 mail.example.test.", "_pop3": "1 1 110 mail.example.test.",
        "_submission": "0 1 587 mail.example.test.",
        "_submissions": "1 1 465 mail.example.test.",
        "_autodiscover": "0 1 443 mail.example.test.",
    }


def test_records_follow_the_config() -> None:
    dns = records(hostname="mx.other.test",
                  listen={"pop3": "", "pop3s": "", "imaps": "0.0.0.0:1993", "smtp": ""})
    found = by_name(dns)
    assert found["example.test", "MX"].value == "10 mx.other.test."
    assert found["_imaps._tcp.example.test", "SRV"].value == "0 1 1993 mx.other.test."
    # RFC 6186 4: a disabled service is published with the target ".".
    assert found["_pop3._tcp.example.test", "SRV"].value == "0 0 0 ."
    assert found["_pop3s._tcp.example.test", "SRV"].value == "0 0 0 ."
    assert any("port 25" in note for note in dns.notes)
    # MTA-STS is off by default: no records, and a note on how to turn it on.
    assert ("_mta-sts.example.test", "TXT") not in found
    assert any("mta_sts_mode" in note for note in dns.notes)


def test_without_dkim_key_the_page_says_how_to_make_one() -> None:
    dns = records()
    [dkim] = [r for r in dns.records if "_domainkey" in r.name]
    assert dkim.match is Match.NONE and not dkim.value
    assert "postel dkim generate example.test" in dkim.placeholder
    assert "postel dkim generate example.test" in dns.zone()


def test_zone_lines_split_long_txt_strings() -> None:
    long_key = ("sel", "v=DKIM1; k=rsa; p=" + "B" * 600)
    zone = records([long_key]).zone()
    [line] = [line for line in zone.splitlines() if line.startswith("sel._domainkey")]
    strings = line.split(" IN TXT ", 1)[1].strip().split('" "')
    assert len(strings) == 3
    assert all(len(s.strip('"')) <= 255 for s in strings)
    assert "".join(s.strip('"') for s in strings) == long_key[1]


def run_check(dns: DomainDns, resolver: FakeResolver) -> dict[tuple[str, str], Checked]:
    results = asyncio.run(check_all(dns.records, resolver))
    return {(c.record.name, c.record.rtype): c for c in results}


def test_check_marks_found_missing_different_and_unknown() -> None:
    dns = records([DKIM])
    resolver = FakeResolver()
    resolver.add("example.test", "MX", "10 mail.example.test")
    resolver.add("example.test", "TXT", "v=spf1 ip4:192.0.2.1 -all")  # different
    resolver.add("example.test", "TXT", "google-site-verification=abc")  # not SPF: ignored
    resolver.add("mail.example.test", "A", "192.0.2.10")
    # DKIM published in two strings with different spacing still matches.
    resolver.add(f"{DKIM[0]}._domainkey.example.test", "TXT",
                 DKIM[1].replace("; ", ";").replace("p=", "p = "))
    resolver.add("autoconfig.example.test", "CNAME", "mail.example.test")
    resolver.add("autodiscover.example.test", "A", "192.0.2.10")  # same address: fine
    resolver.add("_imaps._tcp.example.test", "SRV", "0 1 993 mail.example.test")
    resolver.add("_imap._tcp.example.test", "SRV", "0 1 143 mail.example.test")  # priority
    resolver.fail("_dmarc.example.test")
    found = run_check(dns, resolver)
    status = {key: c.status for key, c in found.items()}
    assert status["example.test", "MX"] is Status.FOUND
    assert status["mail.example.test", "A"] is Status.FOUND
    assert status["example.test", "TXT"] is Status.DIFFERENT
    assert found["example.test", "TXT"].seen == ("v=spf1 ip4:192.0.2.1 -all",
                                                 "google-site-verification=abc")
    assert status[f"{DKIM[0]}._domainkey.example.test", "TXT"] is Status.FOUND
    assert status["autoconfig.example.test", "CNAME"] is Status.FOUND
    assert status["autodiscover.example.test", "CNAME"] is Status.FOUND
    assert status["_imaps._tcp.example.test", "SRV"] is Status.FOUND
    assert status["_imap._tcp.example.test", "SRV"] is Status.DIFFERENT
    assert status["_pop3._tcp.example.test", "SRV"] is Status.MISSING
    assert status["_dmarc.example.test", "TXT"] is Status.UNKNOWN
    assert "SERVFAIL" in found["_dmarc.example.test", "TXT"].detail


def test_check_other_mx_and_two_spf_records() -> None:
    dns = records()
    resolver = FakeResolver()
    resolver.add("example.test", "MX", "10 mx.elsewhere.test")
    resolver.add("example.test", "TXT", "v=spf1 mx ~all")
    resolver.add("example.test", "TXT", "v=spf1 -all")
    resolver.add("autoconfig.example.test", "CNAME", "www.example.test")
    resolver.add("autodiscover.example.test", "A", "198.51.100.7")
    resolver.add("mail.example.test", "A", "192.0.2.10")
    status = {k: c.status for k, c in run_check(dns, resolver).items()}
    assert status["example.test", "MX"] is Status.DIFFERENT
    # Two SPF records are a permanent error for receivers (RFC 7208 3.2).
    assert status["example.test", "TXT"] is Status.DIFFERENT
    assert status["autoconfig.example.test", "CNAME"] is Status.DIFFERENT
    assert status["autodiscover.example.test", "CNAME"] is Status.DIFFERENT
    assert status["SELECTOR._domainkey.example.test", "TXT"] is Status.SKIPPED


def test_compare_tag_records_ignore_order_and_spacing() -> None:
    [dmarc] = [r for r in records().records if r.name == "_dmarc.example.test"]
    reordered = "v=DMARC1;rua=mailto:postmaster@example.test;  p=quarantine"
    assert compare(dmarc, [reordered]) is Status.FOUND
    assert compare(dmarc, ["v=DMARC1; p=none"]) is Status.DIFFERENT
    assert compare(dmarc, ["v=DMARC10; p=quarantine"]) is Status.MISSING
    assert compare(dmarc, []) is Status.MISSING
