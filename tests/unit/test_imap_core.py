"""Sans-IO pieces of the IMAP server: section location, header filtering, transfer
decoding, threading, and the selected-mailbox view."""

from __future__ import annotations

from datetime import UTC, datetime

from postel.imap import threading as threads
from postel.imap.bodies import decode_transfer, filter_header, find_part, locate
from postel.imap.proto.fetchatt import Section
from postel.imap.selected import SelectedMailbox
from postel.mail.mime import parse_message_bytes
from postel.store.model import Flags, Mailbox, MailboxChanges, MessageMeta

MSG = (
    b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\none\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\n\r\ninner body\r\n"
    b"--b--\r\n"
)


def section_bytes(section: Section) -> bytes | None:
    parsed = parse_message_bytes(MSG)
    where = locate(parsed.body, section, len(MSG))
    return None if where is None else MSG[where.start : where.end]


def test_sections() -> None:
    assert section_bytes(Section()) == MSG
    assert section_bytes(Section((), "HEADER")) == MSG[: MSG.index(b"\r\n\r\n") + 4]
    assert section_bytes(Section((1,))) == b"one"
    assert section_bytes(Section((2,))) == b"Subject: inner\r\n\r\ninner body"
    assert section_bytes(Section((2,), "HEADER")) == b"Subject: inner\r\n\r\n"
    assert section_bytes(Section((2,), "TEXT")) == b"inner body"
    assert section_bytes(Section((2, 1))) == b"inner body"
    assert section_bytes(Section((1,), "MIME")) == b"Content-Type: text/plain\r\n\r\n"
    assert section_bytes(Section((3,))) is None
    assert section_bytes(Section((1,), "TEXT")) is None  # not a message/rfc822 part
    parsed = parse_message_bytes(b"no header at all")
    assert find_part(parsed.body, (1,)) is parsed.body


def test_filter_header() -> None:
    header = b"From: a\r\nSubject: long\r\n folded\r\nTo: b\r\n\r\n"
    assert filter_header(header, ("SUBJECT",), exclude=False) == (
        b"Subject: long\r\n folded\r\n\r\n")
    assert filter_header(header, ("SUBJECT",), exclude=True) == b"From: a\r\nTo: b\r\n\r\n"
    assert filter_header(header, ("X-NONE",), exclude=False) == b"\r\n"


def test_decode_transfer() -> None:
    assert decode_transfer(b"AAEC\r\nAw==", "base64") == b"\x00\x01\x02\x03"
    assert decode_transfer(b"AAECAw", "BASE64") == b"\x00\x01\x02\x03"
    assert decode_transfer(b"caf=C3=A9=\r\n!", "quoted-printable") == "café!".encode()
    assert decode_transfer(b"plain", "8bit") == b"plain"


def _tm(n: int, mid: str, refs: list[str], subject: str, hour: int) -> threads.ThreadMessage:
    return threads.ThreadMessage(n, mid, refs, subject, False,
                                 datetime(2024, 1, 1, hour, tzinfo=UTC))


def test_references_threading() -> None:
    msgs = [
        _tm(1, "<1>", [], "a", 1),
        _tm(2, "<2>", ["<1>"], "a", 2),
        _tm(3, "<3>", ["<1>"], "a", 3),
        _tm(4, "<4>", ["<1>", "<3>"], "a", 4),
        _tm(5, "<5>", [], "b", 5),
        _tm(6, "<6>", ["<missing>"], "c", 6),
        _tm(7, "<7>", ["<missing>"], "c", 7),
    ]
    assert threads.references(msgs) == "(1 (2)(3 4))(5)((6)(7))"
    assert threads.ordered_subject(msgs) == "(1 (2)(3)(4))(5)(6 7)"


NO_FLAGS = Flags()


def _meta(uid: int, modseq: int, flags: Flags = NO_FLAGS) -> MessageMeta:
    return MessageMeta(uid, 1, uid, modseq, flags, datetime.now(UTC), 10, "0" * 64)


def _box(modseq: int, uidnext: int) -> Mailbox:
    return Mailbox(1, 1, "INBOX", None, 7, uidnext, modseq, 1)


