"""MAIL and RCPT parameters as typed values (postel.smtp.params)."""

from __future__ import annotations

import pytest

from postel.smtp.params import (
    Body,
    MailParams,
    RcptParams,
    parse_mail_params,
    parse_rcpt_params,
)
from postel.smtp.proto import ProtocolError, parse_command


def mail_params(line: bytes) -> MailParams | ProtocolError:
    """Through the real command parser, so keyword case and duplicates are its rules."""
    command = parse_command(b"MAIL FROM:<a@b.example>" + line)
    assert not isinstance(command, ProtocolError), command
    return parse_mail_params(command.params)  # type: ignore[union-attr]


def test_no_parameters() -> None:
    assert mail_params(b"") == MailParams(size=None, body=None, smtputf8=False, auth=None)
    assert not MailParams().eight_bit


def test_every_parameter() -> None:
    assert mail_params(b" size=1000 Body=8bitmime smtputf8 AUTH=alice+2Bx@b.example") == (
        MailParams(size=1000, body=Body.EIGHT_BIT_MIME, smtputf8=True, auth="alice+x@b.example")
    )
    assert mail_params(b" BODY=7BIT").body is Body.SEVEN_BIT  # type: ignore[union-attr]
    assert mail_params(b" BODY=8BITMIME").eight_bit  # type: ignore[union-attr]


def test_binarymime() -> None:
    # RFC 3030 3: BODY=BINARYMIME is offered now; binary content is 8-bit as well.
    params = mail_params(b" body=binarymime")
    assert isinstance(params, MailParams)
    assert params.body is Body.BINARY_MIME and params.binary and params.eight_bit
    assert not MailParams(body=Body.EIGHT_BIT_MIME).binary


def test_auth_parameter_is_never_a_reason_to_refuse() -> None:
    # RFC 4954 5: ignored here; a value that is not xtext stands for an unknown submitter.
    assert mail_params(b" AUTH=<>") == MailParams(auth="<>")
    assert mail_params(b" AUTH=a+zz") == MailParams(auth="<>")
    assert mail_params(b" AUTH") == MailParams(auth="<>")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b" SIZE=abc", "SIZE needs a number"),
        (b" SIZE=-1", "SIZE needs a number"),
        (b" SIZE=\xc2\xb2", "SIZE needs a number"),  # "²": str.isdigit() says yes
        (b" SIZE=1234567890123456", "SIZE needs a number"),
        (b" SMTPUTF8=yes", "SMTPUTF8 takes no value"),
        (b" BODY=9BIT", "BODY=9BIT is not supported"),
    ],
)
def test_bad_values_are_501(line: bytes, text: str) -> None:
    assert mail_params(line) == ProtocolError(501, "5.5.4", text)


def test_size_or_body_without_a_value_is_as_if_absent() -> None:
    # Lenient, as before: the keyword alone carries nothing to refuse.
    assert mail_params(b" BODY") == MailParams()
    assert mail_params(b" SIZE") == MailParams()


def test_unknown_parameters_are_555() -> None:
    assert mail_params(b" FOO=BAR X-Y SIZE=1") == ProtocolError(
        555, "5.5.4", "unsupported MAIL parameter: FOO, X-Y"
    )


def test_rcpt_parameters() -> None:
    assert parse_rcpt_params({}) == RcptParams()
    # DSN (RFC 3461) now offers NOTIFY and ORCPT (tests/unit/test_smtp_dsn_params.py);
    # any other RCPT parameter is still 555.
    assert parse_rcpt_params({"FOO": "1"}) == ProtocolError(
        555, "5.5.4", "unsupported RCPT parameter: FOO"
    )
