"""The sans-IO IMAP wire layer: framing, parsing, serializing; no sockets."""

from __future__ import annotations

import contextlib
import itertools
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postel.imap.proto import mutf7
from postel.imap.proto import responses as r
from postel.imap.proto.bodystructure import MultiPart, SinglePart
from postel.imap.proto.commands import (
    Append,
    CommandError,
    Fetch,
    ListCmd,
    Login,
    Search,
    Select,
    Sort,
    Store,
    parse_command,
)
from postel.imap.proto.cursor import Atom, Cursor, ParseError
from postel.imap.proto.envelope import Envelope
from postel.imap.proto.fetchatt import FetchAtt, Section
from postel.imap.proto.receiver import (
    CommandBytes,
    Event,
    LiteralTooBig,
    NeedContinuation,
    RawLine,
    Receiver,
    TooLong,
)
from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.sequence import STAR, SequenceSet


def events(data: bytes, *, split: bool = False, **limits: int) -> list[Event]:
    receiver = Receiver(**limits)
    out: list[Event] = []
    chunks = [data[i : i + 1] for i in range(len(data))] if split else [data]
    for chunk in chunks:
        receiver.feed(chunk)
        while (event := receiver.next_event()) is not None:
            out.append(event)
    return out


def command(line: bytes, **kw: bool) -> object:
    evs = [e for e in events(line) if isinstance(e, CommandBytes)]
    assert len(evs) == 1
    return parse_command(evs[0], **kw)


def normalized(evs: list[Event]) -> list[object]:
    out: list[object] = []
    for e in evs:
        if isinstance(e, CommandBytes):
            out.append([p if isinstance(p, bytes) else ("L", p.read_all()) for p in e.parts])
        else:
            out.append(e)
    return out


# -- framing ------------------------------------------------------------------------------


def test_plain_lines_and_pipelining() -> None:
    evs = events(b"a1 NOOP\r\na2 CAPABILITY\r\n")
    assert normalized(evs) == [[b"a1 NOOP"], [b"a2 CAPABILITY"]]


def test_synchronizing_literal_asks_for_continuation() -> None:
    evs = events(b"a LOGIN {5}\r\nalice {3}\r\npwd\r\n")
    assert normalized(evs) == [
        NeedContinuation(),
        NeedContinuation(),
        [b"a LOGIN ", ("L", b"alice"), b" ", ("L", b"pwd"), b""],
    ]


def test_literal_plus_and_literal8_need_no_continuation() -> None:
    evs = events(b"a APPEND INBOX {3+}\r\nabc ~{2+}\r\n\x00\x01\r\n")
    assert normalized(evs) == [[b"a APPEND INBOX ", ("L", b"abc"), b" ", ("L", b"\x00\x01"), b""]]
    cmd = next(e for e in evs if isinstance(e, CommandBytes))
    assert cmd.parts[3].binary  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [
        b"a1 LOGIN {5}\r\nalice {3}\r\npwd\r\na2 NOOP\r\n",
        b"t APPEND INBOX (\\Seen) {10+}\r\n0123456789\r\nt2 LOGOUT\r\n",
        b"x SEARCH CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa9t\xc3\r\n",
    ],
)
def test_splitting_input_never_matters(data: bytes) -> None:
    assert normalized(events(data)) == normalized(events(data, split=True))


def test_overlong_line_is_refused_and_the_next_command_works() -> None:
    evs = events(b"a1 NOOP " + b"x" * 200 + b"\r\na2 NOOP\r\n", max_line_length=100)
    assert evs[0] == TooLong("a1")
    assert normalized(evs[1:]) == [[b"a2 NOOP"]]
    evs = events(b"a1 NOOP " + b"x" * 200 + b"\r\na2 NOOP\r\n", split=True, max_line_length=100)
    assert evs[0] == TooLong("a1")
    assert normalized(evs[1:]) == [[b"a2 NOOP"]]


def test_too_big_synchronizing_literal_is_refused_without_continuation() -> None:
    evs = events(b"a APPEND INBOX {999}\r\nb NOOP\r\n", max_literal_size=10)
    assert evs == [LiteralTooBig("a", 999, True), CommandBytes([b"b NOOP"])]


def test_too_big_literal_plus_is_skipped() -> None:
    evs = events(b"a APPEND INBOX {20+}\r\n" + b"y" * 20 + b"\r\nb NOOP\r\n",
                 max_literal_size=10)
    assert evs == [LiteralTooBig("a", 20, False), CommandBytes([b"b NOOP"])]


