"""DSN (RFC 3461) parameters: MAIL RET/ENVID, RCPT NOTIFY/ORCPT, and xtext."""

from __future__ import annotations

import pytest

from postel.mail.xtext import decode_xtext, encode_xtext
from postel.smtp.params import (
    MailParams,
    Notify,
    RcptParams,
    Ret,
    parse_mail_params,
    parse_rcpt_params,
)
from postel.smtp.proto import ProtocolError, parse_command
from postel.store.model import DsnRequest


def mail(line: bytes) -> MailParams | ProtocolError:
    command = parse_command(b"MAIL FROM:<a@b.example>" + line)
    assert not isinstance(command, ProtocolError), command
    return parse_mail_params(command.params)  # type: ignore[union-attr]


def rcpt(line: bytes) -> RcptParams | ProtocolError:
    command = parse_command(b"RCPT TO:<x@y.example>" + line)
    assert not isinstance(command, ProtocolError), command
    return parse_rcpt_params(command.params)  # type: ignore[union-attr]


def test_xtext_round_trip() -> None:
    assert decode_xtext("a+2Bb+3Dc") == "a+b=c"
    assert decode_xtext("a+zz") is None  # RFC 3461 4: "+" needs two uppercase hex digits
    assert decode_xtext("a b") is None
    assert encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert decode_xtext(encode_xtext("é+x")) == "\xc3\xa9+x"  # octets, as xtext carries
    for text in ("plain", "with space", "+=+", "~!"):
        assert decode_xtext(encode_xtext(text)) == text


def test_ret_and_envid() -> None:
    assert mail(b" RET=hdrs ENVID=QQ+2B1") == MailParams(ret=Ret.HDRS, envid="QQ+1")
    assert mail(b" RET=FULL") == MailParams(ret=Ret.FULL)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b" RET=ALL", "RET must be FULL or HDRS"),
        (b" RET", "RET must be FULL or HDRS"),
        (b" ENVID=a+zz", "ENVID must be 1 to 100 characters of xtext"),
        (b" ENVID=" + b"x" * 101, "ENVID must be 1 to 100 characters of xtext"),
        (b" ENVID", "ENVID must be 1 to 100 characters of xtext"),
        (b" ENVID=a+00", "ENVID must be 1 to 100 characters of xtext"),  # not printable
    ],
)
def test_bad_mail_dsn_parameters_are_501(line: bytes, text: str) -> None:
    assert mail(line) == ProtocolError(501, "5.5.4", text)


def test_notify_and_orcpt() -> None:
    assert rcpt(b" NOTIFY=success,Delay ORCPT=rfc822;X+2By@y.example") == RcptParams(
        notify=frozenset({Notify.SUCCESS, Notify.DELAY}), orcpt="rfc822;X+y@y.example"
    )
    assert rcpt(b" NOTIFY=NEVER") == RcptParams(notify=frozenset({Notify.NEVER}))
    assert rcpt(b"") == RcptParams()


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b" NOTIFY=NEVER,SUCCESS", "NOTIFY=NEVER stands alone"),
        (b" NOTIFY=SOMETIMES", "NOTIFY takes NEVER or SUCCESS, FAILURE, DELAY"),
        (b" NOTIFY", "NOTIFY takes NEVER or SUCCESS, FAILURE, DELAY"),
        (b" ORCPT=x@y.example", "ORCPT must be addr-type;xtext"),
        (b" ORCPT=rfc822;", "ORCPT must be addr-type;xtext"),
        (b" ORCPT=rfc822;a+zz", "ORCPT must be addr-type;xtext"),
    ],
)
def test_bad_rcpt_dsn_parameters_are_501(line: bytes, text: str) -> None:
    assert rcpt(line) == ProtocolError(501, "5.5.4", text)


def test_what_a_request_wants() -> None:
    request = DsnRequest(notify={"a@x": ("NEVER",), "b@x": ("SUCCESS",)})
    assert not request.wants("a@x", "FAILURE")
    assert request.wants("b@x", "SUCCESS") and not request.wants("b@x", "FAILURE")
    # RFC 3461 4.1: without NOTIFY, failures and delays are reported, success is not.
    assert request.wants("c@x", "FAILURE") and request.wants("c@x", "DELAY")
    assert not request.wants("c@x", "SUCCESS")
