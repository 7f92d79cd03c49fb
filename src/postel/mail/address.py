"""Mail addresses.  Mainly SMTP envelope paths: reverse-path / forward-path parsing (RFC 5321
4.1.2) with SMTPUTF8 local parts and internationalised domains (RFC 6531 3.3); also the lenient
RFC 5322 address-list parser behind the IMAP ENVELOPE (see parse_address_list).

Domains are kept lowercased in Unicode (U-label) form so one mailbox has one spelling in the
database; ``ascii_domain()`` gives the A-label form for DNS and for peers without SMTPUTF8.
Only Python's built-in ``idna`` codec (IDNA2003) is available, so conversion falls back to
plain Punycode (RFC 3492) when IDNA2003 refuses a label that IDNA2008 would accept.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "Address",
    "AddressError",
    "Domain",
    "parse_address_list",
    "parse_email",
    "parse_path",
    "parse_path_and_params",
]

MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2
MAX_LABEL = 63  # RFC 1035 2.3.4

# RFC 5322 3.2.3 atext; RFC 6531 3.3 extends it with any non-ASCII UTF-8 character.
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+")
_DOT_STRING = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\U0010ffff]+")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")  # RFC 5321 4.1.2 esmtp-keyword
# IDNA (RFC 3490 3.1) label separators besides '.': ideographic and fullwidth full stops.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class AddressError(ValueError):
    """Bad address syntax; the message is fit to show to an SMTP client or a user."""


@dataclass(frozen=True)
class Address:
    local: str  # as given (quoted-string form only when it cannot be a dot-string)
    domain: str  # lowercased, Unicode (U-label) form, or an address literal "[...]"

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """Case-insensitive lookup key.  RFC 5321 2.4 lets only the receiving host interpret
        local-part case; we choose to treat it as case-insensitive, as nearly everyone does."""
        return f"{self.local.lower()}@{self.domain}"

    @property
    def needs_smtputf8(self) -> bool:
        # A non-ASCII domain can always travel as A-labels; a UTF-8 local part cannot.
        return not self.local.isascii()

    def ascii_domain(self) -> str:
        return _to_ascii(self.domain)


def _label_to_ascii(label: str) -> str:
    if label.isascii():
        return label
    try:
        alabel = label.encode("idna").decode("ascii")
        if _label_to_unicode(alabel) == label:
            return alabel
    except UnicodeError:
        pass
    # IDNA2003 (nameprep) refuses some labels IDNA2008 allows and maps others (German
    # sharp s to "ss"); RFC 5891 4.4 A-label of a valid U-label is "xn--" + Punycode.
    return "xn--" + label.encode("punycode").decode("ascii")


def _to_ascii(domain: str) -> str:
    if domain.startswith("[") or domain.isascii():
        return domain
    return ".".join(_label_to_ascii(label) for label in domain.split("."))


def _label_to_unicode(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return label.encode("ascii").decode("idna").lower()
    except UnicodeError:
        pass
    try:  # IDNA2008-only labels do not round-trip through IDNA2003: plain Punycode
        return label[4:].encode("ascii").decode("punycode").lower()
    except UnicodeError:
        return label  # not valid Punycode: keep the A-label as written


def _check_literal(text: str) -> str:
    # RFC 5321 4.1.3 address-literal: IPv4, "IPv6:" and General-address-literal.
    inner = text[1:-1]
    tag, colon, rest = inner.partition(":")
    try:
        if not colon:
            ipaddress.IPv4Address(inner)
        elif tag.lower() == "ipv6":
            ipaddress.IPv6Address(rest)
        elif not (_LDH_LABEL.fullmatch(tag.lower()) and rest
                  and all(33 <= ord(c) <= 126 and c not in "[\\]" for c in rest)):
            raise ValueError(inner)
    except ValueError:
        raise AddressError(f"invalid address literal {text}") from None
    if colon and tag.lower() == "ipv6":
        return f"[IPv6:{rest.lower()}]"
    return text.lower()


def _check_domain(text: str) -> str:
    if not text:
        raise AddressError("empty domain")
    if text.startswith("[") and text.endswith("]"):
        return _check_literal(text)
    domain = unicodedata.normalize("NFC", text.translate(_DOTS)).lower()
    if domain.endswith(".") and not domain.endswith(".."):
        domain = domain[:-1]  # a root-anchored FQDN names the same host
    labels = domain.split(".")
    unicode_labels: list[str] = []
    for label in labels:
        if not label:
            raise AddressError(f"invalid domain {text!r}: empty label")
        if label.isascii():
            if not _LDH_LABEL.fullmatch(label):
                raise AddressError(f"invalid domain {text!r}: bad label {label!r}")
            unicode_labels.append(_label_to_unicode(label))
        else:
            if not all(c.isalnum() or c == "-" or unicodedata.category(c)[0] == "M"
                       for c in label) or label[0] == "-" or label[-1] == "-":
                raise AddressError(f"invalid domain {text!r}: bad label {label!r}")
            unicode_labels.append(label)
        if len(_label_to_ascii(unicode_labels[-1])) > MAX_LABEL:
            raise AddressError(f"invalid domain {text!r}: label longer than {MAX_LABEL}")
    domain = ".".join(unicode_labels)
    if len(_to_ascii(domain)) > MAX_DOMAIN:
        raise AddressError(f"domain longer than {MAX_DOMAIN} octets")
    return domain


@dataclass(frozen=True)
class Domain:
    """A domain name in one spelling: lower-cased, NFC, without the root dot, kept as
    U-labels (RFC 5890 2.3.2.1) with the A-label form at hand for DNS and ASCII peers.

    ``Domain.parse`` is the one syntax rule for a domain a person or a peer names (never
    forge an address around it to check it): LDH or IDNA labels (RFC 5891 5), labels of at
    most 63 octets and names of at most 255 (RFC 1035 2.3.4). Address literals are not
    domains and are refused. Whether a name may be *hosted* is a policy question for the
    caller (postel.admin.domains requires a dot there).
    """

    unicode: str

    @classmethod
    def parse(cls, text: str) -> Domain:
        name = text.strip()
        if not name:
            raise AddressError("empty domain")
        if name.startswith("["):
            raise AddressError(f"{name} is an address literal, not a domain name")
        if any(c.isspace() or c in "@<>" for c in name):
            raise AddressError(f"invalid domain {name!r}: spaces, @ and <> are not allowed")
        return cls(_check_domain(name))

    @property
    def ascii(self) -> str:
        """The A-label form (RFC 5890 2.3.2.1), for DNS queries and peers without SMTPUTF8."""
        return _to_ascii(self.unicode)

    @property
    def is_qualified(self) -> bool:
        """True for a name of two or more labels ("example.com", not "localhost")."""
        return "." in self.unicode

    def __str__(self) -> str:
        return self.unicode


def _check_local(text: str) -> str:
    if not text:
        raise AddressError("empty local part")
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise AddressError("unterminated quoted local part")
        chars, i, body = [], 0, text[1:-1]
        while i < len(body):
            c = body[i]
            if c == "\\":  # RFC 5321 4.1.2 quoted-pairSMTP = "\" %d32-126
                if i + 1 >= len(body) or not 32 <= ord(body[i + 1]) <= 126:
                    raise AddressError("invalid quoted-pair in local part")
                c, i = body[i + 1], i + 1
            elif c == '"' or (ord(c) < 32 or ord(c) == 127):
                raise AddressError("invalid character in quoted local part")
            chars.append(c)
            i += 1
        value = "".join(chars)
        if not value:
            raise AddressError("empty local part")
        # RFC 5321 4.1.2: a quoted-string that is also a valid Dot-string means the same
        # mailbox; keep the one unquoted spelling so lookups and keys agree.
        if _ATEXT.fullmatch(value.replace(".", "a")) and ".." not in value \
                and not value.startswith(".") and not value.endswith("."):
            local = value
        else:
            local = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        # Lenient like Postfix: dots may repeat or end the local part (some mobile carriers
        # issued such addresses), but every character must be atext or '.'.
        if not _DOT_STRING.fullmatch(text) or not text.strip("."):
            raise AddressError(f"invalid character in local part {text!r}")
        local = text
    if len(local.encode("utf-8")) > MAX_LOCAL:
        raise AddressError(f"local part longer than {MAX_LOCAL} octets")
    return local


def _split_mailbox(text: str) -> tuple[str, str]:
    """Split at the '@' that follows the local part (a quoted local part may contain '@')."""
    if text.startswith('"'):
        i = 1
        while i < len(text) and text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        at = text.find("@", i + 1)
        if at != i + 1:
            raise AddressError("expected '@' after quoted local part")
    else:
        at = text.rfind("@")
        if at < 0:
            raise AddressError(f"missing '@' in address {text!r}")
    return text[:at], text[at + 1:]


def _mailbox(text: str) -> Address:
    local, domain = _split_mailbox(text)
    return Address(_check_local(local), _check_domain(domain))


def parse_path(text: str, *, allow_empty: bool) -> Address | None:
    """Parse a Reverse-path or Forward-path ("<user@dom>"); "<>" gives None when allowed.

    Source routes (RFC 5321 4.1.2 A-d-l, obsolete but still to be accepted, Appendix C) are
    dropped; a bare ``user@dom`` without brackets is accepted, as most servers do."""
    s = text.strip()
    if s.startswith("<") or s.endswith(">"):
        if not (s.startswith("<") and s.endswith(">")):
            raise AddressError("unbalanced angle brackets in path")
        s = s[1:-1].strip()
        if not s:
            if allow_empty:
                return None
            raise AddressError("null path <> not allowed here")
    if not s:
        raise AddressError("empty path")
    if s.startswith("@"):
        colon = s.find(":")
        if colon < 0:
            raise AddressError("empty local part")
        for hop in s[:colon].split(","):
            if not hop.startswith("@"):
                raise AddressError("invalid source route")
            _check_domain(hop[1:])
        s = s[colon + 1:]
    return _mailbox(s)


def _path_end(arg: str) -> int:
    """Index just past the path: past the '>' closing '<...>' (quotes respected), or the first
    whitespace for a bare path."""
    i, n, quoted, bracket = 0, len(arg), False, arg.startswith("<")
    while i < n:
        c = arg[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif bracket and c == ">":
            return i + 1
        elif not bracket and c in " \t":
            return i
        i += 1
    return n


def parse_path_and_params(arg: str, *, allow_empty: bool) -> tuple[
        Address | None, dict[str, str | None]]:
    """Parse the argument of MAIL FROM: / RCPT TO: (everything after the colon): the path
    and its ESMTP parameters, e.g. "<a@b> SIZE=100 BODY=8BITMIME SMTPUTF8" ->
    (a@b, {"SIZE": "100", "BODY": "8BITMIME", "SMTPUTF8": None}).  Keywords are uppercased
    (RFC 5321 4.1.2: esmtp-keyword is case-insensitive); values are kept as sent."""
    s = arg.strip()
    end = _path_end(s)
    if s.startswith("<") and (end > len(s) or s[end - 1] != ">"):
        raise AddressError("unbalanced angle brackets in path")
    addr = parse_path(s[:end], allow_empty=allow_empty)
    params: dict[str, str | None] = {}
    rest = s[end:]
    if rest and rest[0] not in " \t":
        raise AddressError("expected a space after the path")
    for item in rest.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD.fullmatch(key):
            raise AddressError(f"invalid parameter {item!r}")
        if eq and not value:
            raise AddressError(f"empty value for parameter {key.upper()}")
        if key.upper() in params:
            raise AddressError(f"duplicate parameter {key.upper()}")
        params[key.upper()] = value if eq else None
    return addr, params


def parse_email(text: str) -> Address:
    """Parse an address a person typed (login name, CLI argument): "Alice@Example.COM".
    Same rules as a path, but no brackets, no source route and no whitespace."""
    s = text.strip()
    if not s:
        raise AddressError("empty address")
    if any(c in "<>" or c.isspace() for c in s):
        raise AddressError("an address may not contain spaces or angle brackets")
    if s.startswith("@"):
        raise AddressError("empty local part")
    return _mailbox(s)


# --------------------------------------------------------------- RFC 5322 header address lists
# Used for the IMAP ENVELOPE of stored messages (postel.mail.mime); unlike SMTP paths these are
# parsed leniently and never raise.

_SPECIAL = set('()<>@,;:\\".[] \t\r\n')


def _tokens(s: str) -> list[tuple[str, str, bool]]:
    """RFC 5322 3.2 lexer: (kind, text, whitespace-before). Kinds: a=atom q=quoted c=comment
    d=domain-literal s=special.  Lenient: 8-bit and stray characters become atoms."""
    out: list[tuple[str, str, bool]] = []
    i, n, sp = 0, len(s), False
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            sp, i = True, i + 1
            continue
        if c in "(\"":
            close, depth, j, buf = (")" if c == "(" else '"'), 1, i + 1, []
            while j < n:
                ch = s[j]
                if ch == "\\" and j + 1 < n:
                    buf.append(s[j + 1])
                    j += 2
                    continue
                j += 1
                if ch == close:
                    depth -= 1
                    if not depth:
                        break
                elif c == "(" and ch == "(":
                    depth += 1
                buf.append(ch)
            out.append(("c" if c == "(" else "q", "".join(buf), sp))
            sp, i = c == "(", j
            continue
        if c == "[":
            j = s.find("]", i)
            j = n if j < 0 else j + 1
            out.append(("d", s[i:j], sp))
        elif c in "<>@,;:.":
            j = i + 1
            out.append(("s", c, sp))
        else:
            j = i + 1
            while j < n and s[j] not in _SPECIAL:
                j += 1
            out.append(("a", s[i:j], sp))
        sp, i = False, j
    return out


def _phrase(toks: list[tuple[str, str, bool]]) -> str | None:
    words = [(t, sp) for kind, t, sp in toks if kind != "c"]
    if not words:
        return None
    return "".join((" " if sp and k else "") + t for k, (t, sp) in enumerate(words))


def _comment(toks: list[tuple[str, str, bool]]) -> str | None:
    cs = [t.strip() for kind, t, _ in toks if kind == "c" and t.strip()]
    return cs[-1] if cs else None


def _addr_spec(toks: list[tuple[str, str, bool]]) -> tuple[str, str]:
    words = [(k, t) for k, t, _ in toks if k != "c"]
    at = max((i for i, (k, t) in enumerate(words) if k == "s" and t == "@"), default=-1)
    if at < 0:
        return "".join(t for _, t in words), ""
    return "".join(t for _, t in words[:at]), "".join(t for _, t in words[at + 1:])


def parse_address_list(value: str) -> list[list[str | None]]:
    """RFC 5322 3.4 address-list as IMAP ENVELOPE addresses [name, adl, mailbox, host]
    (RFC 3501 7.4.2): names and parts stay raw (no RFC 2047 decoding); a group is
    [None, None, name, None] ... [None, None, None, None].  A mailbox without domain gets
    host "" because NIL host means group syntax."""
    toks = _tokens(value)
    out: list[list[str | None]] = []
    i, n, group = 0, len(toks), False
    while i < n:
        j = i
        while j < n and not (toks[j][0] == "s" and toks[j][1] in "<,;:"):
            j += 1
        unit, delim = toks[i:j], (toks[j][1] if j < n else "")
        if delim == ":":
            if not group:
                out.append([None, None, _phrase(unit) or "", None])
                group = True
            i = j + 1
            continue
        if delim == "<":
            k = j + 1
            while k < n and not (toks[k][0] == "s" and toks[k][1] == ">"):
                k += 1
            inner, adl = toks[j + 1:k], None
            if inner and inner[0][1] == "@" and inner[0][0] == "s":
                colon = next((x for x, t in enumerate(inner) if t[:2] == ("s", ":")), -1)
                if colon >= 0:
                    adl = "".join(t for kind, t, _ in inner[:colon] if kind != "c")
                    inner = inner[colon + 1:]
            local, host = _addr_spec(inner)
            j = k + 1
            while j < n and not (toks[j][0] == "s" and toks[j][1] in ",;"):
                j += 1
            name = _phrase(unit) or _comment(toks[k + 1:j])
            delim = toks[j][1] if j < n else ""
            if local or host or name:
                out.append([name, adl, local, host])
        elif _phrase(unit) is not None:
            local, host = _addr_spec(unit)
            out.append([_comment(unit), None, local, host])
        if delim == ";" and group:
            out.append([None, None, None, None])
            group = False
        i = j + 1
    if group:
        out.append([None, None, None, None])
    return out
