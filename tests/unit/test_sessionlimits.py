"""The command-rate bucket and the session clock, on a hand-driven clock."""

from __future__ import annotations

from postel.sessionlimits import CommandRate, SessionClock


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_rate_holds() -> None:
    clock = Clock()
    rate = CommandRate(2.0, 5, clock)
    assert all(rate.take() for _ in range(5))
    assert not rate.take()
    clock.now += 1.0  # two more tokens a second
    assert rate.take() and rate.take()
    assert not rate.take()
    clock.now += 3600.0  # an idle client gets the burst back, no more
    assert sum(rate.take() for _ in range(10)) == 5


def test_rate_zero_is_no_limit() -> None:
    rate = CommandRate(0.0, 1, Clock())
    assert all(rate.take() for _ in range(10_000))


def test_session_clock() -> None:
    clock = Clock()
    session = SessionClock(60.0, clock)
    assert session.bound(300.0) == 60.0 and not session.over()
    assert session.ends_first(300.0) and not session.ends_first(30.0)
    clock.now += 50.0
    assert session.bound(5.0) == 5.0
    clock.now += 20.0
    assert session.over() and session.remaining() == 0.0
    assert SessionClock(0.0, clock).bound(300.0) == 300.0
    assert not SessionClock(0.0, clock).over()
    assert not SessionClock(0.0, clock).ends_first(1e9)
