"""The small frame every benchmark plugs into: options in, result rows out, one table.

A benchmark is a function `(Options) -> list[Row]` registered in `bench/run.py`. It runs
Postel and the reference server (Postfix, Dovecot, ...) itself, in the same run on the same
machine, and returns one row per metric. The runner prints every row with the ratio
Postel/reference, so nothing here ever compares against a number from another machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class BenchError(Exception):
    """A benchmark cannot give a trustworthy number (lost mail, a server that won't start)."""


@dataclass(frozen=True)
class Options:
    messages: int = 2000
    clients: int = 20
    message_size: int = 10 * 1024
    rounds: int = 3  # runs per server, alternating which goes first; the best one is shown
    seconds: float = 20.0  # length of one measured window of the time-bound loads (IMAP load)
    workdir: Path | None = None  # None: a fresh temporary directory, removed afterwards
    keep: bool = False  # keep the temporary directories (configs, logs, mailboxes)


@dataclass(frozen=True)
class Row:
    benchmark: str  # e.g. "SMTP delivery 10 KB x20"
    metric: str  # e.g. "accepted msg/s"
    postel: float | None
    reference: float | None
    reference_name: str  # "Postfix", "Dovecot"
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.postel is None or self.reference is None or self.reference == 0:
            return None
        return self.postel / self.reference


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Benchmark = Callable[[Options, Report], list[Row]]


def fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    """Rows as an aligned text table; the ratio column is always Postel / reference."""
    header = ("benchmark", "metric", "Postel", "reference", "ref value", "Postel/ref", "")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        ratio = row.ratio
        verdict = ""
        if ratio is not None:
            better = ratio >= 1 if row.higher_is_better else ratio <= 1
            verdict = "(better)" if better else "(worse)"
            if abs(ratio - 1) < 0.05:
                verdict = "(same)"
        lines.append(
            (
                row.benchmark,
                row.metric + ("" if row.higher_is_better else " (lower=better)"),
                fmt(row.postel),
                row.reference_name,
                fmt(row.reference),
                "-" if ratio is None else f"{ratio:.2f}x",
                verdict + (f" {row.note}" if row.note else ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = {2, 4, 5}
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
