"""The IMAP receiver's literal budget (issue 15, item 2): before login only small
literals, and every command a total, so no command grows the server without bound.
Each input is also fed one byte at a time."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.proto.receiver import (
    CommandBytes,
    Event,
    Flood,
    LiteralLimits,
    LiteralTooBig,
    NeedContinuation,
    NonSyncLiteralRefused,
    Receiver,
)

PRE_LOGIN = LiteralLimits(max_literal_size=4096, max_command_size=16 * 1024)


def run(data: bytes, *, logged_in: bool, split: bool, **limits: int) -> list[Event]:
    receiver = Receiver(pre_login=PRE_LOGIN, logged_in=lambda: logged_in, **limits)
    out: list[Event] = []
    for chunk in ([data[i : i + 1] for i in range(len(data))] if split else [data]):
        receiver.feed(chunk)
        while (event := receiver.next_event()) is not None:
            out.append(event)
    return out


@pytest.mark.parametrize("split", [False, True])
def test_a_big_non_synchronizing_literal_before_login_is_refused(split: bool) -> None:
    data = b"a LOGIN {262144+}\r\n" + b"x" * 5000
    assert run(data, logged_in=False, split=split) == [NonSyncLiteralRefused("a", 262144)]


@pytest.mark.parametrize("split", [False, True])
def test_many_small_literals_before_login_exhaust_the_command_budget(split: bool) -> None:
    # Each literal is allowed alone; together they pass the command's budget.
    data = b"a LOGIN {4000+}\r\n" + b"u" * 4000 + (b" {4000+}\r\n" + b"p" * 4000) * 5
    evs = run(data, logged_in=False, split=split)
    assert evs == [NonSyncLiteralRefused("a", 4000)]


@pytest.mark.parametrize("split", [False, True])
def test_a_big_synchronizing_literal_before_login_gets_no_continuation(split: bool) -> None:
    evs = run(b"a LOGIN {5000}\r\n", logged_in=False, split=split)
    assert evs == [LiteralTooBig("a", 5000, True)]


@pytest.mark.parametrize("split", [False, True])
def test_small_literals_before_login_still_work(split: bool) -> None:
    data = b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n"
    evs = run(data, logged_in=False, split=split)
    assert isinstance(evs[0], NeedContinuation) and isinstance(evs[1], CommandBytes)


@pytest.mark.parametrize("split", [False, True])
def test_after_login_the_command_budget_covers_all_literals(split: bool) -> None:
    data = b"a APPEND INBOX {600+}\r\n" + b"m" * 600 + b" {600}\r\n"
    evs = run(data, logged_in=True, split=split, max_literal_size=1000, max_command_size=1000)
    assert evs == [LiteralTooBig("a", 600, True)]
    evs = run(b"a APPEND INBOX {600+}\r\n" + b"m" * 600 + b"\r\n", logged_in=True,
              split=split, max_literal_size=1000, max_command_size=1000)
    assert isinstance(evs[0], CommandBytes)


_FLOOD = b"a NOOP\r\nb NOOP " + b"z" * 2000 + b"\r\nc NOOP\r\n"


@settings(max_examples=50)
@given(st.lists(st.integers(1, len(_FLOOD) - 1), max_size=10))
def test_a_never_ending_line_floods_the_same_in_any_chunking(cuts: list[int]) -> None:
    points = sorted({0, len(_FLOOD), *cuts})
    receiver = Receiver(max_line_length=100)
    got: list[Event] = []
    for a, b in itertools.pairwise(points):
        receiver.feed(_FLOOD[a:b])
        while (event := receiver.next_event()) is not None:
            got.append(event)
    assert isinstance(got[0], CommandBytes)
    assert got[1:] == [Flood("b")]  # 2000 > 16 * 100; nothing after it is read
