"""Store maintenance for system admins: the consistency check, backup and restore.

The work happens behind the store interface (`store.integrity`, `store.backups`); this
layer checks the permission and leaves an audit row for what changed the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from postel.admin import audit
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError
from postel.store.integrity import (
    BackupError,
    BackupSummary,
    CheckReport,
    Progress,
    no_progress,
)


def check(ctx: AdminContext, actor: Actor, *, repair: bool, stale_after: float,
          progress: Progress = no_progress) -> CheckReport:
    actor.require_admin()
    if stale_after < 0:
        raise OperationError(Kind.INVALID, "--stale-after must be 0 or more seconds")
    report = ctx.store.integrity.check(repair=repair, stale_after=stale_after,
                                       progress=progress)
    repaired = [p for p in report.problems if p.repaired]
    if repaired:
        audit.record(ctx, actor, "", "store.repair", "", repaired=len(repaired),
                     kinds=",".join(sorted({p.kind for p in repaired})))
    return report


def backup(ctx: AdminContext, actor: Actor, target: Path,
           progress: Progress = no_progress) -> BackupSummary:
    return _backup_step(ctx, actor, "store.backup", target,
                        lambda: ctx.store.backups.backup(target, progress))


def restore(ctx: AdminContext, actor: Actor, source: Path,
            progress: Progress = no_progress) -> BackupSummary:
    # Audited after the rows are in: the restored log ends with its own restore.
    return _backup_step(ctx, actor, "store.restore", source,
                        lambda: ctx.store.backups.restore(source, progress))


def _backup_step(ctx: AdminContext, actor: Actor, action: str, where: Path,
                 work: Callable[[], BackupSummary]) -> BackupSummary:
    actor.require_admin()
    try:
        summary = work()
    except BackupError as exc:
        raise OperationError(Kind.CONFLICT, str(exc)) from None
    audit.record(ctx, actor, "", action, str(where), blobs=summary.blobs)
    return summary
