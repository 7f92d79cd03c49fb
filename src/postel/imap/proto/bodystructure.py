"""BODY and BODYSTRUCTURE (RFC 9051 7.5.2, RFC 3501 7.4.2) as typed values, built from the
stored MIME tree (``mail.mime.MimePart``); ``proto/responses.py`` writes them."""

from __future__ import annotations

from dataclasses import dataclass

from postel.imap.proto.envelope import Envelope
from postel.mail.mime import MimePart, Params


@dataclass(frozen=True)
class Disposition:
    """body-fld-dsp: the disposition type and its parameters (RFC 2183)."""

    kind: str
    params: tuple[str, ...] | None


@dataclass(frozen=True)
class Extension:
    """The extension data BODYSTRUCTURE adds to BODY (body-ext-1part / body-ext-mpart).
    ``language`` is one tag as a string, several as a list (body-fld-lang)."""

    disposition: Disposition | None
    language: str | tuple[str, ...] | None
    location: str | None


@dataclass(frozen=True)
class EmbeddedMessage:
    """What body-type-msg adds for message/rfc822 and message/global."""

    envelope: Envelope
    body: BodyStructure
    lines: int


@dataclass(frozen=True)
class SinglePart:
    type: str
    subtype: str
    params: tuple[str, ...] | None  # name, value, name, value ... (body-fld-param)
    content_id: str | None
    description: str | None
    encoding: str
    size: int
    lines: int | None  # text parts only (body-type-text)
    message: EmbeddedMessage | None
    md5: str | None
    extension: Extension | None  # None: BODY, not BODYSTRUCTURE


@dataclass(frozen=True)
class MultiPart:
    parts: tuple[BodyStructure, ...]
    subtype: str
    params: tuple[str, ...] | None
    extension: Extension | None


BodyStructure = SinglePart | MultiPart


def _params(params: Params) -> tuple[str, ...] | None:
    return tuple(x for kv in params for x in kv) or None


def _extension(part: MimePart) -> Extension:
    disposition = None
    if part.disposition is not None:
        disposition = Disposition(part.disposition[0], _params(part.disposition[1]))
    language: str | tuple[str, ...] | None = None
    if part.language is not None:
        language = part.language[0] if len(part.language) == 1 else tuple(part.language)
    return Extension(disposition, language, part.location)


def body_structure(part: MimePart, *, extended: bool) -> BodyStructure:
    """BODY (extended=False) or BODYSTRUCTURE (extended=True) of a stored part."""
    extension = _extension(part) if extended else None
    if part.children:
        return MultiPart(
            tuple(body_structure(c, extended=extended) for c in part.children),
            part.content_subtype, _params(part.params), extension,
        )
    message = None
    lines = None
    if part.message is not None:
        message = EmbeddedMessage(
            Envelope.from_stored(part.message.envelope),
            body_structure(part.message.body, extended=extended), part.lines,
        )
    elif part.content_type == "text":
        lines = part.lines
    return SinglePart(
        part.content_type, part.content_subtype, _params(part.params), part.content_id,
        part.description, part.encoding, part.size, lines, message, part.md5, extension,
    )
