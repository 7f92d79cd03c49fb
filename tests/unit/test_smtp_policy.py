"""Listener policies (postel.smtp.policy) and trace headers (postel.smtp.trace)."""

from __future__ import annotations

from datetime import UTC, datetime

from postel.config import SmtpConfig
from postel.mail.address import Address
from postel.smtp import replies as r
from postel.smtp.policy import Client, Listener, MxPolicy, SubmissionPolicy, policy_for
from postel.smtp.trace import Received, return_path, with_protocol
from postel.store.model import Account, Role


def account() -> Account:
    now = datetime.now(UTC)
    return Account(
        id=1, domain_id=1, email="alice@example.test", password_hash="", role=Role.USER,
        backup_email=None, display_name="", quota_bytes=0, disabled=False,
        created_at=now, password_changed_at=now,
    )


def test_policy_for_each_listener() -> None:
    config = SmtpConfig()
    assert isinstance(policy_for(Listener.MX, config, checks_inbound=True), MxPolicy)
    for listener in (Listener.SUBMISSION, Listener.SUBMISSIONS):
        policy = policy_for(listener, config, checks_inbound=True)
        assert isinstance(policy, SubmissionPolicy) and policy.listener is listener
        assert not policy.checks_inbound and policy.checks_from_header


def test_mx_takes_mail_but_never_relays_or_authenticates() -> None:
    policy = MxPolicy(checks_inbound=True)
    stranger = Client("192.0.2.1", tls=True)
    assert policy.auth_refusal(stranger) is not None
    assert policy.auth_refusal(stranger).code == 503  # type: ignore[union-attr]
    assert policy.mail_refusal(stranger) is None
    assert policy.sender_refusal(stranger, None) is None
    assert policy.remote_recipient(stranger) == r.RELAY_DENIED
    assert policy.checks_inbound and not policy.checks_from_header


def test_submission_needs_tls_then_auth_then_own_address() -> None:
    policy = SubmissionPolicy(Listener.SUBMISSION, SmtpConfig())
    plain = Client("192.0.2.1", tls=False)
    assert policy.auth_refusal(plain) == r.TLS_REQUIRED
    assert policy.mail_refusal(plain) == r.TLS_REQUIRED
    tls = Client("192.0.2.1", tls=True)
    assert policy.auth_refusal(tls) is None
    assert policy.mail_refusal(tls) == r.AUTH_REQUIRED
    assert policy.remote_recipient(tls) == r.RELAY_DENIED
    user = Client("192.0.2.1", tls=True, account=account(),
                  own_addresses=frozenset({"alice@example.test"}))
    assert policy.mail_refusal(user) is None
    assert policy.sender_refusal(user, Address("alice", "example.test")) is None
    refusal = policy.sender_refusal(user, Address("bob", "example.test"))
    assert refusal is not None and (refusal.code, refusal.enhanced) == (553, "5.7.1")
    assert policy.sender_refusal(user, None) is not None  # no bounces from submission
    assert policy.remote_recipient(user) == r.RECIPIENT_OK


def test_plaintext_auth_from_loopback_only_when_allowed() -> None:
    allowed = SubmissionPolicy(Listener.SUBMISSION,
                               SmtpConfig(allow_plaintext_auth_on_loopback=True))
    for ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert allowed.auth_refusal(Client(ip, tls=False)) is None
    assert allowed.auth_refusal(Client("192.0.2.1", tls=False)) == r.TLS_REQUIRED
    strict = SubmissionPolicy(Listener.SUBMISSION, SmtpConfig())
    assert strict.auth_refusal(Client("127.0.0.1", tls=False)) == r.TLS_REQUIRED


def test_trace_headers() -> None:
    assert return_path(None) == b"Return-Path: <>\r\n"
    assert return_path(Address("a", "b.example")) == b"Return-Path: <a@b.example>\r\n"
    assert with_protocol(extended=False, smtputf8=False, tls=False, authenticated=False) == "SMTP"
    assert with_protocol(extended=True, smtputf8=False, tls=True, authenticated=True) == "ESMTPSA"
    assert with_protocol(extended=True, smtputf8=True, tls=True, authenticated=False) == "UTF8SMTPS"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    one = Received("c.example", "192.0.2.1", "mx.example", "ESMTPS", "ABC", ("x@y",), when)
    assert one.to_bytes() == (
        b"Received: from c.example ([192.0.2.1])\r\n"
        b"\tby mx.example (Postel) with ESMTPS\r\n"
        b"\tid ABC\r\n\tfor <x@y>;\r\n\tFri, 02 Jan 2026 03:04:05 +0000\r\n"
    )
    many = Received(None, "::1", "mx.example", "SMTP", "ABC", ("x@y", "z@y"), when)
    assert b"for <" not in many.to_bytes() and many.to_bytes().startswith(
        b"Received: from unknown ([::1])"
    )
