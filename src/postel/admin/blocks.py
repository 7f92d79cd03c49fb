"""What the login limiter holds against addresses and accounts, and lifting it (system
admins): `postel block list` and `postel block remove KEY`, on the store's shared counts,
so they act on a running server (and every worker of it)."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from postel.admin import audit
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import Kind, OperationError
from postel.auth.limits import ip_key
from postel.auth.service import login_key
from postel.config import AuthConfig


@dataclass(frozen=True)
class Block:
    scope: str  # "ip" (an address, or an IPv6 /64) or "account"
    key: str
    failures: int  # within the window
    state: str  # "blocked" (refused / locked for strangers) or "delayed"
    until: float  # Unix time the state ends, unless more failures come


def _state(times: list[float], limit: int, window: float) -> tuple[str, float] | None:
    """Like FailureLimiter: at `limit` failures blocked, from a third of it delayed."""
    free = max(1, limit // 3)
    count = len(times)
    if not limit or count < free:
        return None
    if count >= limit:
        return "blocked", times[count - limit] + window
    return "delayed", times[count - free] + window


def list_blocks(ctx: AdminContext, actor: Actor, auth: AuthConfig) -> list[Block]:
    actor.require_admin()
    window = auth.failure_window
    limits = {"ip": auth.max_failures_per_ip, "account": auth.max_failures_per_account}
    blocks = []
    for scope, key, times in ctx.store.auth_failures.windows(since=time.time() - window):
        if scope not in limits:
            continue  # "checks": the budget of a locked account, shown with the account
        state = _state(times, limits[scope], window)
        if state is not None:
            blocks.append(Block(scope, key, len(times), *state))
    return sorted(blocks, key=lambda b: (b.state != "blocked", -b.failures, b.key))


def remove_block(ctx: AdminContext, actor: Actor, text: str) -> int:
    """Forget the failures of an address (its /64 for IPv6), a network as listed, or an
    account; how many were forgotten. The running server sees it at the next login."""
    actor.require_admin()
    failures = ctx.store.auth_failures
    if "@" in text:
        account = login_key(text)
        if account is None:
            raise OperationError(Kind.INVALID, f"{text!r} is not an email address")
        count = failures.clear("account", account) + failures.clear("checks", account)
        count += failures.clear_prefix("checks", account + " ")
        scope, key = "account", account
    else:
        try:
            key = (str(ipaddress.ip_network(text, strict=False)) if "/" in text
                   else ip_key(str(ipaddress.ip_address(text))))
        except ValueError:
            raise OperationError(Kind.INVALID, f"{text!r} is neither an IP address, a "
                                 "network nor an email address") from None
        scope = "ip"
        count = failures.clear("ip", key)
    if not count:
        raise OperationError(Kind.NOT_FOUND, f"no failed logins recorded for {key}")
    audit.record(ctx, actor, "", "block.remove", key, scope=scope, failures=count)
    return count
