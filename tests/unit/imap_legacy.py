"""The ENVELOPE and BODYSTRUCTURE code as it was before the typed values (frozen here as
the oracle the typed builders are compared with, byte for byte). Do not change it: the
point is that the wire bytes stay what they were."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from postel.imap.proto.responses import nstring, value
from postel.mail.mime import MimePart, Params


def _plist(params: Params) -> list[str] | None:
    return [x for kv in params for x in kv] or None


def bodystructure(part: MimePart, extended: bool) -> list[Any]:
    """IMAP BODY (extended=False) or BODYSTRUCTURE (extended=True) as nested lists."""
    disp = None if part.disposition is None else [
        part.disposition[0], _plist(part.disposition[1])]
    lang: str | list[str] | None = part.language
    if part.language is not None and len(part.language) == 1:
        lang = part.language[0]
    if part.children:
        out: list[Any] = [bodystructure(c, extended) for c in part.children]
        out.append(part.content_subtype)
        if extended:
            out += [_plist(part.params), disp, lang, part.location]
        return out
    out = [part.content_type, part.content_subtype, _plist(part.params), part.content_id,
           part.description, part.encoding, part.size]
    if part.message is not None:
        out += [part.message.envelope, bodystructure(part.message.body, extended), part.lines]
    elif part.content_type == "text":
        out.append(part.lines)
    if extended:
        out += [part.md5, disp, lang, part.location]
    return out


def _addresses(addrs: Any, utf8: bool) -> bytes:
    if not addrs:
        return b"NIL"
    return b"(" + b"".join(value(list(a), utf8) for a in addrs) + b")"


def envelope(env: Sequence[Any], utf8: bool = False) -> bytes:
    pieces = [
        nstring(env[0], utf8), nstring(env[1], utf8),
        *(_addresses(env[i], utf8) for i in range(2, 8)),
        nstring(env[8], utf8), nstring(env[9], utf8),
    ]
    return b"(" + b" ".join(pieces) + b")"


def body_structure(body: Sequence[Any], utf8: bool = False) -> bytes:
    if body and isinstance(body[0], list):
        n = 0
        while n < len(body) and isinstance(body[n], list):
            n += 1
        out = b"".join(body_structure(k, utf8) for k in body[:n])
        rest = [value(body[n], utf8)] + [value(x, utf8) for x in body[n + 1 :]]
        return b"(" + out + b" " + b" ".join(rest) + b")"
    pieces: list[bytes] = []
    is_message = (
        len(body) > 7 and isinstance(body[0], str) and body[0].lower() == "message"
        and isinstance(body[1], str) and body[1].lower() in ("rfc822", "global")
        and isinstance(body[7], list)
    )
    for i, item in enumerate(body):
        if is_message and i == 7:
            pieces.append(envelope(item, utf8))
        elif is_message and i == 8:
            pieces.append(body_structure(item, utf8))
        else:
            pieces.append(value(item, utf8))
    return b"(" + b" ".join(pieces) + b")"
