"""Tests for postel.auth.sasl: the sans-IO PLAIN (RFC 4616) and LOGIN exchanges."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.auth.sasl import (
    MECHANISMS,
    Challenge,
    Credentials,
    Failed,
    FailureKind,
    SaslExchange,
    SaslServer,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_mechanisms() -> None:
    assert MECHANISMS == ("PLAIN", "LOGIN")
    assert SaslExchange("plain").mechanism == "PLAIN"
    assert SaslExchange("Login").mechanism == "LOGIN"
    with pytest.raises(ValueError):
        SaslExchange("CRAM-MD5")


# -- PLAIN -----------------------------------------------------------------------------


def test_plain_initial_response() -> None:
    step = SaslExchange("PLAIN").start(b64(b"\0alice@example.test\0secret"))
    assert step == Credentials("", "alice@example.test", "secret")


def test_plain_with_authzid() -> None:
    step = SaslExchange("PLAIN").start(b64(b"admin@example.test\0alice@example.test\0pw"))
    assert step == Credentials("admin@example.test", "alice@example.test", "pw")


def test_plain_utf8_credentials() -> None:
    response = b64("\0jöran@bücher.example\0pässwörd ✓".encode())
    assert SaslExchange("PLAIN").start(response) == Credentials(
        "", "jöran@bücher.example", "pässwörd ✓"
    )


def test_plain_empty_password_is_passed_on() -> None:
    # Whether an empty password matches is the authenticator's decision, not the parser's.
    assert SaslExchange("PLAIN").start(b64(b"\0alice\0")) == Credentials("", "alice", "")


def test_plain_challenge_path() -> None:
    exchange = SaslExchange("PLAIN")
    assert exchange.start(None) == Challenge(b"")
    assert exchange.step(b64(b"\0alice\0secret")) == Credentials("", "alice", "secret")


def test_plain_challenge_answer_with_surrounding_whitespace() -> None:
    exchange = SaslExchange("PLAIN")
    exchange.start(None)
    assert exchange.step("  " + b64(b"\0alice\0secret") + " ") == Credentials(
        "", "alice", "secret"
    )


def test_plain_equals_is_an_empty_initial_response() -> None:
    # RFC 4954 4: "=" stands for a zero-length initial response; for PLAIN that is malformed,
    # and must not be confused with "no initial response" (which sends a challenge).
    step = SaslExchange("PLAIN").start("=")
    assert isinstance(step, Failed)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"alice",
        b"alice\0secret",
        b"\0\0alice\0secret",
        b"a\0b\0c\0d",
        b"\0\0secret",  # empty user name
    ],
)
def test_plain_malformed(raw: bytes) -> None:
    assert isinstance(SaslExchange("PLAIN").start(b64(raw)), Failed)
    exchange = SaslExchange("PLAIN")
    exchange.start(None)
    assert isinstance(exchange.step(b64(raw)), Failed)


@pytest.mark.parametrize(
    "line",
    ["not base64!", "AGFsaWNl\0", "AGFsaWNlAHNlY3JldA", "AGFs aWNl", "\0invalid", "ä"],
)
def test_plain_invalid_base64(line: str) -> None:
    step = SaslExchange("PLAIN").start(line)
    assert step == Failed("invalid base64")
    exchange = SaslExchange("PLAIN")
    exchange.start(None)
    assert exchange.step(line) == Failed("invalid base64")


@pytest.mark.parametrize(
    "raw", [b"\0al\xffice\0secret", b"\0alice\0sec\xc3ret", b"\xfe\0alice\0secret"]
)
def test_plain_non_utf8(raw: bytes) -> None:
    assert SaslExchange("PLAIN").start(b64(raw)) == Failed("credentials are not UTF-8")


def test_plain_cancel() -> None:
    exchange = SaslExchange("PLAIN")
    exchange.start(None)
    assert exchange.step("*") == Failed("authentication cancelled")
    exchange = SaslExchange("PLAIN")
    exchange.start(None)
    assert exchange.step(" * ") == Failed("authentication cancelled")


# -- LOGIN -----------------------------------------------------------------------------


def test_login_both_steps() -> None:
    exchange = SaslExchange("LOGIN")
    assert exchange.start(None) == Challenge(b"Username:")
    assert exchange.step(b64(b"alice@example.test")) == Challenge(b"Password:")
    assert exchange.step(b64(b"secret")) == Credentials("", "alice@example.test", "secret")


def test_login_initial_response_is_the_user_name() -> None:
    exchange = SaslExchange("LOGIN")
    assert exchange.start(b64(b"alice@example.test")) == Challenge(b"Password:")
    assert exchange.step(b64(b"secret")) == Credentials("", "alice@example.test", "secret")


def test_login_equals_initial_response_asks_for_the_user_name() -> None:
    exchange = SaslExchange("LOGIN")
    assert exchange.start("=") == Challenge(b"Username:")
    assert exchange.step(b64(b"bob")) == Challenge(b"Password:")
    assert exchange.step(b64(b"pw")) == Credentials("", "bob", "pw")


def test_login_utf8() -> None:
    exchange = SaslExchange("LOGIN")
    exchange.start(None)
    exchange.step(b64("jöran@bücher.example".encode()))
    assert exchange.step(b64("pässwörd".encode())) == Credentials(
        "", "jöran@bücher.example", "pässwörd"
    )


def test_login_empty_password_is_passed_on() -> None:
    exchange = SaslExchange("LOGIN")
    exchange.start(None)
    exchange.step(b64(b"alice"))
    assert exchange.step("") == Credentials("", "alice", "")


def test_login_invalid_base64() -> None:
    exchange = SaslExchange("LOGIN")
    exchange.start(None)
    assert exchange.step("%%%") == Failed("invalid base64")
    assert SaslExchange("LOGIN").start("%%%") == Failed("invalid base64")
    exchange = SaslExchange("LOGIN")
    exchange.start(None)
    exchange.step(b64(b"alice"))
    assert exchange.step("%%%") == Failed("invalid base64")


def test_login_non_utf8() -> None:
    exchange = SaslExchange("LOGIN")
    exchange.start(None)
    assert exchange.step(b64(b"al\xffice")) == Failed("user name is not UTF-8")
    exchange = SaslExchange("LOGIN")
    exchange.start(None)
    exchange.step(b64(b"alice"))
    assert exchange.step(b64(b"pa\xffss")) == Failed("password is not UTF-8")


@pytest.mark.parametrize("answers", [0, 1])
def test_login_cancel(answers: int) -> None:
    exchange = SaslExchange("LOGIN")
    exchange.start(None)
    if answers:
        exchange.step(b64(b"alice"))
    assert exchange.step("*") == Failed("authentication cancelled")


# -- properties ------------------------------------------------------------------------


credential_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30
)


@settings(max_examples=100, deadline=None)
@given(authzid=credential_text, username=credential_text.filter(bool), password=credential_text)
def test_property_plain_round_trip(authzid: str, username: str, password: str) -> None:
    response = b64(f"{authzid}\0{username}\0{password}".encode())
    assert SaslExchange("PLAIN").start(response) == Credentials(authzid, username, password)


@settings(max_examples=200, deadline=None)
@given(
    mechanism=st.sampled_from(MECHANISMS),
    initial=st.one_of(st.none(), st.text(max_size=40)),
    lines=st.lists(st.text(max_size=40), max_size=3),
)
def test_property_never_raises(mechanism: str, initial: str | None, lines: list[str]) -> None:
    exchange = SaslExchange(mechanism)
    step = exchange.start(initial)
    for line in lines:
        if not isinstance(step, Challenge):
            break
        step = exchange.step(line)
    assert isinstance(step, Challenge | Credentials | Failed)


# -- the driver every protocol uses ------------------------------------------------------


def test_server_supports_and_refuses_mechanisms() -> None:
    assert SaslServer.supports("plain") and SaslServer.supports("LOGIN")
    assert not SaslServer.supports("CRAM-MD5")
    assert not SaslServer.supports("LOGIN", ("PLAIN",))
    with pytest.raises(ValueError):
        SaslServer("LOGIN", ("PLAIN",))
    assert SaslServer("login").mechanism == "LOGIN"


def test_server_challenge_is_base64_encoded() -> None:
    step = SaslServer("LOGIN").start(None)
    assert isinstance(step, Challenge)
    assert step.encoded == "VXNlcm5hbWU6"  # "Username:"
    assert Challenge(b"").encoded == ""


def test_server_initial_response_and_answers_as_bytes() -> None:
    server = SaslServer("LOGIN")
    assert server.start(b64(b"alice")) == Challenge(b"Password:")
    assert server.answer(b64(b"pw").encode()) == Credentials("", "alice", "pw")
    server = SaslServer("PLAIN")
    assert server.start(None) == Challenge(b"")
    assert server.answer(b64(b"\0bob\0pw").encode() + b" ") == Credentials("", "bob", "pw")


def test_server_non_ascii_answer_is_invalid_base64() -> None:
    server = SaslServer("PLAIN")
    server.start(None)
    assert server.answer("ä".encode()) == Failed("invalid base64")


def test_server_cancel_has_its_kind() -> None:
    server = SaslServer("PLAIN")
    server.start(None)
    step = server.answer(b"*")
    assert isinstance(step, Failed) and step.kind is FailureKind.CANCELLED
    step = SaslServer("PLAIN").start("%%%")
    assert isinstance(step, Failed) and step.kind is FailureKind.MALFORMED


def test_server_authzid_must_be_the_user() -> None:
    same = SaslServer("PLAIN").start(b64(b"Alice@Example.test\0alice@example.test\0pw"))
    assert same == Credentials("Alice@Example.test", "alice@example.test", "pw")
    other = SaslServer("PLAIN").start(b64(b"admin@example.test\0alice@example.test\0pw"))
    assert isinstance(other, Failed) and other.kind is FailureKind.AUTHZID
