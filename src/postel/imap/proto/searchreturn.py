"""SEARCH and SORT return options (RFC 4466 2.6 search-return-opts, RFC 4731 ESEARCH,
RFC 5267 ESORT and CONTEXT, RFC 9394 PARTIAL).

``RETURN (MIN COUNT PARTIAL 1:50 UPDATE)`` becomes the option names in order plus the one
PARTIAL range, which is the only option with an argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postel.imap.proto.cursor import Cursor, ParseError

# RFC 9394 4 (and RFC 5267 5): partial-range-first = nz-number ":" nz-number,
# partial-range-last = "-" nz-number ":" "-" nz-number; "*" is not allowed.
_RANGE = re.compile(r"(-?)([1-9][0-9]{0,9}):(-?)([1-9][0-9]{0,9})\Z")
_MAX_NZ = 0xFFFFFFFF


@dataclass(frozen=True)
class PartialRange:
    """Positions in the result list, 1-based; from_end counts from the last result."""

    low: int
    high: int
    from_end: bool = False

    def __str__(self) -> str:
        # The response carries the range as requested (RFC 5267 4.4, RFC 9394 3.1).
        sign = "-" if self.from_end else ""
        return f"{sign}{self.low}:{sign}{self.high}"

    def window(self, results: list[int]) -> list[int]:
        """The results at these positions, in result order; fewer (or none) when the
        range runs past the end (RFC 5267 4.4)."""
        if self.from_end:
            # RFC 9394 3.1: -1 is the last result, -2 the one before it.
            end = len(results) - self.low + 1
            start = max(len(results) - self.high, 0)
            return results[start:max(end, 0)]
        return results[self.low - 1 : self.high]


def parse_partial_range(text: str) -> PartialRange:
    m = _RANGE.match(text)
    if m is None or m.group(1) != m.group(3):
        raise ParseError("PARTIAL needs a range like 1:100 or -1:-100")
    a, b = int(m.group(2)), int(m.group(4))
    if max(a, b) > _MAX_NZ:
        raise ParseError("PARTIAL range out of bounds")
    # "A range 500:400 is the same as 400:500" (RFC 9394 4).
    return PartialRange(min(a, b), max(a, b), from_end=m.group(1) == "-")


def parse_return_options(c: Cursor) -> tuple[tuple[str, ...], PartialRange | None]:
    """The parenthesized list after RETURN: option names (upper case) and the range."""
    c.expect(b"(")
    names: list[str] = []
    partial: PartialRange | None = None
    while not c.accept(b")"):
        if names:
            c.sp()
        word = c.atom().upper()
        if word == "PARTIAL":
            c.sp()
            partial = parse_partial_range(c.atom())
        names.append(word)
    # RFC 5267 4.4, RFC 9394 3.1: "either one PARTIAL, one ALL, or neither".
    if sum(n in ("PARTIAL", "ALL") for n in names) > 1:
        raise ParseError("only one of PARTIAL and ALL may be given, once")
    return tuple(names), partial
