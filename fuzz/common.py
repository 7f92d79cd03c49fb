"""What every atheris target shares: splitting one input into chunks, and running.

A target is ``fuzz/<name>.py`` with a ``one_input(data: bytes) -> None`` that raises only
for a finding (an exception that is not the parser's own documented error). libFuzzer
reports hangs (``-timeout``) and memory growth (``-rss_limit_mb``) itself.

Run one with ``make fuzz`` (every target, ``FUZZ_SECONDS`` each) or by hand:
``.venv/bin/python fuzz/imap.py fuzz/work/imap fuzz/corpus/imap -max_total_time=60``.
New inputs libFuzzer finds go to the first directory (fuzz/work, not committed); the
committed seeds under fuzz/corpus are only read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris


def split(data: bytes) -> tuple[list[bytes], bytes]:
    """The first byte says how many chunk boundaries the next bytes give (one byte each,
    a chunk length); the rest is the payload, cut at those lengths (what is left over is
    the last chunk). Returns (chunks, payload)."""
    if not data:
        return [b""], b""
    count = data[0] % 8
    lengths = data[1 : 1 + count]
    payload = data[1 + count :]
    chunks: list[bytes] = []
    at = 0
    for n in lengths:
        chunks.append(payload[at : at + n])
        at += n
    chunks.append(payload[at:])
    return chunks, payload


def run(one_input: Callable[[bytes], None]) -> None:
    # -timeout: one input taking this long is a hang; -rss_limit_mb: memory growth.
    defaults = ["-timeout=10", "-rss_limit_mb=1536", "-print_final_stats=1"]
    given = {arg.split("=", 1)[0] for arg in sys.argv[1:] if arg.startswith("-")}
    extra = [d for d in defaults if d.split("=", 1)[0] not in given]
    atheris.Setup([*sys.argv, *extra], one_input)
    atheris.Fuzz()
