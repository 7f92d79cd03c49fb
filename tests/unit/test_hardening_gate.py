"""The connection gate's counting (issue 15, item 3); the sockets are in
tests/integration/test_hardening_limits.py."""

from __future__ import annotations

import resource

from postel.connlimits import FD_RESERVE, ConnectionGate, default_max_connections


def test_per_address_and_total_caps() -> None:
    gate = ConnectionGate(max_total=3)
    first = gate.admit("imap", "192.0.2.1", 2)
    second = gate.admit("imap", "192.0.2.1", 2)
    assert first is not None and second is not None
    assert gate.admit("imap", "192.0.2.1", 2) is None  # per address
    assert gate.admit("pop3", "192.0.2.1", 2) is not None  # another protocol counts apart
    assert gate.admit("imap", "192.0.2.2", 2) is None  # the total
    first.release()
    first.release()  # a slot is given back once, however often it is released
    assert gate.total == 2
    assert gate.admit("imap", "192.0.2.2", 2) is not None


def test_the_soft_fd_limit_is_raised_and_the_total_stays_below_it() -> None:
    limit = default_max_connections()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert soft == hard
    assert limit == max(soft - FD_RESERVE, 16)
