"""Operator actions on the outbound queue and on DKIM signing keys (system admins)."""

from __future__ import annotations

from postel.admin import audit
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError
from postel.store.model import OutboundItem


def list_queue(ctx: AdminContext, actor: Actor) -> list[OutboundItem]:
    actor.require_admin()
    return ctx.store.queue.list_all()


def get_queued(ctx: AdminContext, actor: Actor, item_id: int) -> OutboundItem:
    actor.require_admin()
    item = ctx.store.queue.get(item_id)
    if item is None:
        raise OperationError(Kind.NOT_FOUND, f"no queue entry {item_id}")
    return item


def retry_now(ctx: AdminContext, actor: Actor, item_id: int | None) -> int:
    """Make one waiting entry (None: every one) due now; how many were."""
    actor.require_admin()
    count = ctx.store.queue.retry_now(item_id)
    if item_id is not None and count == 0:
        raise OperationError(Kind.NOT_FOUND, f"no waiting queue entry {item_id}")
    audit.record(ctx, actor, "", "queue.retry", "all" if item_id is None else str(item_id),
                 entries=count)
    return count


def delete_queued(ctx: AdminContext, actor: Actor, item_id: int) -> None:
    """Drop an entry without delivering or bouncing it."""
    actor.require_admin()
    item = ctx.store.queue.get(item_id)
    if item is None or not ctx.store.queue.delete(item_id):
        raise OperationError(Kind.NOT_FOUND, f"no queue entry {item_id}")
    audit.record(ctx, actor, item.domain, "queue.delete", str(item_id),
                 queue_id=item.queue_id)


def add_dkim_key(ctx: AdminContext, actor: Actor, domain: str, selector: str,
                 algorithm: str, private_key_pem: str) -> None:
    actor.require_admin()
    ctx.store.dkim.add_key(domain, selector, algorithm, private_key_pem)
    audit.record(ctx, actor, domain, "dkim.add", selector, algorithm=algorithm)
