"""The audit log: one row per change, written by the operation that made it."""

from __future__ import annotations

import json
import logging
from typing import Any

from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError
from postel.admin.names import existing_domain

log = logging.getLogger("postel.audit")


def record(ctx: AdminContext, actor: Actor | None, domain: str, action: str,
           target: str = "", ip: str = "", **detail: Any) -> None:
    """`actor` None: an anonymous request (a password reset), recorded with `ip`.

    The row is for a system admin (`/system/audit`, `/api/v1/audit`); the log line is for
    the operator's log shipping, and survives a store that is later restored or wiped.
    Neither ever holds a secret: a password change is recorded as "changed"."""
    fields = {"audit": action, "actor": actor.name if actor else "",
              "ip": actor.ip if actor else ip, "domain": domain, "target": target}
    ctx.store.web.audit_add(
        actor=fields["actor"],
        ip=fields["ip"],
        domain=domain,
        action=action,
        target=target,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else "",
    )
    log.info("audit %s %s", action, target, extra={"fields": {**fields, **(
        {"detail": detail} if detail else {})}})


def audit_log(ctx: AdminContext, actor: Actor, domain: str | None, offset: int,
              limit: int) -> tuple[int, list[dict[str, Any]]]:
    """One domain's log (its admins), or every domain's (system admins only)."""
    if domain is None:
        if not actor.is_admin:
            raise OperationError(Kind.FORBIDDEN,
                                 "Only system administrators see the audit log of every "
                                 "domain.")
    else:
        domain = existing_domain(domain)
        actor.require_domain(domain)
    total, rows = ctx.store.web.audit_list(domain, offset, limit)
    for row in rows:
        row["at"] = row["at"].isoformat()
    return total, rows
