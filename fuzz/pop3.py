"""Target 3: the POP3 reader and command parser, fed in arbitrary chunk splits, with the
session's SASL step (expect_auth_response() after AUTH with a mechanism).

Findings: any exception (bad input is a ProtocolError event, never raised); events that
depend on the split; a reply whose framing client text can break.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    from postel.pop3.proto import Auth, Pop3Reader, ProtocolError, Reply, User

from common import run, split


def _events(chunks: list[bytes], sasl: bool) -> list[object]:
    reader = Pop3Reader(max_line_length=64)
    out: list[object] = []
    for chunk in chunks:
        reader.receive(chunk)
        while (event := reader.next_event()) is not None:
            out.append(event)
            if sasl and isinstance(event, Auth) and event.mechanism:
                reader.expect_auth_response()
            if isinstance(event, User | ProtocolError):
                # Client text echoed in a reply must not add lines (RFC 1939 3).
                text = event.name if isinstance(event, User) else event.text
                wire = Reply(False, text, lines=(text,)).to_bytes()
                if wire.count(b"\r\n") != 3 or wire.count(b"\n") != 3:
                    raise AssertionError(f"client text broke the framing: {wire!r}")
    return out


def one_input(data: bytes) -> None:
    if not data:
        return
    sasl = bool(data[0] & 1)
    chunks, payload = split(data[1:])
    if _events(chunks, sasl) != _events([payload], sasl):
        raise AssertionError("events depend on the split")


if __name__ == "__main__":
    run(one_input)
