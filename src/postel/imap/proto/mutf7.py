"""Modified UTF-7 mailbox names (RFC 3501 5.1.3), used unless UTF8=ACCEPT or IMAP4rev2 is
enabled (RFC 6855 3, RFC 9051 5.1)."""

from __future__ import annotations

import base64
import binascii


class Utf7Error(ValueError):
    pass


# A name that is a valid astring but not valid modified UTF-7 names no mailbox: the answer
# is NO or an empty LIST, never BAD (RFC 9051 7.1.3). Such a name is kept as sent behind
# this prefix, which no stored name can carry (CREATE refuses control characters), so it
# matches nothing and CREATE or RENAME to it answers NO.
UNDECODABLE = "\x7f"


def decode_or_mark(name: str) -> str:
    """The decoded name, or the name marked UNDECODABLE."""
    try:
        return decode(name)
    except Utf7Error:
        return UNDECODABLE + name


def _b64(chunk: str) -> str:
    raw = chunk.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending = []
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64("".join(pending)) + "-")
    return "".join(out)


def decode(name: str) -> str:
    """Decode a modified UTF-7 name; raise Utf7Error on anything malformed."""
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        ch = name[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise Utf7Error("mailbox name is not 7-bit")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated &-sequence")
        chunk = name[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        data = chunk.replace(",", "/")
        try:
            raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
            text = raw.decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Utf7Error("bad modified base64") from None
        if any(0x20 <= ord(c) <= 0x7E for c in text):
            raise Utf7Error("printable ASCII must not be base64-encoded")
        out.append(text)
    return "".join(out)
