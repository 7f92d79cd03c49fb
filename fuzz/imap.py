"""Target 1: the IMAP receiver (literal-aware framing) fed arbitrary chunk splits, then
the command parser on every framed command.

Findings: any exception but ``CommandError`` from ``parse_command``; anything raised by
the receiver (its limits are events, never exceptions); a framing that depends on how
the bytes were split.
"""

from __future__ import annotations

import contextlib

import atheris

with atheris.instrument_imports():
    from postel.imap.proto.commands import CommandError, parse_command
    from postel.imap.proto.receiver import CommandBytes, Literal, LiteralLimits, Receiver

from common import run, split


def _receiver(logged_in: bool) -> Receiver:
    # Small limits, so the fuzzer reaches every limit path with short inputs.
    return Receiver(max_line_length=256, max_literal_size=2048, max_command_size=4096,
                    spool_threshold=512, pre_login=LiteralLimits(64, 128),
                    logged_in=lambda: logged_in)


def _frame(chunks: list[bytes], raw_every: int, logged_in: bool) -> list[object]:
    """Every event, comparable: literals by their bytes. A RawLine is asked for after
    every `raw_every`-th command (as AUTHENTICATE and IDLE do), the same whatever the
    split, because events are pulled one at a time."""
    receiver = _receiver(logged_in)
    out: list[object] = []
    commands = 0
    for chunk in chunks:
        receiver.feed(chunk)
        while (event := receiver.next_event()) is not None:
            receiver.raw_mode = False
            if isinstance(event, CommandBytes):
                commands += 1
                out.append(tuple(p.read_all() if isinstance(p, Literal) else p
                                 for p in event.parts))
                _parse(event)
                event.close()
                if raw_every and commands % raw_every == 0:
                    receiver.raw_mode = True
            else:
                out.append(event)
    return out


def _parse(raw: CommandBytes) -> None:
    for utf8 in (False, True):
        with contextlib.suppress(CommandError):
            parse_command(raw, utf8=utf8, max_nesting=8)


def one_input(data: bytes) -> None:
    if not data:
        return
    raw_every, logged_in = data[0] % 4, bool(data[0] & 4)
    chunks, payload = split(data[1:])
    split_events = _frame(chunks, raw_every, logged_in)
    whole_events = _frame([payload], raw_every, logged_in)
    if split_events != whole_events:
        raise AssertionError(f"framing depends on the split: {split_events!r} "
                             f"!= {whole_events!r}")


if __name__ == "__main__":
    run(one_input)
