"""Per-connection limits every protocol shares (issue 15 item 3), sans-IO.

A client that sends commands as fast as the network carries them costs the server a
store round trip each; one that stays connected for days holds a slot and a subscription.
These rules decide; the servers apply them with the protocol's own words.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CommandRate:
    """A token bucket: `burst` commands at once, then `rate` a second on average.

    Pipelining clients send a burst (an IMAP client syncing flags, an SMTP client's
    MAIL/RCPT/DATA group); a flood keeps on far past it. `rate` 0 turns it off.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def take(self) -> bool:
        """Count one command; False once the client is past its rate."""
        if not self.rate:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class SessionClock:
    """How long a connection may last in all (`max_session_time` seconds; 0: forever)."""

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + limit if limit else None

    def remaining(self) -> float | None:
        """Seconds left (never below 0), None without a limit."""
        if self._end is None:
            return None
        return max(0.0, self._end - self._clock())

    def over(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0.0

    def bound(self, timeout: float) -> float:
        """`timeout`, or less when the session ends sooner."""
        left = self.remaining()
        return timeout if left is None else min(timeout, left)

    def ends_first(self, timeout: float) -> bool:
        """True when the session ends before `timeout` seconds pass: a wait bounded by
        `bound(timeout)` that times out means the session is over (asking `over()`
        after the wait races the clock by a hair)."""
        left = self.remaining()
        return left is not None and left <= timeout