def test_selected_defers_expunge_and_reports_changes() -> None:
    sel = SelectedMailbox(1, "INBOX", readonly=False, uidvalidity=7, uidnext=4, modseq=3,
                          messages=[_meta(1, 1), _meta(2, 2), _meta(3, 3)], recent=None)
    changes = MailboxChanges(_box(6, 5), [_meta(3, 5, Flags(seen=True)), _meta(4, 6)], [2])
    out = sel.apply(changes, allow_expunge=False, recent=range(4, 5), condstore=False,
                    qresync=False)
    assert out == [b"* 4 EXISTS\r\n", b"* 1 RECENT\r\n", b"* 3 FETCH (FLAGS (\\Seen))\r\n"]
    assert list(sel.uids) == [1, 2, 3, 4] and sel.expunged == {2}
    out = sel.apply(MailboxChanges(_box(6, 5)), allow_expunge=True, recent=None,
                    condstore=False, qresync=False)
    assert out == [b"* 2 EXPUNGE\r\n"]
    assert list(sel.uids) == [1, 3, 4] and sel.seq_of(4) == 3


def test_selected_vanished_under_qresync() -> None:
    sel = SelectedMailbox(1, "INBOX", readonly=False, uidvalidity=7, uidnext=4, modseq=3,
                          messages=[_meta(1, 1), _meta(2, 2), _meta(3, 3)], recent=None)
    out = sel.apply(MailboxChanges(_box(4, 4), [], [1, 2]), allow_expunge=True,
                    recent=None, condstore=True, qresync=True)
    assert out == [b"* VANISHED 1:2\r\n"]


def test_list_patterns() -> None:
    from postel.imap.commands.mailboxes import matches, pattern_regex

    def m(pattern: str, name: str) -> bool:
        return matches(pattern_regex(pattern), pattern, name)

    assert m("*", "a/b/c") and m("%", "a") and not m("%", "a/b")
    assert m("a/%", "a/b") and not m("a/%", "a/b/c") and m("a/*", "a/b/c")
    assert m("inbox", "INBOX") and m("Inbox/%", "INBOX/x") and not m("inbox", "Inbox2")
    assert m("A.b", "A.b") and not m("A.b", "AXb")  # regex characters are literal
    assert not m("work", "Work")  # other names are case-sensitive


def test_search_evaluator() -> None:
    from datetime import date

    from postel.imap.proto.searchkeys import SearchKey
    from postel.imap.search_eval import Candidate, Evaluator

    row = {
        "headers": [["Subject", "Grüße aus Köln"], ["From", "Bob <bob@x.test>"]],
        "internal_date": datetime(2024, 3, 5, 23, 30, tzinfo=UTC),
        "envelope": ["Tue, 05 Mar 2024 16:30:00 -0800", None],  # 6 March in UTC
        "size": 500,
    }
    m = Candidate(7, 2, Flags(seen=True, keywords=("$Work",)), False, 9, row)
    ev = Evaluator(largest_seq=3, largest_uid=9, saved=[7], body_text=lambda c: "Body TEXT")

    def k(op: str, *args: object) -> SearchKey:
        return SearchKey(op, args)

    assert ev.match(k("SUBJECT", "KÖLN"), m)
    assert ev.match(k("FROM", "bob@x"), m) and not ev.match(k("TO", "bob"), m)
    assert ev.match(k("ON", date(2024, 3, 5)), m)
    assert ev.match(k("SENTON", date(2024, 3, 5)), m), "the date as written, zone ignored"
    assert ev.match(k("SENTBEFORE", date(2024, 3, 6)), m)
    assert ev.match(k("FLAG", "$work", True), m) and ev.match(k("FLAG", "\\Seen", True), m)
    assert ev.match(k("BODY", "body text"), m) and ev.match(k("TEXT", "grüße"), m)
    assert ev.match(k("LARGER", 499), m) and not ev.match(k("SMALLER", 500), m)
    assert ev.match(k("OR", k("NEW"), k("OLD")), m)
    assert ev.match(k("MODSEQ", 9), m) and not ev.match(k("MODSEQ", 10), m)
