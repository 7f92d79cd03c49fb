"""Tests for postel.mail.mime: the parse-once MIME structure used by IMAP FETCH/SEARCH/SORT."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail.mime import (
    MAX_DEPTH,
    MimePart,
    ParsedMessage,
    base_subject,
    decode_words,
    parse_message_bytes,
    parse_message_file,
)
from tests.unit.imap_legacy import bodystructure


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def body_of(data: bytes, part: MimePart) -> bytes:
    return data[part.body_start:part.end]


def header_of(data: bytes, part: MimePart) -> bytes:
    return data[part.header_start:part.body_start]


def walk(part: MimePart) -> list[MimePart]:
    out = [part]
    for c in part.children:
        out += walk(c)
    if part.message is not None:
        out += walk(part.message.body)
    return out


SIMPLE = crlf(
    "From: Alice Example <alice@example.com>\n"
    "To: bob@example.org\n"
    "Subject: Hello there\n"
    "Date: Tue, 1 Jul 2003 10:52:37 +0200\n"
    "Message-ID: <msg1@example.com>\n"
    "\n"
    "Hi Bob,\n"
    "line two\n"
)


def test_simple_text() -> None:
    m = parse_message_bytes(SIMPLE)
    assert m.size == len(SIMPLE)
    b = m.body
    assert (b.content_type, b.content_subtype) == ("text", "plain")
    assert b.params == [("charset", "us-ascii")]
    assert b.encoding == "7BIT"
    assert header_of(SIMPLE, b).endswith(b"Message-ID: <msg1@example.com>\r\n\r\n")
    assert body_of(SIMPLE, b) == b"Hi Bob,\r\nline two\r\n"
    assert (b.size, b.lines) == (len(b"Hi Bob,\r\nline two\r\n"), 2)
    assert m.subject == m.base_subject == "Hello there"
    assert m.sent_date == datetime(2003, 7, 1, 10, 52, 37, tzinfo=timezone(timedelta(hours=2)))
    assert m.message_id == "<msg1@example.com>"
    assert (m.from_sort, m.to_sort, m.cc_sort) == ("alice", "bob", "")
    assert (m.display_from, m.display_to) == ("Alice Example", "bob@example.org")
    assert not m.has_attachments
    assert m.headers[0] == ("From", "Alice Example <alice@example.com>")
    assert [n for n, _ in m.headers] == ["From", "To", "Subject", "Date", "Message-ID"]
    frm = [["Alice Example", None, "alice", "example.com"]]
    assert m.envelope == [
        "Tue, 1 Jul 2003 10:52:37 +0200", "Hello there", frm, frm, frm,
        [[None, None, "bob", "example.org"]], None, None, None, "<msg1@example.com>",
    ]
    assert bodystructure(b, False) == ["text", "plain", ["charset", "us-ascii"], None, None,
                                       "7BIT", b.size, 2]
    assert bodystructure(b, True)[8:] == [None, None, None, None]


ALTERNATIVE = crlf(
    "Subject: alt\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="==alt=="\n'
    "\n"
    "This is a preamble.\n"
    "--==alt==\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "plain text\n"
    "--==alt==\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "<p>html</p>\n"
    "\n"
    "--==alt==--\n"
    "epilogue\n"
)


def test_multipart_alternative_offsets() -> None:
    m = parse_message_bytes(ALTERNATIVE)
    root = m.body
    assert (root.content_type, root.content_subtype) == ("multipart", "alternative")
    assert root.params == [("boundary", "==alt==")]
    plain, html = root.children
    assert body_of(ALTERNATIVE, plain) == b"plain text"
    assert header_of(ALTERNATIVE, plain) == b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    # The CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1), so the blank
    # line at the end of the html part keeps only one CRLF.
    assert body_of(ALTERNATIVE, html) == b"<p>html</p>\r\n"
    assert html.encoding == "quoted-printable"
    assert (plain.lines, html.lines) == (1, 1)
    # the multipart body runs to the end of the message, epilogue included
    assert root.end == len(ALTERNATIVE)
    assert body_of(ALTERNATIVE, root).startswith(b"This is a preamble.\r\n--==alt==\r\n")
    bs = bodystructure(root, True)
    assert bs[0] == ["text", "plain", ["charset", "utf-8"], None, None, "7BIT", 10, 1,
                     None, None, None, None]
    assert bs[2:] == ["alternative", ["boundary", "==alt=="], None, None, None]
    assert bodystructure(root, False)[2:] == ["alternative"]


ATTACHMENT = crlf(
    "From: a@example.com\n"
    "Subject: report\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "\n"
    "see attached\n"
    "--outer\n"
    'Content-Type: application/pdf; name="r.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    'Content-Disposition: attachment; filename="r.pdf"\n'
    "Content-ID: <att1@example.com>\n"
    "Content-Description: the report\n"
    "Content-Language: en, de\n"
    "Content-Location: http://example.com/\n"
    " r.pdf\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "\n"
    "JVBERi0xLjQK\n"
    "--outer--\n"
)


def test_multipart_mixed_with_attachment() -> None:
    m = parse_message_bytes(ATTACHMENT)
    assert m.has_attachments
    text, pdf = m.body.children
    assert body_of(ATTACHMENT, text) == b"see attached"
    assert body_of(ATTACHMENT, pdf) == b"JVBERi0xLjQK"
    assert base64.b64decode(body_of(ATTACHMENT, pdf)) == b"%PDF-1.4\n"
    assert pdf.disposition == ("attachment", [("filename", "r.pdf")])
    assert pdf.content_id == "<att1@example.com>"
    assert pdf.description == "the report"
    assert pdf.language == ["en", "de"]
    assert pdf.location == "http://example.com/r.pdf"
    assert pdf.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert bodystructure(pdf, True) == [
        "application", "pdf", ["name", "r.pdf"], "<att1@example.com>", "the report",
        "base64", 12, "Q2hlY2sgSW50ZWdyaXR5IQ==", ["attachment", ["filename", "r.pdf"]],
        ["en", "de"], "http://example.com/r.pdf",
    ]
    assert m.body.end == len(ATTACHMENT)


NESTED = crlf(
    "Content-Type: multipart/mixed; boundary=A\n"
    "\n"
    "--A\n"
    "Content-Type: multipart/alternative; boundary=B\n"
    "\n"
    "--B\n"
    "\n"
    "one\n"
    "--B\n"
    "Content-Type: text/html\n"
    "\n"
    "<b>two</b>\n"
    "--B--\n"
    "\n"
    "--A\n"
    "Content-Type: image/png\n"
    "\n"
    "PNG\n"
    "--A--\n"
)


def test_nested_multipart() -> None:
    m = parse_message_bytes(NESTED)
    alt, png = m.body.children
    assert alt.content_subtype == "alternative"
    one, two = alt.children
    assert header_of(NESTED, one) == b"\r\n"
    assert body_of(NESTED, one) == b"one"
    assert body_of(NESTED, two) == b"<b>two</b>"
    # the inner multipart ends before the CRLF that precedes "--A"; its epilogue is "\r\n"
    assert body_of(NESTED, alt).endswith(b"--B--\r\n")
    assert body_of(NESTED, png) == b"PNG"
    bs = bodystructure(m.body, False)
    assert bs[0][-1] == "alternative" and bs[-1] == "mixed"
    assert bs[1][:2] == ["image", "png"] and len(bs[1]) == 7  # no lines for non-text


def _rfc822(inner: str, depth: int) -> str:
    for i in range(depth):
        inner = (f"Subject: level {depth - i}\nContent-Type: message/rfc822\n\n" + inner)
    return inner


def test_message_rfc822_nested_twice() -> None:
    innermost = "From: deep@example.com\nSubject: innermost\n\ndeep body\n"
    data = crlf(_rfc822(innermost, 2))
    m = parse_message_bytes(data)
    assert m.subject == "level 1"
    lvl2 = m.body.message
    assert lvl2 is not None and lvl2.envelope[1] == "level 2"
    assert lvl2.body.message is not None
    deep = lvl2.body.message
    assert deep.envelope[1] == "innermost"
    assert deep.envelope[2] == [[None, None, "deep", "example.com"]]
    assert body_of(data, deep.body) == b"deep body\r\n"
    assert header_of(data, deep.body) == b"From: deep@example.com\r\nSubject: innermost\r\n\r\n"
    assert body_of(data, m.body) == data[data.index(b"Subject: level 2"):]
    # message/rfc822 BODYSTRUCTURE: basic fields, envelope, body, lines
    bs = bodystructure(m.body, False)
    assert bs[:2] == ["message", "rfc822"]
    assert bs[7] == lvl2.envelope
    assert bs[8][:2] == ["message", "rfc822"]
    assert bs[9] == m.body.lines == 7


def test_message_global_is_parsed_like_rfc822() -> None:
    data = crlf("Content-Type: message/global\n\nSubject: ✓ utf8\n\nbody\n")
    m = parse_message_bytes(data)
    assert m.body.message is not None
    assert m.body.message.envelope[1] == "✓ utf8"


DIGEST = crlf(
    "Content-Type: multipart/digest; boundary=D\n"
    "\n"
    "--D\n"
    "\n"
    "Subject: first\n"
    "\n"
    "first body\n"
    "--D\n"
    "Content-Type: text/plain\n"
    "\n"
    "explicit text\n"
    "--D--\n"
)


def test_digest_default_is_message_rfc822() -> None:
    m = parse_message_bytes(DIGEST)
    first, second = m.body.children
    assert (first.content_type, first.content_subtype) == ("message", "rfc822")
    assert first.params == []
    assert first.message is not None and first.message.envelope[1] == "first"
    assert body_of(DIGEST, first.message.body) == b"first body"
    assert (second.content_type, second.content_subtype) == ("text", "plain")


def test_rfc2047_subjects() -> None:
    data = crlf(
        "Subject: =?UTF-8?B?w6lsw6h2ZQ==?= =?ISO-8859-1?Q?caf=E9_cr=E8me?= plain\n"
        "From: =?utf-8?q?J=C3=B6rg?= <j@example.de>\n\nx\n"
    )
    m = parse_message_bytes(data)
    assert m.subject == "élèvecafé crème plain"
    # ENVELOPE keeps raw header text (RFC 3501 7.4.2), display names are decoded
    assert m.envelope[1].startswith("=?UTF-8?B?w6lsw6h2ZQ==?=")
    assert m.envelope[2][0][0] == "=?utf-8?q?J=C3=B6rg?="
    assert m.display_from == "Jörg"
    assert dict(m.headers)["From"] == "Jörg <j@example.de>"


def test_decode_words_edge_cases() -> None:
    # a multi-byte character split across two words in the same charset
    assert decode_words("=?utf-8?B?4pw=?= =?utf-8?B?kw==?=") == "✓"
    assert decode_words("=?utf-8?q?a?=  =?utf-8?q?b?= c") == "ab c"
    assert decode_words("a =?utf-8?q?b?=") == "a b"
    assert decode_words("=?x-unknown?q?caf=C3=A9?=") == "café"  # unknown charset: utf-8
    assert decode_words("=?utf-8?B?###?=") == "=?utf-8?B?###?="  # broken: left as is
    assert decode_words("=?utf-8*en?Q?hi?=") == "hi"  # RFC 2231 language suffix
    assert decode_words("=?iso-8859-1?q?=FF?=") == "ÿ"
    assert decode_words("=?base64?q?x?=") == "x"  # a non-text codec is not a charset


def test_rfc2231_params() -> None:
    data = crlf(
        "Content-Type: multipart/mixed; boundary=X\n\n--X\n"
        "Content-Type: application/octet-stream;\n"
        " name*0*=UTF-8''%E6%96%87%E4%BB%B6;\n"
        ' name*1=".txt"\n'
        "Content-Disposition: attachment;\n"
        " filename*=iso-8859-1'de'%FCber.txt; size=12\n"
        "\n"
        "data\n--X--\n"
    )
    part = parse_message_bytes(data).body.children[0]
    assert part.params == [("name", "文件.txt")]
    assert part.disposition == ("attachment", [("filename", "über.txt"), ("size", "12")])


def test_params_with_comments_and_quotes() -> None:
    data = crlf('Content-Type: Text/HTML (a comment); charset="utf\\"8"; format=flowed\n\nx')
    b = parse_message_bytes(data).body
    assert (b.content_type, b.content_subtype) == ("text", "html")
    assert b.params == [("charset", 'utf"8'), ("format", "flowed")]


def test_group_addresses() -> None:
    data = crlf(
        "From: Joe <joe@example.com>\n"
        "To: Friends: a@example.com, \"B, Bee\" <b@example.com>;, c@example.com\n"
        "Cc: undisclosed-recipients:;\n"
        "\nbody\n"
    )
    env = parse_message_bytes(data).envelope
    assert env[5] == [
        [None, None, "Friends", None],
        [None, None, "a", "example.com"],
        ["B, Bee", None, "b", "example.com"],
        [None, None, None, None],
        [None, None, "c", "example.com"],
    ]
    assert env[6] == [[None, None, "undisclosed-recipients", None], [None, None, None, None]]
    m = parse_message_bytes(data)
    # RFC 5256 3, RFC 5957 3: the first address, and for a group its name.
    assert m.to_sort == "friends"
    assert m.cc_sort == "undisclosed-recipients" and m.display_to == "Friends"


def test_missing_headers() -> None:
    data = b"\r\njust a body\r\n"
    m = parse_message_bytes(data)
    assert m.envelope == [None] * 10
    assert m.subject == m.base_subject == ""
    assert m.sent_date is None and m.message_id is None and m.in_reply_to is None
    assert m.references == []
    assert (m.from_sort, m.display_from, m.display_to) == ("", "", "")
    assert body_of(data, m.body) == b"just a body\r\n"
    empty = parse_message_bytes(b"")
    assert empty.size == 0 and empty.body.size == 0 and empty.body.lines == 0


def test_sender_reply_to_default_to_from_and_ids() -> None:
    data = crlf(
        "From: a@x.org\nSender:\nReply-To: r@x.org\n"
        "In-Reply-To: <p1@x.org> (comment)\n"
        "References: <r0@x.org>\n <r1@x.org> <p1@x.org>\n"
        "Message-ID: <m@x.org>\nDate: garbage\n\n"
    )
    m = parse_message_bytes(data)
    assert m.envelope[3] == m.envelope[2] == [[None, None, "a", "x.org"]]
    assert m.envelope[4] == [[None, None, "r", "x.org"]]
    assert m.envelope[8] == "<p1@x.org> (comment)"
    assert m.in_reply_to == "<p1@x.org>"
    assert m.references == ["<r0@x.org>", "<r1@x.org>", "<p1@x.org>"]
    assert m.sent_date is None


def test_date_without_zone_is_utc() -> None:
    m = parse_message_bytes(b"Date: Mon, 7 Feb 1994 21:52:25 -0000\r\n\r\n")
    assert m.sent_date == datetime(1994, 2, 7, 21, 52, 25, tzinfo=UTC)


def test_bare_lf() -> None:
    data = (b"Subject: lf\nContent-Type: multipart/mixed; boundary=Z\n\n"
            b"--Z\nContent-Type: text/plain\n\nline1\nline2\n--Z\n\nsecond\n--Z--\n")
    m = parse_message_bytes(data)
    a, b = m.body.children
    assert header_of(data, a) == b"Content-Type: text/plain\n\n"
    assert body_of(data, a) == b"line1\nline2"
    assert (a.lines, a.size) == (2, 11)
    assert body_of(data, b) == b"second"
    assert m.subject == "lf"


def test_missing_closing_boundary_ends_at_eof() -> None:
    data = crlf("Content-Type: multipart/mixed; boundary=Q\n\n--Q\n\nfirst\n--Q\n\nsecond\n")
    m = parse_message_bytes(data)
    first, second = m.body.children
    assert body_of(data, first) == b"first"
    assert body_of(data, second) == b"second\r\n"
    assert second.end == m.body.end == len(data)


def test_boundary_never_found_is_single_body() -> None:
    data = crlf("Content-Type: multipart/mixed; boundary=nothere\n\nno parts here\n--other\n")
    m = parse_message_bytes(data)
    assert m.body.children == ()
    assert (m.body.content_type, m.body.content_subtype) == ("text", "plain")
    assert body_of(data, m.body) == b"no parts here\r\n--other\r\n"
    assert bodystructure(m.body, False)[:2] == ["text", "plain"]
    no_param = parse_message_bytes(crlf("Content-Type: multipart/mixed\n\n--x\n\nhi\n"))
    assert no_param.body.content_type == "text" and no_param.body.lines == 3


def test_inner_part_missing_close_ends_at_outer_boundary() -> None:
    data = crlf(
        "Content-Type: multipart/mixed; boundary=OUT\n\n--OUT\n"
        "Content-Type: multipart/alternative; boundary=IN\n\n--IN\n\ninner\n"
        "--OUT\n\nafter\n--OUT--\n"
    )
    m = parse_message_bytes(data)
    alt, after = m.body.children
    assert [body_of(data, c) for c in alt.children] == [b"inner"]
    assert alt.end == alt.children[0].end
    assert body_of(data, after) == b"after"


def test_boundary_with_transport_padding_and_prefix_lookalike() -> None:
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b  \n\none\n--bx\n--b--\t\n")
    m = parse_message_bytes(data)
    (only,) = m.body.children
    assert body_of(data, only) == b"one\r\n--bx"


def test_degenerate_delimiters_keep_parts_nested() -> None:
    for data in (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b--\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b--\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--a--\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
        b"Content-Type: message/rfc822\r\n\r\n\r\n--a--\r\n",
    ):
        m = parse_message_bytes(data)
        _check_offsets(m.body, m.size)
        assert all(p.size == 0 for p in walk(m.body) if not p.children and p.message is None)


def test_garbage_headers_and_8bit() -> None:
    data = (b"Subject: caf\xe9\r\nthis is not a header\r\n: empty name\r\n"
            b"X-Long:\r\n  folded\r\n\tmore\r\nFrom: J\xc3\xb6rg <j@x.de>\r\n\r\nbody\r\n")
    m = parse_message_bytes(data)
    assert m.subject == "café"  # not UTF-8 -> latin-1
    assert m.envelope[2] == [["Jörg", None, "j", "x.de"]]
    assert ("X-Long", "folded\tmore") in m.headers
    assert [n for n, _ in m.headers] == ["Subject", "X-Long", "From"]
    assert body_of(data, m.body) == b"body\r\n"


def test_headerless_part_and_header_without_body() -> None:
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nno header line\n--b\n"
                "Content-Type: text/plain\n--b--\n")
    a, b = parse_message_bytes(data).body.children
    assert a.header_start == a.body_start and body_of(data, a) == b"no header line"
    assert b.content_type == "text" and b.size == 0 and b.lines == 0
    only_header = parse_message_bytes(b"Subject: x\r\n")
    assert only_header.subject == "x" and only_header.body.size == 0


def test_deep_nesting_is_capped() -> None:
    depth = MAX_DEPTH + 20
    head = "".join(f"--b{i}\nContent-Type: multipart/mixed; boundary=b{i + 1}\n\n"
                   for i in range(depth))
    data = crlf(f"Content-Type: multipart/mixed; boundary=b0\n\n{head}--b{depth}\n\nleaf\n")
    m = parse_message_bytes(data)
    level, part = 0, m.body
    while part.children:
        part, level = part.children[0], level + 1
    assert level == MAX_DEPTH
    assert part.content_type == "text"
    deep_msg = crlf("Content-Type: message/rfc822\n\n" * (MAX_DEPTH + 5) + "\nend\n")
    assert parse_message_bytes(deep_msg).size == len(deep_msg)


def test_has_attachments_variants() -> None:
    inline_named = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\ntext\n--b\n"
                        "Content-Type: image/png; name=x.png\n\nPNG\n--b--\n")
    assert parse_message_bytes(inline_named).has_attachments
    forwarded = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\ntext\n--b\n"
                     "Content-Type: message/rfc822\n\nSubject: fw\n\nx\n--b--\n")
    assert parse_message_bytes(forwarded).has_attachments
    assert not parse_message_bytes(ALTERNATIVE).has_attachments


def test_slices_match_email_package() -> None:
    # Cross-check every leaf's bytes against the stdlib parser's own view of the payload.
    import email
    import email.policy

    for data in (ALTERNATIVE, ATTACHMENT, NESTED):
        parsed = parse_message_bytes(data)
        ours = [body_of(data, p) for p in walk(parsed.body) if not p.children]
        theirs = [str(p.get_payload(decode=False)).encode() for p in
                  email.message_from_bytes(data, policy=email.policy.compat32).walk()
                  if not p.is_multipart()]
        assert [o.replace(b"\r\n", b"\n") for o in ours] == \
            [t.replace(b"\r\n", b"\n") for t in theirs]


def test_base_subject_rfc5256() -> None:
    cases = {
        "Re: hello": "hello",
        "RE: Re: re:hello": "hello",
        "Fwd: hello": "hello",
        "Fw: hello": "hello",
        "[fwd: hello]": "hello",
        "[Fwd: Re: hello]": "hello",
        "hello (fwd)": "hello",
        "hello (FWD) (fwd)  ": "hello",
        "[list] Re: hello": "hello",
        "Re: [list] hello": "hello",
        "Re [list]: hello": "hello",
        "[list][other] hello": "hello",
        "[just a blob]": "[just a blob]",
        "Re: [just a blob]": "[just a blob]",
        "  spaced\tout   subject ": "spaced out subject",
        "Re:": "",
        "": "",
        "Reply to this": "Reply to this",
        "[fwd: [list] Re: x (fwd)]": "x",
    }
    for subject, expected in cases.items():
        assert base_subject(subject) == expected, subject
    m = parse_message_bytes(crlf("Subject: =?utf-8?q?Re=3A_caf=C3=A9?=\n\n"))
    assert m.base_subject == "café"


def test_json_round_trip() -> None:
    for data in (SIMPLE, ALTERNATIVE, ATTACHMENT, NESTED, DIGEST, crlf(_rfc822("S: x\n\ny", 2))):
        m = parse_message_bytes(data)
        stored = json.dumps(m.to_json())
        again = ParsedMessage.from_json(json.loads(stored))
        assert again == m
        assert bodystructure(again.body, True) == bodystructure(m.body, True)
        assert MimePart.from_json(json.loads(json.dumps(m.body.to_json()))) == m.body


def test_parse_file_matches_bytes(tmp_path: Path) -> None:
    path = tmp_path / "msg.eml"
    path.write_bytes(ATTACHMENT)
    assert parse_message_file(path) == parse_message_bytes(ATTACHMENT)
    assert parse_message_file(str(path)).size == len(ATTACHMENT)


def test_large_attachment_streams(tmp_path: Path) -> None:
    payload = base64.encodebytes(b"\x00\xff" * 1_500_000).replace(b"\n", b"\r\n")
    data = (crlf("Content-Type: multipart/mixed; boundary=big\n\n--big\n\nhi\n--big\n"
                 "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")
            + payload + b"--big--\r\n")
    path = tmp_path / "big.eml"
    path.write_bytes(data)
    m = parse_message_file(path)
    att = m.body.children[1]
    assert att.size == len(payload) - 2
    assert att.lines == payload.count(b"\n")
    with path.open("rb") as f:
        f.seek(att.body_start)
        assert f.read(att.size) == payload[:-2]


def test_very_long_lines() -> None:
    long_line = b"x" * 200_000
    data = (b"Subject: " + b"s" * 100_000 + b"\r\nContent-Type: multipart/mixed; boundary=L\r\n"
            b"\r\n--L\r\n\r\n" + long_line + b"\r\n--L--\r\n")
    m = parse_message_bytes(data)
    assert len(m.subject) == 100_000
    assert body_of(data, m.body.children[0]) == long_line
    assert m.body.children[0].lines == 1


_PIECES = [b"\r\n", b"\n", b"--b\r\n", b"--b--\r\n", b"--c\n", b"Content-Type: multipart/mixed;"
           b" boundary=b\r\n", b"Content-Type: message/rfc822\r\n", b"Content-Type: multipart/"
           b"digest; boundary=c\n", b"Subject: =?utf-8?q?x?=\r\n", b"From: a@b, (c\r\n", b" \t",
           b"To: g: x;\r\n", b"\xff\xfe", b"=?", b"body text", b"\r", b"--", b":",
           b"Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n", b"\r\n--b\r\n"]


def _check_offsets(part: MimePart, size: int) -> None:
    assert 0 <= part.header_start <= part.body_start <= part.end <= size
    assert part.size == part.end - part.body_start and part.lines >= 0
    for c in part.children:
        assert part.body_start <= c.header_start and c.end <= part.end
        _check_offsets(c, size)
    if part.message is not None:
        assert part.message.body.header_start == part.body_start
        _check_offsets(part.message.body, size)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join)))
def test_never_raises_and_offsets_are_sane(data: bytes) -> None:
    m = parse_message_bytes(data)
    assert m.size == len(data)
    _check_offsets(m.body, m.size)
    json.dumps(m.to_json())
    assert ParsedMessage.from_json(json.loads(json.dumps(m.to_json()))) == m
    bodystructure(m.body, True)


def test_text_without_charset_is_us_ascii_in_bodystructure() -> None:
    parsed = parse_message_bytes(b"Content-Type: text/plain\r\n\r\nbody\r\n")
    assert bodystructure(parsed.body, False)[2] == ["charset", "us-ascii"]
    html = parse_message_bytes(b"Content-Type: text/html; format=flowed\r\n\r\nx\r\n")
    assert bodystructure(html.body, False)[2] == ["format", "flowed", "charset", "us-ascii"]
