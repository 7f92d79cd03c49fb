"""Run Postel's benchmarks against Debian's Postfix/Dovecot on this machine, print ratios.

    make bench                              # everything, default sizes
    .venv/bin/python bench/run.py --messages 500 --only smtp

Every number comes from this run on this machine; ratios are Postel / reference.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for `bench.*` and the tests' harness (`tests.harness`)

from bench.big_mailbox import big_mailbox  # noqa: E402
from bench.framework import BenchError, Benchmark, Options, Report, table  # noqa: E402
from bench.idle import idle  # noqa: E402
from bench.imap_load import imap_load  # noqa: E402
from bench.mailstore import imap_fetch, pop3_retrieval  # noqa: E402
from bench.output import write_results  # noqa: E402
from bench.smtp_delivery import smtp_delivery, smtp_submission  # noqa: E402

BENCHMARKS: dict[str, Benchmark] = {
    "smtp": smtp_delivery,
    "smtp-587": smtp_submission,
    "pop3": pop3_retrieval,
    "imap": imap_fetch,
    "imap-load": imap_load,
    "big-mailbox": big_mailbox,
    "idle": idle,
}


def _mount_of(path: Path) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            point = parts[1]
            if str(path).startswith(point) and len(point) > len(best):
                best, kind = point, f"{parts[2]} ({parts[0]} on {point})"
    return kind


def machine_notes(workdir: Path) -> list[str]:
    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kb = int(info.readline().split()[1])
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    load1 = os.getloadavg()[0]
    return [
        f"machine: {os.cpu_count()} x {cpu}, {mem_kb / 1024 / 1024:.0f} GiB, "
        f"{platform.system()} {platform.release()}; load average before: {load1:.2f}",
        f"python {platform.python_version()}; postel {commit or '?'}; "
        f"work dir {workdir} on {_mount_of(workdir)}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=Options.messages,
                        help="messages per server (default %(default)s)")
    parser.add_argument("--clients", type=int, default=Options.clients,
                        help="parallel SMTP connections (default %(default)s)")
    parser.add_argument("--size", type=int, default=Options.message_size,
                        help="message size in bytes (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=Options.rounds,
                        help="runs per server, alternating order; best shown (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=Options.seconds,
                        help="measured window of the IMAP load rounds (default %(default)s)")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS),
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (configs, logs, mailboxes)")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.clients < 1 or args.rounds < 1 or args.size < 1024 \
            or args.seconds <= 0:
        parser.error("--messages, --clients, --rounds, --seconds must be positive, "
                     "--size at least 1024")

    workdir = Path(tempfile.mkdtemp(prefix="postel-bench-"))
    workdir.chmod(0o755)  # the private Postfix runs as the postfix and nobody users
    opts = Options(
        messages=args.messages, clients=args.clients, message_size=args.size,
        rounds=args.rounds, seconds=args.seconds, workdir=workdir, keep=args.keep,
    )
    report = Report(notes=machine_notes(workdir))
    began = time.monotonic()
    try:
        for name in args.only or list(BENCHMARKS):
            print(f"== {name} ...", flush=True)
            report.rows += BENCHMARKS[name](opts, report)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(report.rows))
    print()
    for note in report.notes:
        print(f"* {note}")
    print(f"* total bench time {time.monotonic() - began:.0f} s")
    report.notes.append(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"* {report.notes[-1]}")
    json_path, md_path = write_results(report, ROOT / "bench" / "results")
    print(f"* results: {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
