"""MAIL FROM and RCPT TO parameters as typed values (sans-IO, no policy).

``proto.parse_command`` splits the ESMTP keywords and values (RFC 5321 4.1.2,
esmtp-param); here they become ``MailParams`` and ``RcptParams``, or the reply for bad
syntax: 501 for a parameter we know given a bad value, 555 for one we do not implement
(RFC 5321 4.1.1.11, 3.3). Limits (is the SIZE too big?) are policy, not syntax: the
session checks them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.mail.xtext import decode_xtext
from postel.smtp.proto import ProtocolError

# RFC 1870 allows 20 digits; more than 15 is far past any limit we could be configured
# with and would only build a huge int, so such a SIZE is refused as bad syntax.
MAX_SIZE_DIGITS = 15



class Ret(enum.Enum):
    """RET= (RFC 3461 4.3): what a failure DSN returns of the message."""

    FULL = "FULL"
    HDRS = "HDRS"


class Notify(enum.Enum):
    """NOTIFY= (RFC 3461 4.1) values."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


# RFC 3461 4.4: ENVID is at most 100 characters of xtext-decoded text.
MAX_ENVID = 100


class Body(enum.Enum):
    """BODY= (RFC 6152 2, RFC 3030 3)."""

    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"
    BINARY_MIME = "BINARYMIME"  # RFC 3030 3: sent with BDAT only, kept octet for octet


@dataclass(frozen=True)
class MailParams:
    size: int | None = None  # RFC 1870 SIZE: the client's estimate, in octets
    body: Body | None = None  # None: not given, which means 7BIT
    smtputf8: bool = False  # RFC 6531 3.4
    # RFC 4954 5 AUTH=: the xtext-decoded (RFC 3461 4) mailbox the message was submitted
    # by, or "<>".
    # Accepted and ignored: we trust no other server's authentication.
    auth: str | None = None
    ret: Ret | None = None  # RFC 3461 4.3 RET=
    envid: str | None = None  # RFC 3461 4.4 ENVID=, xtext-decoded
    requiretls: bool = False  # RFC 8689 4: relay only over verified TLS

    @property
    def eight_bit(self) -> bool:
        # Binary content is 8-bit too: a hop that cannot take 8 bits cannot take it.
        return self.body in (Body.EIGHT_BIT_MIME, Body.BINARY_MIME)

    @property
    def binary(self) -> bool:
        return self.body is Body.BINARY_MIME


@dataclass(frozen=True)
class RcptParams:
    """DSN's RCPT parameters (RFC 3461 4.1, 4.2)."""

    notify: frozenset[Notify] = frozenset()  # empty: not given
    # ORCPT as "addr-type;address", the address xtext-decoded (RFC 3461 4.2).
    orcpt: str | None = None


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
        auth = decode_xtext(auth_text or "") if auth_text else None
        if auth is None:
            auth = "<>"
    requiretls = "REQUIRETLS" in params
    if requiretls and params.pop("REQUIRETLS") is not None:
        return _syntax("REQUIRETLS takes no value")  # RFC 8689 3
    ret: Ret | None = None
    if "RET" in params:
        ret_text = params.pop("RET") or ""
        try:
            ret = Ret(ret_text.upper())  # RFC 3461 4.3: "FULL" / "HDRS"
        except ValueError:
            return _syntax("RET must be FULL or HDRS")
    envid: str | None = None
    if "ENVID" in params:
        envid = decode_xtext(params.pop("ENVID") or "")
        # RFC 3461 4.4: printable ASCII, at most 100 characters.
        if not envid or len(envid) > MAX_ENVID or not all(" " <= c <= "~" for c in envid):
            return _syntax("ENVID must be 1 to 100 characters of xtext")
    if params:
        unknown = ", ".join(params)
        return ProtocolError(555, "5.5.4", f"unsupported MAIL parameter: {unknown}")
    return MailParams(size=size, body=body, smtputf8=smtputf8, auth=auth, ret=ret, envid=envid,
                      requiretls=requiretls)


def parse_rcpt_params(raw: dict[str, str | None]) -> RcptParams | ProtocolError:
    params = dict(raw)
    notify: frozenset[Notify] = frozenset()
    if "NOTIFY" in params:
        try:
            notify = frozenset(Notify(v.upper()) for v in (params.pop("NOTIFY") or "").split(","))
        except ValueError:
            return _syntax("NOTIFY takes NEVER or SUCCESS, FAILURE, DELAY")
        if Notify.NEVER in notify and len(notify) > 1:
            return _syntax("NOTIFY=NEVER stands alone")  # RFC 3461 4.1
    orcpt: str | None = None
    if "ORCPT" in params:
        # RFC 3461 4.2: orcpt-parameter = "ORCPT=" addr-type ";" xtext
        addr_type, semicolon, encoded = (params.pop("ORCPT") or "").partition(";")
        address = decode_xtext(encoded)
        if not semicolon or not addr_type or not address or not addr_type.isascii():
            return _syntax("ORCPT must be addr-type;xtext")
        orcpt = f"{addr_type.lower()};{address}"
    if params:
        unknown = ", ".join(params)
        return ProtocolError(555, "5.5.4", f"unsupported RCPT parameter: {unknown}")
    return RcptParams(notify=notify, orcpt=orcpt)