def test_big_literals_go_to_the_spool() -> None:
    spooled: list[int] = []

    def spool(size: int) -> object:
        import io

        spooled.append(size)
        return io.BytesIO()

    receiver = Receiver(spool=spool, spool_threshold=8)  # type: ignore[arg-type]
    receiver.feed(b"a APPEND INBOX {16+}\r\n0123456789abcdef\r\n")
    event = receiver.next_event()
    assert isinstance(event, CommandBytes)
    assert spooled == [16]
    assert event.parts[1].file is not None  # type: ignore[union-attr]
    assert event.parts[1].read_all() == b"0123456789abcdef"  # type: ignore[union-attr]


def test_raw_mode_returns_the_next_line() -> None:
    receiver = Receiver()
    receiver.feed(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    assert isinstance(receiver.next_event(), CommandBytes)
    receiver.raw_mode = True
    assert receiver.next_event() == RawLine(b"DONE")
    receiver.raw_mode = False
    assert receiver.next_event() == CommandBytes([b"b NOOP"])


# -- parsing -------------------------------------------------------------------------------


def test_login_with_quoted_and_literal() -> None:
    assert command(b'a LOGIN "al\\"ice" {3+}\r\npwd\r\n').args == Login('al"ice', "pwd")


def test_errors_carry_the_tag() -> None:
    with pytest.raises(CommandError) as info:
        command(b"abc FROB\r\n")
    assert info.value.tag == "abc"
    with pytest.raises(CommandError):
        command(b"a FETCH 1:* (BODY[1.MIMEX])\r\n")
    with pytest.raises(CommandError):
        command(b"a LOGIN alice\r\n")


def test_fetch_attributes() -> None:
    cmd = command(
        b"a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)] BODY[1.2.MIME] "
        b"BINARY[2]<0.100> BODY[]<5.10> BODYSTRUCTURE) (CHANGEDSINCE 12 VANISHED)\r\n"
    )
    assert cmd.name == "UID FETCH"  # type: ignore[attr-defined]
    args = cmd.args  # type: ignore[attr-defined]
    assert isinstance(args, Fetch)
    assert args.atts == (
        FetchAtt("FLAGS"),
        FetchAtt("BODY", Section((), "HEADER.FIELDS", ("FROM", "TO")), peek=True),
        FetchAtt("BODY", Section((1, 2), "MIME")),
        FetchAtt("BINARY", Section((2,)), (0, 100)),
        FetchAtt("BODY", Section(()), (5, 10)),
        FetchAtt("BODYSTRUCTURE"),
    )
    assert args.changed_since == 12 and args.vanished
    assert command(b"a FETCH 1 FAST\r\n").args.atts == (  # type: ignore[attr-defined]
        FetchAtt("FLAGS"), FetchAtt("INTERNALDATE"), FetchAtt("RFC822.SIZE"))


def test_search_keys() -> None:
    args = command(
        b'a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM "bob" SEEN) NOT 2:4 '
        b"SINCE 1-Feb-2024 UID 5:* HEADER X-Y z\r\n"
    ).args  # type: ignore[attr-defined]
    assert isinstance(args, Search)
    assert args.returns == ("MIN", "COUNT") and args.charset == "UTF-8"
    assert args.key == SearchKey("AND", (
        SearchKey("OR", (
            SearchKey("AND", (SearchKey("FROM", ("bob",)), SearchKey("FLAG", ("\\Seen", True)))),
            SearchKey("NOT", (SearchKey("SEQ", (SequenceSet(((2, 4),)),)),)),
        )),
        SearchKey("SINCE", (date(2024, 2, 1),)),
        SearchKey("UID", (SequenceSet(((5, STAR),)),)),
        SearchKey("HEADER", ("X-Y", "z")),
    ))


def test_search_nesting_limit() -> None:
    with pytest.raises(CommandError):
        command(b"a SEARCH " + b"(" * 50 + b"ALL" + b")" * 50 + b"\r\n")


def test_store_select_list_append_sort() -> None:
    store = command(b"a STORE 1,3 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\\Seen $Junk)\r\n").args  # type: ignore[attr-defined]
    assert store == Store(SequenceSet(((1, 1), (3, 3))), "add", True, ("\\Seen", "$Junk"), 7)
    select = command(b"a SELECT inbox (QRESYNC (67890007 20050715194045000 41,43:211))\r\n").args  # type: ignore[attr-defined]
    assert isinstance(select, Select) and select.mailbox == "INBOX"
    assert select.qresync is not None and select.qresync.modseq == 20050715194045000
    lst = command(
        b'a LIST (SUBSCRIBED) "" ("%" "A/*") RETURN (CHILDREN STATUS (MESSAGES))\r\n'
    ).args  # type: ignore[attr-defined]
    assert isinstance(lst, ListCmd)
    assert lst.patterns == ("%", "A/*") and lst.status_items == ("MESSAGES",)
    app = command(
        b'a APPEND Sent (\\Seen) " 5-Mar-2024 10:00:00 +0100" {3+}\r\nabc {2+}\r\nde\r\n'
    ).args  # type: ignore[attr-defined]
    assert isinstance(app, Append) and len(app.messages) == 2
    assert app.messages[0].flags == ["\\Seen"] and app.messages[0].date is not None
    srt = command(b"a UID SORT (REVERSE DATE SUBJECT) UTF-8 ALL\r\n").args  # type: ignore[attr-defined]
    assert isinstance(srt, Sort) and srt.criteria == (("DATE", True), ("SUBJECT", False))


def test_mailbox_names_utf7_and_utf8() -> None:
    assert command(b"a SELECT &ZeVnLIqe-\r\n").args.mailbox == "日本語"  # type: ignore[attr-defined]
    # A valid astring that is not modified UTF-7 parses (RFC 9051 7.1.3: NO, not BAD)
    # into a name no mailbox can have.
    undecodable = command(b"a SELECT &Jjo!\r\n").args.mailbox  # type: ignore[attr-defined]
    assert undecodable == mutf7.UNDECODABLE + "&Jjo!"
    utf8 = "a SELECT \"日本語\"\r\n".encode()
    assert command(utf8, utf8=True).args.mailbox == "日本語"  # type: ignore[attr-defined]
    assert command(b"a SELECT A&-B\r\n", utf8=True).args.mailbox == "A&-B"  # type: ignore[attr-defined]


def test_mutf7_vectors() -> None:
    assert mutf7.encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7.decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"
    assert mutf7.encode("A&B") == "A&-B"


@given(st.text())
def test_mutf7_round_trip(name: str) -> None:
    name = "".join(ch for ch in name if not 0xD800 <= ord(ch) <= 0xDFFF)
    assert mutf7.decode(mutf7.encode(name)) == name


@given(st.lists(st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1)), min_size=1))
def test_sequence_set_round_trip(ranges: list[tuple[int, int]]) -> None:
    seq = SequenceSet(tuple(ranges))
    assert SequenceSet.parse(str(seq)) == seq


