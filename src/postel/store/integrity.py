"""What `postel check` and `postel backup` report: backend-neutral records.

The checks themselves live behind the store interface (`api.Integrity`,
`api.Backups`); these are the plain results the command line prints or dumps as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# Called as work proceeds: (stage, done, total). The command line draws a bar from it.
Progress = Callable[[str, int, int], None]


def no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


@dataclass(frozen=True)
class Problem:
    """One inconsistency. `repairable` ones are those `--repair` may fix without losing
    anything (an unreferenced file, a counter that is too low); the rest need a human."""

    kind: str  # e.g. "missing-blob", "orphan-blob", "uidnext-too-low"
    subject: str  # what it is about: "blob ab12...", "mailbox 7 (alice@x/INBOX)"
    detail: str
    repairable: bool
    repaired: bool = False


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    examined: dict[str, int] = field(default_factory=dict)  # what was looked at, counted

    def add(self, kind: str, subject: str, detail: str, *, repairable: bool = False) -> None:
        self.problems.append(Problem(kind, subject, detail, repairable))

    def mark_repaired(self, what: str) -> None:
        """The last problem added has been fixed by `what`."""
        last = self.problems[-1]
        self.problems[-1] = replace(last, repaired=True, detail=f"{last.detail}; {what}")

    @property
    def remaining(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    @property
    def clean(self) -> bool:
        return not self.remaining

    def as_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "examined": self.examined,
            "problems": [asdict(p) for p in self.problems],
        }


class BackupError(Exception):
    """A backup cannot be made, or a backup directory cannot be restored (tampered,
    incomplete, from another schema revision, or the target is not empty)."""


@dataclass(frozen=True)
class BackupSummary:
    tables: dict[str, int]  # rows per table
    blobs: int
    bytes: int
    revision: str  # the Alembic revision the rows belong to
