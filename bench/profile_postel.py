"""Where Postel's time goes under a benchmark's load: py-spy on the server process.

    .venv/bin/pip install py-spy        # once; not a project dependency
    .venv/bin/python bench/profile_postel.py --protocol smtp --messages 2000 --out /tmp/prof
    .venv/bin/python bench/profile_postel.py --protocol imap   # or pop3: retrieval load

Writes <out>/cpu.txt (on-CPU samples) and <out>/wall.txt (all samples, idle threads
included: where a message waits) as collapsed stacks, and prints the top frames of each.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.framework import Options  # noqa: E402
from bench.mailstore import (  # noqa: E402
    _postel_config,
    _runner,
    close_sessions,
    make_boxes,
    open_sessions,
    populate_postel,
    read_pass,
)
from bench.smtp_delivery import POSTEL_CONFIG, RECIPIENT  # noqa: E402
from bench.smtp_load import run_load  # noqa: E402


def stacks(collapsed: Path) -> list[tuple[list[str], int]]:
    """py-spy's collapsed format: `frame;frame;... count` per line."""
    found = []
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            found.append((stack.split(";"), int(samples)))
    return found


def top_frames(collapsed: Path, count: int = 25) -> list[tuple[int, str]]:
    """Samples per leaf-most frame that is Postel's or a library's (not asyncio/threading)."""
    totals: collections.Counter[str] = collections.Counter()
    for frames, samples in stacks(collapsed):
        totals[frames[-1]] += samples
    return [(n, frame) for frame, n in totals.most_common(count)]


def postel_frames(collapsed: Path, count: int = 25) -> list[tuple[int, str]]:
    """Samples per innermost postel.* frame: which of Postel's lines the time is under."""
    totals: collections.Counter[str] = collections.Counter()
    for frames, samples in stacks(collapsed):
        own = [f for f in frames if "postel/" in f]
        totals[own[-1] if own else "(outside postel)"] += samples
    return [(n, frame) for frame, n in totals.most_common(count)]


def main() -> int:
    from tests.harness import PostelServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("smtp", "pop3", "imap"), default="smtp")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "postel-prof")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="postel-prof-"))
    protocol = args.protocol
    config = POSTEL_CONFIG if protocol == "smtp" else _postel_config(protocol)
    server = PostelServer(root, services=(protocol,), extra_config=config)
    boxes = make_boxes(Options(messages=args.messages, clients=args.clients))
    try:
        if protocol == "smtp":
            server.add_user(RECIPIENT)
        else:
            populate_postel(server, boxes)
        server.start()
        assert server.process is not None
        pid = str(server.process.pid)
        runner = _runner()
        sessions = {}
        if protocol != "smtp":  # log in first: Argon2id logins are not what is profiled
            sessions = runner.run(open_sessions(protocol, server.port(protocol), boxes))
        spies = [
            subprocess.Popen(
                [spy, "record", "--pid", pid, "--rate", "250", "--format", "raw", "--threads",
                 "--nonblocking", *extra, "-o", str(args.out / name)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for name, extra in (("cpu.txt", []), ("wall.txt", ["--idle"]))
        ]
        if protocol == "smtp":
            load = run_load(server.port("smtp"), messages=args.messages, clients=args.clients,
                            size=10 * 1024, recipient=RECIPIENT)
            summary = f"{load.sent} msgs, {load.rate:.0f} msg/s"
        else:
            passes = [runner.run(read_pass(sessions, boxes, lambda: 0.0)) for _ in range(3)]
            runner.run(close_sessions(sessions))
            summary = f"{sum(p.retrieved for p in passes)} msgs read, " + ", ".join(
                f"{p.rate:.0f}" for p in passes
            ) + " msg/s"
        runner.close()
        for process in spies:
            process.send_signal(2)  # SIGINT: py-spy writes its output and exits
            process.wait(30)
        print(f"{summary} (slower than unprofiled runs)")
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
    for name in ("cpu.txt", "wall.txt"):
        path = args.out / name
        if not path.exists():
            print(f"{name}: py-spy wrote nothing (ptrace not allowed?)")
            continue
        total = sum(samples for _, samples in stacks(path)) or 1
        print(f"\n== {name}: {total} samples; by innermost Postel frame")
        for samples, frame in postel_frames(path):
            print(f"{samples * 100 / total:5.1f}%  {frame}")
        print(f"-- {name}: by leaf frame")
        for samples, frame in top_frames(path, 15):
            print(f"{samples * 100 / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