def test_sequence_set_select() -> None:
    assert SequenceSet.parse("2:4,9:*").select([1, 2, 3, 5, 9, 12]) == [2, 3, 9, 12]
    assert SequenceSet.parse("*:3").expand(5) == [3, 4, 5]
    assert str(SequenceSet.of([1, 2, 3, 7, 9, 10])) == "1:3,7,9:10"


# -- property tests ------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_never_crash(data: bytes, utf8: bool) -> None:
    receiver = Receiver(max_line_length=120, max_literal_size=64)
    receiver.feed(data)
    while (event := receiver.next_event()) is not None:
        if isinstance(event, CommandBytes):
            with contextlib.suppress(CommandError):
                parse_command(event, utf8=utf8)


_keywordish = st.text(alphabet="abcdefghijklmnopqrstuvwxyz$", min_size=1, max_size=8)
_values = st.recursive(
    st.one_of(
        st.none(),
        st.integers(0, 2**40),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF,
                                       exclude_categories=("Cs",)), max_size=20),
        st.binary(max_size=20),
        _keywordish.filter(lambda s: s.upper() != "NIL").map(Atom),
    ),
    lambda children: st.lists(children, max_size=4),
    max_leaves=20,
)


def _to_wire(v: object) -> object:
    if isinstance(v, Atom):
        return r.Raw(v.value.encode())
    if isinstance(v, bytes):
        return r.Lit(v)
    if isinstance(v, list):
        return [_to_wire(x) for x in v]
    return v


def _expected(v: object) -> object:
    if isinstance(v, str):
        return v  # quoted or literal comes back as text or bytes; compare as text
    if isinstance(v, list):
        return [_expected(x) for x in v]
    return v


@settings(max_examples=200)
@given(_values)
def test_serialize_then_parse_round_trips(v: object) -> None:
    wire = b"t ID " + r.value(_to_wire(v), utf8=True) + b"\r\n"
    evs = [e for e in events(wire) if isinstance(e, CommandBytes)]
    assert len(evs) == 1
    c = Cursor(evs[0].parts, utf8=True, max_nesting=64)
    c.tag()
    c.sp()
    c.atom()
    c.sp()
    got = c.value()
    c.end()

    def norm(x: object) -> object:
        if isinstance(x, bytes):
            try:
                return x.decode("utf-8")
            except UnicodeDecodeError:
                return x
        if isinstance(x, list):
            return [norm(y) for y in x]
        return x

    assert norm(got) == norm(_expected(v))


