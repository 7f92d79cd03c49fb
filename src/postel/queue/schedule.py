"""When to try a queued message again, and when to give up (RFC 5321 4.5.4.1).

RFC 5321 4.5.4.1 asks for at least 30 minutes between retries after the first ones and
at least 4-5 days before giving up; the default [outbound] schedule (5 min, 10, 30, 1 h,
2 h, 4 h, then every 4 h until 5 days) follows common practice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def retry_delay(failed_attempts: int, schedule: Sequence[float]) -> timedelta:
    """Seconds to wait after the `failed_attempts`-th failure (1-based); the last entry
    of the schedule repeats."""
    index = min(max(failed_attempts, 1), len(schedule)) - 1
    return timedelta(seconds=schedule[index])


def expired(created_at: datetime, now: datetime, expire_after: float) -> bool:
    return (now - created_at).total_seconds() >= expire_after


def delay_warning_due(
    created_at: datetime, now: datetime, warn_after: float, already_warned: bool
) -> bool:
    return warn_after > 0 and not already_warned and (
        (now - created_at).total_seconds() >= warn_after
    )
