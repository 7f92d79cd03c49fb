"""MAIL FROM and RCPT TO parameters as typed values (sans-IO, no policy).

``proto.parse_command`` splits the ESMTP keywords and values (RFC 5321 4.1.2,
esmtp-param); here they become ``MailParams`` and ``RcptParams``, or the reply for bad
syntax: 501 for a parameter we know given a bad value, 555 for one we do not implement
(RFC 5321 4.1.1.11, 3.3). Limits (is the SIZE too big?) are policy, not syntax: the
session checks them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from postel.smtp.proto import ProtocolError

# RFC 1870 allows 20 digits; more than 15 is far past any limit we could be configured
# with and would only build a huge int, so such a SIZE is refused as bad syntax.
MAX_SIZE_DIGITS = 15

# RFC 3461 4: xtext, the encoding of the AUTH= mailbox (RFC 4954 5).
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")


class Body(enum.Enum):
    """BODY= (RFC 6152 2; BINARYMIME, RFC 3030 3, is not offered)."""

    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"


@dataclass(frozen=True)
class MailParams:
    size: int | None = None  # RFC 1870 SIZE: the client's estimate, in octets
    body: Body | None = None  # None: not given, which means 7BIT
    smtputf8: bool = False  # RFC 6531 3.4
    # RFC 4954 5 AUTH=: the xtext-decoded (RFC 3461 4) mailbox the message was submitted
    # by, or "<>".
    # Accepted and ignored: we trust no other server's authentication.
    auth: str | None = None

    @property
    def eight_bit(self) -> bool:
        return self.body is Body.EIGHT_BIT_MIME


@dataclass(frozen=True)
class RcptParams:
    """No RCPT parameter is offered (DSN, RFC 3461, is not), so there is nothing here yet;
    the type keeps RCPT parsing in one place, like MAIL's."""


def _syntax(text: str) -> ProtocolError:
    return ProtocolError(501, "5.5.4", text)  # RFC 5321 4.3.2: syntax error in parameters


def parse_mail_params(raw: dict[str, str | None]) -> MailParams | ProtocolError:
    """The keywords are uppercase already (``parse_path_and_params``), values as sent."""
    params = dict(raw)
    smtputf8 = "SMTPUTF8" in params
    if smtputf8 and params.pop("SMTPUTF8") is not None:
        return _syntax("SMTPUTF8 takes no value")  # RFC 6531 3.4
    body: Body | None = None
    body_text = params.pop("BODY", None)
    if body_text is not None:
        try:
            body = Body(body_text.upper())
        except ValueError:
            return _syntax(f"BODY={body_text.upper()} is not supported")
    size: int | None = None
    size_text = params.pop("SIZE", None)
    if size_text is not None:
        # isascii(): str.isdigit() also accepts "²", which int() refuses.
        if (not size_text.isascii() or not size_text.isdigit()
                or len(size_text) > MAX_SIZE_DIGITS):
            return _syntax("SIZE needs a number")  # RFC 1870 6: size-value = 1*20DIGIT
        size = int(size_text)
    auth: str | None = None
    if "AUTH" in params:
        auth_text = params.pop("AUTH")
        # A value that is not xtext is taken as "<>" (unknown submitter) rather than
        # refused: the parameter is ignored anyway, and refusing it would lose mail.
        if auth_text is None or not _XTEXT.fullmatch(auth_text):
            auth = "<>"
        else:
            auth = _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), auth_text)
    if params:
        unknown = ", ".join(params)
        return ProtocolError(555, "5.5.4", f"unsupported MAIL parameter: {unknown}")
    return MailParams(size=size, body=body, smtputf8=smtputf8, auth=auth)


def parse_rcpt_params(raw: dict[str, str | None]) -> RcptParams | ProtocolError:
    if raw:
        return ProtocolError(555, "5.5.4", "RCPT parameters are not supported")
    return RcptParams()
