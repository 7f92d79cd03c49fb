"""CPU of the whole Postel process tree under the SMTP delivery load, by worker count.

The measurement of issue 12 item 3: the same load as bench/smtp_delivery.py (N messages
of 10 KB over 20 plain-SMTP connections to one local user) against `server.workers` = 1
and = 2, alternating, and per run the server tree's CPU-seconds scaled to 30 s of wall
time and the accepted msg/s. Not part of `make bench`'s table; run it niced:

    nice -n 19 .venv/bin/python -m bench.workers_cpu [messages] [rounds]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.procstat import tree_cpu
from bench.smtp_delivery import POSTEL_CONFIG, RECIPIENT
from bench.smtp_load import run_load


def measure(root: Path, workers: int, messages: int) -> tuple[float, float, float]:
    """(msg/s, server CPU-s per 30 s of wall time, client CPU-s) for one run."""
    from tests.harness import PostelServer

    server = PostelServer(root, services=("smtp",), extra_config=POSTEL_CONFIG,
                          workers=workers)
    try:
        server.add_user(RECIPIENT)
        server.start(timeout=300)  # niced on a busy machine: slow to come up
        assert server.process is not None
        before = tree_cpu(server.process.pid)
        load = run_load(server.port("smtp"), messages=messages, clients=20,
                        size=10 * 1024, recipient=RECIPIENT)
        cpu = tree_cpu(server.process.pid) - before
        if load.errors:
            raise RuntimeError(f"{len(load.errors)} messages failed: {load.errors[:3]}")
        return load.rate, cpu / load.elapsed * 30, load.client_cpu
    finally:
        server.close()


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            order = (1, 2) if round_ % 2 == 0 else (2, 1)
            for workers in order:
                root = Path(tmp) / f"r{round_}-w{workers}"
                root.mkdir()
                rate, cpu30, client = measure(root, workers, messages)
                print(f"workers={workers} round={round_}: {rate:7.1f} msg/s, "
                      f"server {cpu30:5.1f} CPU-s per 30 s, load generator {client:.1f} CPU-s",
                      flush=True)


if __name__ == "__main__":
    main()
