"""The 2-minute soak (`make soak` runs the 10-minute one): every protocol under a mixed
load; nothing acknowledged is lost, no error, no fd left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.soak import run_soak


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_minute_soak(tmp_path: Path) -> None:
    result = run_soak(120, tmp_path)
    print(result.report())
    assert result.lost == 0, result.report()
    assert not result.errors and not result.log_errors, result.report()
    assert all(result.iterations.get(k) for k in (
        "smtp-in", "submission", "imap", "pop3", "webmail")), result.report()
    # Every session has ended: the fds are back near where they started (a leak of one
    # per session would show hundreds).
    assert result.fds_end <= result.fds_start + 20, result.report()