def test_envelope_and_bodystructure_serialization() -> None:
    env = ["Mon, 1 Jan 2024", "hi", [["A", None, "a", "b.c"], [None, None, "d", "e.f"]],
           None, None, None, None, None, None, "<id@x>"]
    assert r.envelope(Envelope.from_stored(env)) == (
        b'("Mon, 1 Jan 2024" "hi" (("A" NIL "a" "b.c")(NIL NIL "d" "e.f")) NIL NIL NIL NIL NIL'
        b' NIL "<id@x>")'
    )
    body = MultiPart((
        SinglePart("text", "plain", ("charset", "us-ascii"), None, None, "7BIT", 5, 1, None,
                   None, None),
        SinglePart("text", "html", None, None, None, "7BIT", 9, 2, None, None, None),
    ), "alternative", None, None)
    assert r.body_structure(body) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 5 1)'
        b'("text" "html" NIL NIL NIL "7BIT" 9 2) "alternative")'
    )


def test_cursor_rejects_garbage() -> None:
    c = Cursor([b'"unterminated'])
    with pytest.raises(ParseError):
        c.string()


_STREAM = (
    b"a1 LOGIN {5}\r\nalice {3+}\r\npwd\r\n"
    b"a2 APPEND INBOX (\\Seen) ~{4+}\r\n\x00\x01\r\n {2}\r\nhi\r\n"
    b"a3 " + b"x" * 150 + b"\r\n"
    b"a4 APPEND INBOX {500+}\r\n" + b"y" * 500 + b"\r\n"
    b"a5 NOOP\r\n"
)


@settings(max_examples=100)
@given(st.lists(st.integers(1, len(_STREAM) - 1), max_size=20))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    whole = normalized(events(_STREAM, max_line_length=100, max_literal_size=100))
    points = sorted({0, len(_STREAM), *cuts})
    receiver = Receiver(max_line_length=100, max_literal_size=100)
    got: list[Event] = []
    for a, b in itertools.pairwise(points):
        receiver.feed(_STREAM[a:b])
        while (event := receiver.next_event()) is not None:
            got.append(event)
    assert normalized(got) == whole
    assert [type(e).__name__ for e in got].count("TooLong") == 1
    assert [type(e).__name__ for e in got].count("LiteralTooBig") == 1


def _att_wire(att: FetchAtt) -> str:
    if att.section is None:
        return att.name
    name = att.name + (".PEEK" if att.peek else "")
    partial = f"<{att.partial[0]}.{att.partial[1]}>" if att.partial else ""
    return f"{name}[{att.section}]{partial}"


_sections = st.one_of(
    st.builds(Section, st.tuples(*[st.integers(1, 9)] * 2)),
    st.builds(Section, st.just(()), st.sampled_from(["HEADER", "TEXT"])),
    st.builds(Section, st.lists(st.integers(1, 30), max_size=3).map(tuple),
              st.sampled_from(["HEADER.FIELDS", "HEADER.FIELDS.NOT"]),
              st.lists(st.sampled_from(["FROM", "TO", "X-A", "SUBJECT"]), min_size=1,
                       max_size=3).map(tuple)),
    st.builds(Section, st.lists(st.integers(1, 30), min_size=1, max_size=3).map(tuple),
              st.just("MIME")),
)
_atts = st.one_of(
    st.sampled_from(["ENVELOPE", "FLAGS", "UID", "MODSEQ", "BODYSTRUCTURE", "RFC822.SIZE"])
    .map(FetchAtt),
    st.builds(FetchAtt, st.just("BODY"), _sections,
              st.one_of(st.none(), st.tuples(st.integers(0, 99), st.integers(1, 99))),
              st.booleans()),
)


@given(st.lists(_atts, min_size=1, max_size=5))
def test_fetch_attributes_round_trip(atts: list[FetchAtt]) -> None:
    line = "a FETCH 1:* (" + " ".join(_att_wire(a) for a in atts) + ")\r\n"
    assert command(line.encode()).args.atts == tuple(atts)  # type: ignore[attr-defined]


_names = st.text(
    alphabet=st.characters(min_codepoint=0x20, exclude_categories=("Cs", "Cc")),
    min_size=1, max_size=30,
).filter(lambda n: n.upper() != "INBOX" and not n.upper().startswith("INBOX/"))


@given(_names, st.booleans())
def test_mailbox_names_round_trip(name: str, utf8: bool) -> None:
    wire = b"t SELECT " + r.mailbox(name, utf8) + b"\r\n"
    assert command(wire, utf8=utf8).args.mailbox == name  # type: ignore[attr-defined]
