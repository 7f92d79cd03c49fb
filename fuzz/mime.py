"""Target 4: the MIME parser (mail/mime.py, with RFC 2047 encoded words and RFC 2231
parameters) and the IMAP BODY, BODYSTRUCTURE and ENVELOPE built from what it found.

Findings: any exception (the parser has no error type: every byte string is a message);
a part tree whose offsets leave the message; a value the store cannot keep (a string
that does not encode as UTF-8 or holds NUL, which a PostgreSQL text column refuses);
BODY/BODYSTRUCTURE/ENVELOPE output that is not well-formed IMAP (tests/unit/imap_wire.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from tests.unit.imap_wire import check_message

    from postel.mail.mime import MimePart, ParsedMessage, parse_message_bytes

from common import run


def _check_offsets(part: MimePart, size: int) -> None:
    if not 0 <= part.header_start <= part.body_start <= part.end <= size:
        raise AssertionError(f"offsets outside the message: {part!r}")
    for child in part.children:
        _check_offsets(child, size)
    if part.message is not None:
        _check_offsets(part.message.body, size)


def _storable(value: object, where: str) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate, as the store would
        if "\0" in value:
            raise AssertionError(f"NUL in {where}: {value!r}")
    elif isinstance(value, list | tuple):
        for item in value:
            _storable(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(item, f"{where}.{key}")


def one_input(data: bytes) -> None:
    parsed = parse_message_bytes(data)
    if parsed.size != len(data):
        raise AssertionError(f"size {parsed.size} != {len(data)}")
    _check_offsets(parsed.body, len(data))
    stored = parsed.to_json()
    _storable(stored, "message")
    if ParsedMessage.from_json(json.loads(json.dumps(stored))) != parsed:
        raise AssertionError("the stored form does not read back")
    check_message(parsed)


if __name__ == "__main__":
    run(one_input)
