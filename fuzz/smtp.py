"""Target 2: the SMTP reader: command lines, DATA bodies (dot-unstuffing, smuggling
detection), BDAT chunks and AUTH answers, fed in arbitrary chunk splits.

The session's part is played the way session.py plays it: DATA accepted (start_data()
after the 354) and an AUTH challenge answered (expect_auth_response()). Findings: any
exception; events that depend on the split; a body that is not CRLF-normalised. One flag
shrinks MAX_BODY_CHUNK, so the path for body lines longer than it runs on short inputs.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    from postel.smtp import proto
    from postel.smtp.proto import Auth, BodyData, Data, SmtpReader

from common import run, split


def _events(chunks: list[bytes], flags: int) -> list[object]:
    reader = SmtpReader(max_line_length=128)
    out: list[object] = []
    body = bytearray()
    for chunk in chunks:
        reader.receive(chunk)
        while (event := reader.next_event()) is not None:
            if isinstance(event, BodyData):
                body += event.data  # chunk sizes may differ; the bytes may not
                continue
            if body:
                out.append(BodyData(bytes(body)))
                body.clear()
            out.append(event)
            if isinstance(event, Data) and flags & 1:
                reader.start_data()
            if isinstance(event, Auth) and flags & 2:
                reader.expect_auth_response()
    if body:
        out.append(BodyData(bytes(body)))
    for event in out:
        if isinstance(event, BodyData):
            # Every line ending is CRLF (RFC 5321 2.3.8): no bare CR or LF may come out.
            stripped = event.data.replace(b"\r\n", b"")
            if b"\r" in stripped or b"\n" in stripped:
                raise AssertionError(f"bare CR or LF in a body: {event.data!r}")
    return out


def _tail(events: list[object]) -> bytes:
    last = events[-1] if events else None
    if isinstance(last, BodyData):
        events.pop()
        return last.data
    return b""


def one_input(data: bytes) -> None:
    if not data:
        return
    flags = data[0]
    chunks, payload = split(data[1:])
    proto.MAX_BODY_CHUNK = 16 if flags & 4 else 256 * 1024
    split_events = _events(chunks, flags)
    whole_events = _events([payload], flags)
    # Input that stops inside a long body line: how much of it has been passed on depends
    # on the split (the rest is still buffered); all before it, and that prefix, must agree.
    split_tail, whole_tail = _tail(split_events), _tail(whole_events)
    if not (whole_tail.startswith(split_tail) or split_tail.startswith(whole_tail)):
        raise AssertionError(f"body tails differ: {split_tail!r} / {whole_tail!r}")
    if split_events != whole_events:
        raise AssertionError(f"events depend on the split: {split_events!r} "
                             f"!= {whole_events!r}")


if __name__ == "__main__":
    run(one_input)
