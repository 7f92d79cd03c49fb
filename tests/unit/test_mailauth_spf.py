"""SPF (RFC 7208) over the in-memory resolver: mechanisms, limits, macros, errors."""

from __future__ import annotations

import asyncio

import pytest

from postel.mailauth.dns import FakeResolver
from postel.mailauth.spf import SpfResult, check_host


def spf(resolver: FakeResolver, ip: str, domain: str = "a.test", sender: str = "") -> SpfResult:
    sender = sender or f"user@{domain}"
    return asyncio.run(check_host(resolver, ip, domain, sender, helo="mx.a.test")).result


def dns(**txt: str) -> FakeResolver:
    resolver = FakeResolver()
    for name, value in txt.items():
        resolver.add(name.replace("_", "."), "TXT", value)
    return resolver


def test_ip4_ip6_and_qualifiers() -> None:
    resolver = dns(a_test="v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~ip4:198.51.100.1 -all")
    assert spf(resolver, "192.0.2.77") is SpfResult.PASS
    assert spf(resolver, "2001:db8::5") is SpfResult.PASS
    assert spf(resolver, "::ffff:192.0.2.9") is SpfResult.PASS  # IPv4-mapped counts as IPv4
    assert spf(resolver, "198.51.100.1") is SpfResult.SOFTFAIL
    assert spf(resolver, "203.0.113.1") is SpfResult.FAIL


def test_no_record_is_none_and_two_records_are_permerror() -> None:
    assert spf(FakeResolver(), "192.0.2.1") is SpfResult.NONE
    resolver = dns(a_test="v=spf1 -all")
    resolver.add("a.test", "TXT", "v=spf1 +all")
    assert spf(resolver, "192.0.2.1") is SpfResult.PERMERROR
    # Other TXT records are not SPF records.
    assert spf(dns(a_test="google-site-verification=x"), "192.0.2.1") is SpfResult.NONE


def test_a_and_mx_with_cidr() -> None:
    resolver = dns(a_test="v=spf1 a/24 mx -all")
    resolver.add("a.test", "A", "192.0.2.10")
    resolver.add("a.test", "MX", "10 mx.a.test")
    resolver.add("mx.a.test", "A", "198.51.100.20")
    resolver.add("mx.a.test", "AAAA", "2001:db8::25")
    assert spf(resolver, "192.0.2.200") is SpfResult.PASS
    assert spf(resolver, "198.51.100.20") is SpfResult.PASS
    assert spf(resolver, "2001:db8::25") is SpfResult.PASS
    assert spf(resolver, "198.51.100.21") is SpfResult.FAIL


def test_include_and_redirect() -> None:
    resolver = dns(
        a_test="v=spf1 include:b.test -all",
        b_test="v=spf1 ip4:192.0.2.1 -all",
        c_test="v=spf1 redirect=b.test",
        d_test="v=spf1 include:nothing.test -all",
    )
    assert spf(resolver, "192.0.2.1") is SpfResult.PASS
    # include: a fail inside does not match; evaluation continues to -all.
    assert spf(resolver, "192.0.2.2") is SpfResult.FAIL
    assert spf(resolver, "192.0.2.1", "c.test") is SpfResult.PASS
    assert spf(resolver, "192.0.2.2", "c.test") is SpfResult.FAIL
    # include of a domain without SPF is a permanent error (RFC 7208 5.2).
    assert spf(resolver, "192.0.2.1", "d.test") is SpfResult.PERMERROR


def test_lookup_limit_and_loops_are_permerror() -> None:
    resolver = FakeResolver()
    for n in range(12):
        resolver.add(f"l{n}.test", "TXT", f"v=spf1 include:l{n + 1}.test -all")
    resolver.add("l12.test", "TXT", "v=spf1 +all")
    assert spf(resolver, "192.0.2.1", "l0.test") is SpfResult.PERMERROR
    looping = dns(x_test="v=spf1 include:x.test -all")
    assert spf(looping, "192.0.2.1", "x.test") is SpfResult.PERMERROR


def test_void_lookups_are_limited() -> None:
    resolver = dns(a_test="v=spf1 a:n1.a.test a:n2.a.test a:n3.a.test +all")
    assert spf(resolver, "192.0.2.1") is SpfResult.PERMERROR


def test_dns_failure_is_temperror() -> None:
    resolver = dns(a_test="v=spf1 include:broken.test -all")
    resolver.fail("broken.test")
    assert spf(resolver, "192.0.2.1") is SpfResult.TEMPERROR
    resolver.fail("a.test")
    assert spf(resolver, "192.0.2.1") is SpfResult.TEMPERROR


def test_exists_with_macros() -> None:
    resolver = dns(a_test="v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all")
    # RFC 7208 7.4: %{l1r-} of "strong-bad" is "strong" (split, reverse, keep the last 1).
    resolver.add("1.2.0.192.last._spf.a.test", "A", "127.0.0.2")
    assert spf(resolver, "192.0.2.1", sender="first-last@a.test") is SpfResult.FAIL
    resolver.add("1.2.0.192.first._spf.a.test", "A", "127.0.0.2")
    assert spf(resolver, "192.0.2.1", sender="first-last@a.test") is SpfResult.PASS


def test_ptr() -> None:
    resolver = dns(a_test="v=spf1 ptr -all")
    resolver.add("1.2.0.192.in-addr.arpa", "PTR", "host.a.test")
    resolver.add("host.a.test", "A", "192.0.2.1")
    assert spf(resolver, "192.0.2.1") is SpfResult.PASS
    resolver.add("2.2.0.192.in-addr.arpa", "PTR", "evil.a.test")  # no forward match
    assert spf(resolver, "192.0.2.2") is SpfResult.FAIL


@pytest.mark.parametrize(
    "record", ["v=spf1 foo:bar -all", "v=spf1 ip4:300.1.1.1", "v=spf1 redirect=a redirect=b"]
)
def test_syntax_errors_are_permerror(record: str) -> None:
    assert spf(dns(a_test=record), "192.0.2.1") is SpfResult.PERMERROR


def test_invalid_domain_is_none() -> None:
    assert spf(FakeResolver(), "192.0.2.1", "localhost") is SpfResult.NONE


def test_default_is_neutral() -> None:
    assert spf(dns(a_test="v=spf1 ip4:10.0.0.1"), "192.0.2.1") is SpfResult.NEUTRAL
