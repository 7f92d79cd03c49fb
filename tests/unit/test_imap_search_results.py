"""RFC 5267 / RFC 9394 without sockets: RETURN option parsing (also byte by byte), the
ESEARCH data items, and ADDTO/REMOVEFROM pairs checked by applying them as a client must
(RFC 5267 4.3.3, 4.3.4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.proto.commands import CancelUpdate, CommandError, Search, Sort, parse_command
from postel.imap.proto.receiver import CommandBytes, Receiver
from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.searchreturn import PartialRange
from postel.imap.search_results import (
    SearchContext,
    additions,
    ordered_set,
    removals,
    result_items,
)


def parse(line: bytes, *, split: bool = False) -> object:
    receiver = Receiver()
    chunks = [line[i : i + 1] for i in range(len(line))] if split else [line]
    found = []
    for chunk in chunks:
        receiver.feed(chunk)
        while (event := receiver.next_event()) is not None:
            assert isinstance(event, CommandBytes)
            found.append(parse_command(event).args)
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("split", [False, True])
def test_return_options_parse(split: bool) -> None:
    search = parse(b"a UID SEARCH RETURN (UPDATE PARTIAL -1:-50 COUNT) UNSEEN\r\n", split=split)
    assert isinstance(search, Search)
    assert search.returns == ("UPDATE", "PARTIAL", "COUNT")
    assert search.partial == PartialRange(1, 50, from_end=True)
    sort = parse(b"a SORT RETURN (MIN PARTIAL 9:5) (REVERSE DATE) UTF-8 ALL\r\n", split=split)
    assert isinstance(sort, Sort)
    assert sort.returns == ("MIN", "PARTIAL") and sort.partial == PartialRange(5, 9)
    assert sort.criteria == (("DATE", True),) and sort.key == SearchKey("ALL")
    plain = parse(b"a SORT (DATE) UTF-8 ALL\r\n", split=split)
    assert isinstance(plain, Sort) and plain.returns is None and plain.partial is None
    cancel = parse(b'a CANCELUPDATE "B01" "B02"\r\n', split=split)
    assert cancel == CancelUpdate(("B01", "B02"))


@pytest.mark.parametrize("line", [
    b"a SEARCH RETURN (PARTIAL 1:2 ALL) ALL", b"a SEARCH RETURN (ALL ALL) ALL",
    b"a SEARCH RETURN (PARTIAL 0:2) ALL", b"a SEARCH RETURN (PARTIAL -1:2) ALL",
    b"a SEARCH RETURN (PARTIAL 1:*) ALL", b"a SEARCH RETURN (PARTIAL) ALL",
    b"a SORT RETURN (COUNT (DATE) UTF-8 ALL", b"a CANCELUPDATE", b"a CANCELUPDATE B01",
    b'a CANCELUPDATE "B01"x',
])
def test_bad_return_options_are_syntax_errors(line: bytes) -> None:
    with pytest.raises(CommandError) as err:
        parse(line + b"\r\n")
    assert err.value.tag == "a"


def test_partial_windows() -> None:
    results = [10, 20, 30, 40, 50]
    assert PartialRange(2, 3).window(results) == [20, 30]
    assert PartialRange(4, 9).window(results) == [40, 50]
    assert PartialRange(6, 9).window(results) == []
    assert PartialRange(1, 2, from_end=True).window(results) == [40, 50]
    assert PartialRange(5, 9, from_end=True).window(results) == [10]
    assert PartialRange(6, 9, from_end=True).window(results) == []
    assert str(PartialRange(1, 2, from_end=True)) == "-1:-2"


def test_ordered_sets_keep_the_order() -> None:
    assert ordered_set([1, 2, 3, 7, 5, 6]) == "1:3,7,5:6"
    assert ordered_set([3, 2, 1]) == "3,2,1"  # RFC 5267 3.2: never 3:1
    assert ordered_set([]) == ""


def test_result_items() -> None:
    assert result_items([5, 1, 3], ["MIN", "MAX", "ALL", "COUNT"], None, sorted_order=True) == [
        "MIN 5", "MAX 3", "ALL 5,1,3", "COUNT 3"]
    assert result_items([1, 3, 5], ["MIN", "MAX", "ALL"], None, sorted_order=False) == [
        "MIN 1", "MAX 5", "ALL 1,3,5"]
    assert result_items([], ["MIN", "ALL", "COUNT"], PartialRange(1, 5), sorted_order=False) == [
        "COUNT 0", "PARTIAL (1:5 NIL)"]


def _apply(result: list[int], item: str, pairs: list[str]) -> list[int]:
    """What a client does with one ADDTO or REMOVEFROM (RFC 5267 4.3.3, 4.3.4)."""
    out = list(result)
    for pair in pairs:
        position, text = pair.split(" ")
        numbers: list[int] = []
        for piece in text.split(","):  # in order; a:b ascends (RFC 5267 3.2)
            a, _, b = piece.partition(":")
            numbers += range(int(a), int(b or a) + 1)
        pos = int(position)
        if item == "REMOVEFROM":
            if pos == 0:
                out = [n for n in out if n not in numbers]
            else:
                assert out[pos - 1 : pos - 1 + len(numbers)] == numbers
                del out[pos - 1 : pos - 1 + len(numbers)]
        elif pos == 0:
            out = sorted(out + numbers)
        else:
            out[pos - 1 : pos - 1] = numbers
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 60), unique=True, max_size=30),
    st.lists(st.integers(1, 60), unique=True, max_size=30),
    st.booleans(),
)
def test_updates_turn_the_old_result_into_the_new(
    old: list[int], new: list[int], sorted_order: bool,
) -> None:
    # A fixed "sort order" (by value mod 7, then value) stands in for SORT criteria.
    def order(values: set[int]) -> list[int]:
        return sorted(values, key=lambda v: (v % 7, v)) if sorted_order else sorted(values)

    criteria = (("SIZE", False),) if sorted_order else None
    ctx = SearchContext("t", True, SearchKey("ALL"), criteria, order(set(old)))
    target = order(set(new))
    client = list(ctx.uids)
    pairs = removals(ctx, set(ctx.uids) - set(target), lambda u: u)
    if pairs:
        client = _apply(client, "REMOVEFROM", pairs)
    assert client == ctx.uids
    pairs = additions(ctx, target, lambda u: u)
    if pairs:
        client = _apply(client, "ADDTO", pairs)
    assert client == ctx.uids == target
