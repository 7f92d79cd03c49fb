"""CPU accounting from /proc (Linux): where the cores went during a measured run."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu(pid: int, *, children: bool = False) -> float:
    """Seconds of CPU (user + system, all threads) a process used; with `children`, add
    the children it has already reaped."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def tree_cpu(root: int) -> float:
    """CPU seconds of a process, its live descendants, and the descendants it reaped."""
    if root <= 1:
        raise ValueError(f"not a server's process id: {root}")  # 0 or 1 = the whole machine
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                parents[int(entry)] = int(fields[1])
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(process_cpu(pid, children=True) for pid in tree)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class SystemCpu:
    busy: float  # seconds of CPU busy summed over all cores
    total: float  # seconds of CPU summed over all cores

    @staticmethod
    def read() -> SystemCpu:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        values = [int(v) for v in parts]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # user..steal; guest is already counted in user
        return SystemCpu((total - idle) / TICKS, total / TICKS)

    def since(self, before: SystemCpu) -> float:
        """Busy fraction of the whole machine (0..1) between two readings."""
        total = self.total - before.total
        return (self.busy - before.busy) / total if total > 0 else 0.0
