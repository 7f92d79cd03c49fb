"""/metrics: what an operator graphs and alerts on, in the Prometheus text format.

Hand-written rather than prometheus_client: a handful of gauges read from the store at
scrape time needs no registry, and this keeps one less dependency in the install.
Readable only from `[web] metrics_allow` networks (loopback by default).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from postel.auth.limits import FailureLimiter
from postel.auth.service import Authenticator
from postel.web.state import client_ip, web_of

STARTED = time.monotonic()


def _allowed(ip: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


_LOGIN_COUNTERS = (
    ("login_cache_hits", "Logins whose password the credentials cache confirmed (no Argon2)."),
    ("login_cache_misses", "Logins the credentials cache could not confirm (Argon2 checked)."),
    ("login_cache_stored", "Verified passwords the credentials cache remembered."),
    ("login_cache_forgotten", "Cache entries dropped by a password change, disable or removal."),
    ("password_rehashes", "Stored hashes moved to the configured Argon2id parameters."),
)  # the limiter's own counters: _logins


def login_counts(authenticator: Authenticator) -> dict[str, int]:
    stats = authenticator.cache.stats
    counts = {f"login_cache_{key}": stats[key] for key in ("hits", "misses", "stored",
                                                           "forgotten")}
    counts["password_rehashes"] = authenticator.rehashed
    return counts


def _logins(limiter: FailureLimiter, blocked: int) -> list[str]:
    """The shared login limiter: failures per protocol, delays, refusals, keys held."""
    name = "postel_login_failures_total"
    lines = [f"# HELP {name} Failed logins (wrong password or unknown user), per protocol.",
             f"# TYPE {name} counter"]
    lines += [f'{name}{{protocol="{protocol}"}} {count}'
              for protocol, count in sorted(limiter.failures_by_protocol.items())]
    for name, help_text, value in (
        ("postel_logins_delayed_total", "Login attempts made to wait (recent failures).",
         limiter.stats["delayed"]),
        ("postel_logins_refused_total", "Login attempts refused unchecked (too many failures).",
         limiter.stats["refused"]),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
    name = "postel_login_blocked_keys"
    lines += [f"# HELP {name} Addresses (IPv6: /64s) and accounts at their failure limit now.",
              f"# TYPE {name} gauge", f"{name} {blocked}"]
    return lines


def render(
    counts: dict[str, int], queued: int, oldest: datetime | None,
    logins: dict[str, int] | None = None,
    limiter: FailureLimiter | None = None, blocked: int = 0,
) -> str:
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    gauges = [
        ("postel_queue_messages", "Outbound queue rows (one per message and domain).", queued),
        ("postel_queue_oldest_age_seconds", "Age of the oldest queued row.", round(age, 3)),
        ("postel_domains", "Hosted domains.", counts["domains"]),
        ("postel_accounts", "Accounts.", counts["accounts"]),
        ("postel_messages", "Messages stored in all mailboxes.", counts["messages"]),
        ("postel_message_bytes", "Bytes of the messages stored.", counts["message_bytes"]),
        ("postel_uptime_seconds", "Seconds since this process started.",
         round(time.monotonic() - STARTED, 3)),
    ]
    lines = []
    for name, help_text, value in gauges:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    # This process's logins (with several workers, each reports its own).
    for name, help_text in _LOGIN_COUNTERS:
        value = (logins or {}).get(name, 0)
        metric = f"postel_{name}_total"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter", f"{metric} {value}"]
    if limiter is not None:
        lines += _logins(limiter, blocked)
    return "\n".join(lines) + "\n"


async def metrics(request: Request) -> Response:
    web = web_of(request)
    if not _allowed(client_ip(request), web.context.config.web.metrics_allow):
        return PlainTextResponse("metrics are not available from your address\n", 403)
    store = web.context.store
    counts = await asyncio.to_thread(store.directory.counts)
    queued, oldest = await asyncio.to_thread(store.queue.stats)
    limiter = web.context.limiter
    blocked = await asyncio.to_thread(limiter.blocked_keys)  # SQL: the shared counts
    return PlainTextResponse(
        render(counts, queued, oldest, login_counts(web.context.authenticator), limiter,
               blocked),
        media_type="text/plain; version=0.0.4",
    )
