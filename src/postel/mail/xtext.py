"""xtext (RFC 3461 4): the encoding of ENVID, ORCPT and AUTH= (RFC 4954 5) values."""

from __future__ import annotations

import re

# xtext = *( xchar / hexchar ); xchar is "!".."~" except "+" and "=".
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")


def decode_xtext(text: str) -> str | None:
    """xtext to its text, or None when `text` is not xtext."""
    if not _XTEXT.fullmatch(text):
        return None
    return _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)


def encode_xtext(text: str) -> str:
    """"+", "=" and octets outside "!".."~" become "+XX" (of the UTF-8 octets)."""
    out = []
    for octet in text.encode("utf-8"):
        char = chr(octet)
        out.append(char if 0x21 <= octet <= 0x7E and char not in "+=" else f"+{octet:02X}")
    return "".join(out)
