"""ESEARCH result data for SEARCH and SORT, and the live result sets of RFC 5267 contexts.

Pure functions over lists of numbers, so the rules are tested without a store or socket:
what MIN, MAX, ALL, COUNT and PARTIAL say for an ordered result (RFC 4731 3.1, RFC 5267
3.1 and 4.4), and how an old result becomes a new one as ADDTO / REMOVEFROM pairs
(RFC 5267 4.3.3, 4.3.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.searchreturn import PartialRange
from postel.imap.proto.sequence import SequenceSet

# Options that ask for result data; without any of them the answer is ALL (RFC 4731 3.1),
# unless the command only SAVEs (RFC 5182 2.1).
DATA_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "PARTIAL"})


def ordered_set(numbers: Iterable[int]) -> str:
    """A sequence-set that keeps the given order; runs become ranges only where they
    ascend one by one (RFC 5267 3.2: "12:10 SHOULD be avoided")."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in runs)


def result_items(
    numbers: Sequence[int], options: Iterable[str], partial: PartialRange | None, *,
    sorted_order: bool,
) -> list[str]:
    """The ESEARCH return data for a result in its final order.

    For SEARCH the numbers ascend and MIN/MAX are the lowest/highest; for SORT
    (RFC 5267 3.1) MIN and MAX are the first and last in sort order and ALL keeps it."""
    wanted = set(options)
    out: list[str] = []
    if numbers:
        if "MIN" in wanted:
            out.append(f"MIN {numbers[0] if sorted_order else min(numbers)}")
        if "MAX" in wanted:
            out.append(f"MAX {numbers[-1] if sorted_order else max(numbers)}")
        if "ALL" in wanted:
            out.append(f"ALL {ordered_set(numbers) if sorted_order else SequenceSet.of(numbers)}")
    if "COUNT" in wanted:
        out.append(f"COUNT {len(numbers)}")
    if partial is not None:
        # RFC 5267 4.4 / RFC 9394 3.1: the range as asked, then the results or NIL.
        window = partial.window(list(numbers))
        shown = (ordered_set(window) if sorted_order else str(SequenceSet.of(window))) \
            if window else "NIL"
        out.append(f"PARTIAL ({partial} {shown})")
    return out


# -- contexts (RFC 5267 4) ------------------------------------------------------------------


@dataclass
class SearchContext:
    """One SEARCH or SORT with RETURN (UPDATE): its program and its current result.

    `uids` is the result in its order (mailbox order for SEARCH, RFC 5267 4.1; sort order
    for SORT); the numbers sent are UIDs or sequence numbers as the command was given
    (RFC 5267 4.3.2)."""

    tag: str
    by_uid: bool
    key: SearchKey
    criteria: tuple[tuple[str, bool], ...] | None  # None: SEARCH
    uids: list[int] = field(default_factory=list)
    sort_keys: dict[int, Any] = field(default_factory=dict)  # SORT: uid -> its order key

    @property
    def sorted_order(self) -> bool:
        return self.criteria is not None


Number = Callable[[int], int]


def removals(ctx: SearchContext, gone: set[int], number: Number) -> list[str]:
    """REMOVEFROM pairs taking `gone` out of the context result (and doing it).

    SEARCH results use position 0 and one set in mailbox order (RFC 5267 4.3.4); SORT
    results name the position of each run of adjacent removed results, with positions
    counted after the pairs before it were applied (RFC 5267 4.3.2: in order)."""
    if not gone & set(ctx.uids):
        return []
    if not ctx.sorted_order:
        taken = [u for u in ctx.uids if u in gone]
        ctx.uids = [u for u in ctx.uids if u not in gone]
        return [f"0 {SequenceSet.of(number(u) for u in taken)}"]
    pairs: list[str] = []
    kept: list[int] = []
    run: list[int] = []
    for uid in [*ctx.uids, 0]:  # 0: a sentinel that closes the last run
        if uid in gone:
            run.append(uid)
            continue
        if run:
            pairs.append(f"{len(kept) + 1} {ordered_set(number(u) for u in run)}")
            run = []
        if uid:
            kept.append(uid)
    ctx.uids = kept
    return pairs


def additions(ctx: SearchContext, result: list[int], number: Number) -> list[str]:
    """ADDTO pairs turning the context result into `result`, which keeps every current
    member in the same order (and doing it). SEARCH: position 0, one set in mailbox
    order (RFC 5267 4.3.3 RECOMMENDED); SORT: each run of new results at the position
    its first one takes."""
    present = set(ctx.uids)
    if all(u in present for u in result):
        ctx.uids = list(result)
        return []
    ctx.uids = list(result)
    if not ctx.sorted_order:
        return [f"0 {SequenceSet.of(number(u) for u in result if u not in present)}"]
    pairs: list[str] = []
    run: list[int] = []
    start = 0
    for i, uid in enumerate([*result, 0]):
        if uid and uid not in present:
            if not run:
                start = i
            run.append(uid)
            continue
        if run:
            pairs.append(f"{start + 1} {ordered_set(number(u) for u in run)}")
            run = []
    return pairs


def update_line(ctx: SearchContext, item: str, pairs: list[str]) -> str:
    """`ESEARCH (TAG "t") [UID] ADDTO (pos set pos set ...)` (RFC 5267 5)."""
    uid = " UID" if ctx.by_uid else ""
    return f'ESEARCH (TAG "{ctx.tag}"){uid} {item} ({" ".join(pairs)})'
