"""Sequence sets (RFC 9051 9 sequence-set), including "*" and SEARCHRES "$" (RFC 5182)."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STAR = 0  # "*" inside a range: the largest number in use
_NUMBER = re.compile(r"[1-9][0-9]{0,9}\Z")
MAX_NUMBER = 0xFFFFFFFF


class SequenceError(ValueError):
    pass


@dataclass(frozen=True)
class SequenceSet:
    ranges: tuple[tuple[int, int], ...] = ()  # inclusive; STAR (0) stands for "*"
    saved: bool = False  # "$": the result of the last SEARCH ... SAVE

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        if text == "$":
            return cls((), saved=True)
        ranges: list[tuple[int, int]] = []
        for item in text.split(","):
            low, sep, high = item.partition(":")
            a = _number(low)
            b = _number(high) if sep else a
            ranges.append((a, b))
        return cls(tuple(ranges))

    @classmethod
    def of(cls, numbers: Iterable[int]) -> SequenceSet:
        """The compact set of the given numbers (runs become ranges)."""
        ranges: list[tuple[int, int]] = []
        for n in sorted(set(numbers)):
            if ranges and ranges[-1][1] == n - 1:
                ranges[-1] = (ranges[-1][0], n)
            else:
                ranges.append((n, n))
        return cls(tuple(ranges))

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def one(n: int) -> str:
            return "*" if n == STAR else str(n)

        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges) or self.saved

    def bounds(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with "*" replaced by `largest`, each ordered low..high."""
        out = []
        for a, b in self.ranges:
            a = largest if a == STAR else a
            b = largest if b == STAR else b
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, n: int, largest: int) -> bool:
        return any(a <= n <= b for a, b in self.bounds(largest))

    def select(self, numbers: Sequence[int]) -> list[int]:
        """The members of a sorted sequence that this set names ("*" = the last of
        them). Each range is a slice found by bisection, so `1:*` of 100,000 UIDs is
        one copy, not 100,000 comparisons."""
        if not numbers:
            return []
        slices = [
            numbers[bisect_left(numbers, a) : bisect_right(numbers, b)]
            for a, b in self.bounds(numbers[-1])
        ]
        if len(slices) == 1:
            return list(slices[0])
        return sorted({n for part in slices for n in part})

    def positions(self, count: int) -> list[tuple[int, int]]:
        """Sequence-number ranges as slices [start, stop) of `count` messages (numbers
        above `count` name nothing), for picking UIDs without expanding every number."""
        out = []
        for a, b in self.bounds(count):
            start, stop = max(a, 1) - 1, min(b, count)
            if start < stop:
                out.append((start, stop))
        return out

    def expand(self, largest: int, cap: int = 1 << 20) -> list[int]:
        """All numbers named, ascending (for sequence numbers, which are dense)."""
        found: set[int] = set()
        for a, b in self.bounds(largest):
            b = min(b, largest)
            if b - a > cap:
                raise SequenceError("sequence set too large")
            found.update(range(a, b + 1))
        return sorted(found)


def _number(text: str) -> int:
    if text == "*":
        return STAR
    if not _NUMBER.match(text) or int(text) > MAX_NUMBER:
        raise SequenceError(f"bad sequence number {text!r}")
    return int(text)
