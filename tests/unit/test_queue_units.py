"""Queue pieces without sockets: retry schedule, MX routes, DSN format."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from postel.mailauth.dns import FakeResolver
from postel.queue.dsn import RecipientStatus, build_dsn
from postel.queue.routes import (
    Exchangers,
    RouteError,
    addresses,
    exchangers,
    mail_exchangers,
    requiretls_refusal,
)
from postel.queue.schedule import delay_warning_due, expired, retry_delay

SCHEDULE = (300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)


def test_retry_schedule_repeats_its_last_step() -> None:
    assert [retry_delay(n, SCHEDULE).total_seconds() for n in range(1, 9)] == [
        300, 600, 1800, 3600, 7200, 14400, 14400, 14400
    ]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert not expired(start, start + timedelta(days=4), 5 * 86400)
    assert expired(start, start + timedelta(days=5), 5 * 86400)
    assert delay_warning_due(start, start + timedelta(hours=4), 14400, False)
    assert not delay_warning_due(start, start + timedelta(hours=4), 14400, True)
    assert not delay_warning_due(start, start + timedelta(hours=9), 0, False)


def test_mx_order_fallback_and_null_mx() -> None:
    resolver = FakeResolver()
    for record in ("20 backup.a.test", "10 one.a.test", "10 two.a.test"):
        resolver.add("a.test", "MX", record)
    seen = set()
    for _ in range(30):
        hosts = asyncio.run(mail_exchangers(resolver, "a.test"))
        assert hosts[2] == "backup.a.test"
        seen.add(tuple(hosts[:2]))
    assert seen == {("one.a.test", "two.a.test"), ("two.a.test", "one.a.test")}  # shuffled
    assert asyncio.run(mail_exchangers(resolver, "plain.test")) == ["plain.test"]  # implicit
    resolver.add("none.test", "MX", "0 .")
    with pytest.raises(RouteError) as null:
        asyncio.run(mail_exchangers(resolver, "none.test"))
    assert null.value.permanent and null.value.status == "5.1.10"
    resolver.fail("down.test")
    with pytest.raises(RouteError) as temporary:
        asyncio.run(mail_exchangers(resolver, "down.test"))
    assert not temporary.value.permanent


def test_mx_validation_and_the_requiretls_rule() -> None:
    resolver = FakeResolver()
    resolver.add("signed.test", "MX", "10 mx.signed.test")
    resolver.add("plain.test", "MX", "10 mx.plain.test")
    resolver.validated.add("signed.test")
    signed = asyncio.run(exchangers(resolver, "signed.test"))
    assert signed == Exchangers(["mx.signed.test"], validated=True)
    plain = asyncio.run(exchangers(resolver, "plain.test"))
    assert not plain.validated
    # No MX answer vouches for the implicit MX or an address literal.
    resolver.validated.add("bare.test")
    assert not asyncio.run(exchangers(resolver, "bare.test")).validated
    assert not asyncio.run(exchangers(resolver, "[192.0.2.1]")).validated
    # RFC 8689 4.2.1: "dnssec" refuses the unvalidated MX with 5.7.30; "certificate"
    # leaves it to the certificate check.
    assert requiretls_refusal(signed, "signed.test", "dnssec") is None
    refusal = requiretls_refusal(plain, "plain.test", "dnssec")
    assert refusal is not None and refusal.permanent and refusal.status == "5.7.30"
    assert requiretls_refusal(plain, "plain.test", "certificate") is None


def test_addresses_ipv6_first() -> None:
    resolver = FakeResolver()
    resolver.add("mx.a.test", "A", "192.0.2.1")
    resolver.add("mx.a.test", "AAAA", "2001:db8::1")
    assert asyncio.run(addresses(resolver, "mx.a.test")) == ["2001:db8::1", "192.0.2.1"]
    assert asyncio.run(addresses(resolver, "[192.0.2.9]")) == ["192.0.2.9"]


def test_dsn_is_a_well_formed_report(tmp_path: Path) -> None:
    original = tmp_path / "blob"
    original.write_bytes(
        b"Return-Path: <a@a.test>\r\nSubject: hi\r\nFrom: a@a.test\r\n\r\nsecret body\r\n"
    )
    data = build_dsn(
        hostname="mail.a.test", sender="a@a.test", queue_id="Q1",
        arrival=datetime(2026, 1, 1, tzinfo=UTC),
        statuses=[RecipientStatus("x@b.test", "5.1.1", "550 5.1.1 unknown", "mx.b.test")],
        original=original, original_offset=len(b"Return-Path: <a@a.test>\r\n"),
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "a@a.test"
    assert message["From"].addresses[0].username == "MAILER-DAEMON"
    human, report, headers = message.get_payload()  # type: ignore[misc]
    assert "x@b.test" in human.get_content()
    fields = report.get_payload()
    assert fields[1]["Status"] == "5.1.1" and fields[1]["Remote-MTA"] == "dns; mx.b.test"
    attached = headers.get_payload(decode=True)
    assert b"Subject: hi" in attached and b"secret body" not in attached
    assert b"Return-Path" not in attached
