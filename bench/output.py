"""The run's table as JSON and Markdown files under bench/results/ (kept out of git)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from bench.framework import Report, fmt


def markdown(report: Report) -> str:
    lines = ["| scenario | metric | Postel | peer | peer value | ratio |",
             "|---|---|---:|---|---:|---:|"]
    for row in report.rows:
        ratio = row.ratio
        metric = row.metric + ("" if row.higher_is_better else " (lower=better)")
        lines.append(f"| {row.benchmark} | {metric} | {fmt(row.postel)} | "
                     f"{row.reference_name} | {fmt(row.reference)} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}x'} |")
    lines += ["", *(f"- {note}" for note in report.notes)]
    return "\n".join(lines) + "\n"


def write_results(report: Report, folder: Path) -> tuple[Path, Path]:
    """bench-<UTC time>.json and .md; the ratio is always Postel / peer."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    rows = [dict(asdict(row), ratio=row.ratio) for row in report.rows]
    json_path = folder / f"bench-{stamp}.json"
    json_path.write_text(json.dumps({"rows": rows, "notes": report.notes}, indent=2) + "\n")
    md_path = folder / f"bench-{stamp}.md"
    md_path.write_text(markdown(report))
    return json_path, md_path
