"""Hypothesis properties for the five surfaces the atheris targets (fuzz/) fuzz: the IMAP
receiver and parser, the SMTP reader, the POP3 parser, the MIME parser with BODYSTRUCTURE
and ENVELOPE, and the web's form and JSON body parsing.

They complement the properties beside each module (test_smtp_proto.py, test_pop3_proto.py)
and stay fast: a few hundred examples each, the whole file in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.charset
import email.header
import itertools
import json
import smtplib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import HTTPException
from starlette.requests import Request

from postel.imap.proto.commands import CommandError, parse_command
from postel.imap.proto.receiver import CommandBytes, Literal, LiteralLimits, Receiver
from postel.mail.mime import decode_words, parse_message_bytes
from postel.pop3 import proto as pop3
from postel.smtp.proto import Bdat, BodyData, BodyEnd, Data, SmtpReader
from postel.smtp.proto import parse_command as smtp_command
from postel.web.api import json_object
from postel.web.pages import MAX_FORM_FIELDS, form_fields
from tests.unit.imap_wire import check_message

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# -- IMAP: receiver and parser ---------------------------------------------------------

IMAP_NAMES = ["LOGIN", "SELECT", "EXAMINE", "FETCH", "UID FETCH", "STORE", "SEARCH",
              "UID SEARCH", "SORT", "THREAD", "APPEND", "LIST", "STATUS", "COPY", "MOVE",
              "ID", "ENABLE", "SETMETADATA", "GETMETADATA", "NOTIFY", "CREATE", "RENAME",
              "AUTHENTICATE", "COMPRESS", "GENURLAUTH", "URLFETCH", "NOOP", "UID EXPUNGE"]
IMAP_TOKENS = ["1", "1:*", "*", "$", "0", "INBOX", '"a b"', '"\\"q\\\\"', "(", ")", "NIL",
               "FLAGS", "BODY.PEEK[HEADER.FIELDS (FROM)]<0.9>", "BINARY[1]", "(\\Seen)",
               "ALL", "OR", "NOT", "RETURN", "(MIN COUNT)", "(CHANGEDSINCE 1)", "+FLAGS",
               "CHARSET", "UTF-8", "1-Jan-2020", "&Jjo-", "%", "\"\"", "(REVERSE DATE)",
               "CONDSTORE", "(QRESYNC (1 2 1:5))", "CATENATE", "(URL \"/x\")",
               "/private/comment", "selected", "\xe9", "\x00", "\r", "~"]


@st.composite
def imap_stream(draw: st.DrawFn) -> bytes:
    """Commands from the grammar's words, with literals of every kind and size."""
    out = bytearray()
    for n in range(draw(st.integers(1, 5))):
        line = f"t{n} {draw(st.sampled_from(IMAP_NAMES))}".encode()
        for _ in range(draw(st.integers(0, 6))):
            if draw(st.integers(0, 4)) == 0:
                data = draw(st.binary(max_size=90))
                kind = draw(st.sampled_from(["{%d}", "{%d+}", "~{%d}", "{%d}"]))
                line += b" " + (kind % len(data)).encode() + b"\r\n" + data
            else:
                line += b" " + draw(st.sampled_from(IMAP_TOKENS)).encode()
        out += line + draw(st.sampled_from([b"\r\n", b"\n"]))
    return bytes(out)


def drain(receiver: Receiver, pieces: list[bytes]) -> list[object]:
    """Every event of `pieces` fed one after another, each drained before the next."""
    events: list[object] = []
    for piece in pieces:
        receiver.feed(piece)
        while (event := receiver.next_event()) is not None:
            events.append(event)
    return events


def frame(pieces: list[bytes], logged_in: bool) -> list[object]:
    # Small limits, so short generated literals reach every limit.
    return drain(Receiver(max_line_length=200, max_literal_size=64, max_command_size=128,
                          spool_threshold=32, pre_login=LiteralLimits(16, 32),
                          logged_in=lambda: logged_in), pieces)


def comparable(events: list[object]) -> list[object]:
    return [tuple(p.read_all() if isinstance(p, Literal) else p for p in e.parts)
            if isinstance(e, CommandBytes) else e for e in events]


@FAST
@given(imap_stream(), st.lists(st.integers(0, 2000), max_size=12), st.booleans())
def test_imap_receiver_frames_the_same_whatever_the_chunk_split(
        stream: bytes, cuts: list[int], logged_in: bool) -> None:
    assert comparable(frame(cut(stream, cuts), logged_in)) == \
        comparable(frame([stream], logged_in))


@FAST
@given(imap_stream(), st.booleans())
def test_imap_parse_errors_are_always_command_errors(stream: bytes, utf8: bool) -> None:
    for event in frame([stream], True):
        if isinstance(event, CommandBytes):
            try:
                parse_command(event, utf8=utf8)
            except CommandError as exc:
                assert exc.tag  # the session answers "<tag> BAD ..."


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_imap_receiver_and_parser_take_any_bytes(data: bytes, cuts: list[int]) -> None:
    for event in frame(cut(data, cuts), True):
        if isinstance(event, CommandBytes):
            with contextlib.suppress(CommandError):
                parse_command(event)


# -- SMTP: command lines, DATA, BDAT -----------------------------------------------------


def smtp_events(pieces: list[bytes], *, data: bool = False) -> list[object]:
    reader = SmtpReader(max_line_length=200)
    if data:
        reader.start_data()
    out: list[object] = []
    for piece in pieces:
        reader.receive(piece)
        while (event := reader.next_event()) is not None:
            if isinstance(event, BodyData) and out and isinstance(out[-1], BodyData):
                out[-1] = BodyData(out[-1].data + event.data)
                continue
            out.append(event)
            if isinstance(event, Data):
                reader.start_data()
    return [e for e in out if not (isinstance(e, BodyData) and not e.data)]


@FAST
@given(st.text(max_size=120))
def test_smtp_command_lines_never_raise(text: str) -> None:
    for verb in ("", "MAIL FROM:", "RCPT TO:", "EHLO ", "BDAT ", "BURL ", "AUTH ", "VRFY "):
        smtp_command((verb + text).encode("utf-8", "surrogatepass"))


lines = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\r\n"),
                         max_size=30), max_size=12)


@FAST
@given(lines, st.lists(st.integers(0, 2000), max_size=10))
def test_smtp_dot_stuffing_by_smtplib_round_trips(body_lines: list[str],
                                                  cuts: list[int]) -> None:
    # smtplib.quotedata is a real client's RFC 5321 4.5.2 transparency; the reader undoes it.
    body = "".join(line + "\r\n" for line in body_lines).encode("utf-8", "surrogatepass")
    stream = b"DATA\r\n" + smtplib.quotedata(body.decode("latin-1")).encode("latin-1") \
        + b".\r\nNOOP\r\n"
    events = smtp_events(cut(stream, cuts))
    assert events[0] == Data()
    assert events[1:-1] == [*([BodyData(body)] if body else []), BodyEnd(last=True)]


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6),
       st.lists(st.integers(0, 400), max_size=8))
def test_smtp_bdat_chunks_give_the_body_whatever_the_chunking(
        body: bytes, chunk_cuts: list[int], read_cuts: list[int]) -> None:
    chunks = cut(body, chunk_cuts)
    stream = b"".join(b"BDAT %d%s\r\n" % (len(c), b" LAST" if i == len(chunks) - 1 else b"")
                      + c for i, c in enumerate(chunks))
    events = smtp_events(cut(stream, read_cuts))
    got = b"".join(e.data for e in events if isinstance(e, BodyData))
    # RFC 3030 2 sends octets as they are; stored messages are CRLF (RFC 5322 2.3).
    expected = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert got == expected
    assert [e for e in events if isinstance(e, Bdat)] == [
        Bdat(len(c), i == len(chunks) - 1) for i, c in enumerate(chunks)]


# -- POP3 ---------------------------------------------------------------------------------


@FAST
@given(st.sampled_from(["", "USER", "PASS", "LIST", "UIDL", "RETR", "DELE", "TOP", "AUTH",
                        "STAT", "CAPA", "quit", "Top"]),
       st.lists(st.one_of(st.text(max_size=12), st.integers(0, 10**12).map(str)), max_size=4))
def test_pop3_parser_only_answers_events(verb: str, args: list[str]) -> None:
    line = " ".join([verb, *args]).encode("utf-8", "surrogatepass")
    event = pop3.parse_command(line)
    assert isinstance(event, pop3.Event)  # never raises, never None
    for number in (getattr(event, "number", None), getattr(event, "lines", None)):
        # RFC 1939 3: the numbers are the decimal the client wrote, never a huge int.
        assert number is None or 0 <= number < 10**pop3.MAX_NUMBER_DIGITS


@FAST
@given(st.text(max_size=40), st.lists(st.text(max_size=20), max_size=8))
def test_pop3_multiline_reply_unstuffs_to_its_lines(text: str, lines: list[str]) -> None:
    wire = pop3.Reply(True, text, lines=tuple(lines)).to_bytes()
    status, *body = wire.split(b"\r\n")
    assert status.startswith(b"+OK") and body[-2:] == [b".", b""]
    # As poplib reads it (RFC 1939 3): a leading ".." loses one dot.
    got = [line[1:] if line.startswith(b"..") else line for line in body[:-2]]
    assert got == [line.replace("\r", " ").replace("\n", " ").encode() for line in lines]


# -- MIME, BODYSTRUCTURE, ENVELOPE ---------------------------------------------------------

HEADER_WORDS = ["=?utf-8?q?caf=C3=A9?=", "=?iso-8859-1?b?6Q==?=", "=?utf-8?q?=00?=",
                "=?x-unknown?q?a?=", "=?utf-8?b?????", "\"q\\\"d\"", "<a@b.example>",
                "(c)", ";", ",", ":", "@", "a", " ", "\t", "\r\n ", "\xe9", "\x00"]
FIELDS = ["From", "To", "Cc", "Subject", "Date", "Message-ID", "Content-Type",
          "Content-Disposition", "Content-Transfer-Encoding", "Content-Language",
          "Content-Location", "Content-ID", "Content-Description", "Content-MD5"]
TYPES = ["text/plain; charset=utf-8", "multipart/mixed; boundary=b",
         "multipart/alternative; boundary=\"c c\"", "message/rfc822", "message/global",
         "application/octet-stream; name*=utf-8''a%00b; name*1=c", "text/html",
         "multipart/digest; boundary=b", "image/png; x=\"unterminated"]


@st.composite
def messages(draw: st.DrawFn, depth: int = 0) -> bytes:
    head = b""
    for _ in range(draw(st.integers(0, 5))):
        value = "".join(draw(st.lists(st.sampled_from(HEADER_WORDS), max_size=6)))
        head += f"{draw(st.sampled_from(FIELDS))}: {value}\r\n".encode()
    ctype = draw(st.sampled_from(TYPES))
    head += f"Content-Type: {ctype}\r\n".encode()
    if ctype.startswith("multipart") and depth < 3:
        boundary = b"c c" if "c c" in ctype else b"b"
        parts = draw(st.lists(messages(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
        body += b"--" + boundary + draw(st.sampled_from([b"--\r\n", b"", b"-"]))
    elif ctype.startswith("message") and depth < 3:
        body = draw(messages(depth + 1))
    else:
        body = draw(st.binary(max_size=60))
    return head + draw(st.sampled_from([b"\r\n", b"\n", b""])) + body


def check_imap_output(data: bytes) -> None:
    parsed = parse_message_bytes(data)
    check_message(parsed)
    json.dumps(parsed.to_json(), ensure_ascii=False).encode("utf-8")  # storable


@FAST
@given(st.binary(max_size=400))
def test_mime_parse_never_raises_and_bodystructure_is_well_formed(data: bytes) -> None:
    check_imap_output(data)


@FAST
@given(messages())
def test_mime_structured_messages_give_well_formed_imap(data: bytes) -> None:
    check_imap_output(data)


@FAST
@given(st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]),
               max_size=60).map(str.strip),
       st.sampled_from(["utf-8", "iso-8859-1", "utf-16"]), st.sampled_from(["q", "b"]))
def test_mime_encoded_words_round_trip(text: str, charset: str, encoding: str) -> None:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return
    cs = email.charset.Charset(charset)
    cs.header_encoding = email.charset.QP if encoding == "q" else email.charset.BASE64
    written = email.header.Header(text, cs, maxlinelen=10_000).encode()
    decoded = decode_words(written.replace("\n", ""))
    assert decoded == text or len(written) > 75  # RFC 2047 2: words stop at 75 chars


@FAST
@given(st.text(max_size=120))
def test_mime_decode_words_never_raises_nor_yields_nul(text: str) -> None:
    assert "\x00" not in decode_words(text.replace("\x00", ""))


# -- web: forms and JSON bodies ----------------------------------------------------------


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def post_form(loop: asyncio.AbstractEventLoop, content_type: bytes,
              pieces: list[bytes]) -> dict[str, str] | int:
    messages_ = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
                 for i, p in enumerate(pieces or [b""])]

    async def receive() -> dict[str, Any]:
        return messages_.pop(0) if messages_ else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-type", content_type)], "app": None}

    async def go() -> dict[str, str] | int:
        try:
            return await form_fields(Request(scope, receive))
        except HTTPException as exc:
            return exc.status_code

    return loop.run_until_complete(go())


field_text = st.text(st.characters(codec="utf-8"), max_size=20)


@FAST
@given(st.dictionaries(field_text, field_text, max_size=MAX_FORM_FIELDS),
       st.lists(st.integers(0, 1000), max_size=6))
def test_web_urlencoded_form_round_trips(loop: asyncio.AbstractEventLoop,
                                         fields: dict[str, str], cuts: list[int]) -> None:
    body = urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()
    assert post_form(loop, b"application/x-www-form-urlencoded", cut(body, cuts)) == fields


@FAST
@given(st.sampled_from([b"multipart/form-data; boundary=b",
                        b"application/x-www-form-urlencoded", b"multipart/form-data",
                        b"multipart/form-data; charset=utf-16; boundary=b",
                        b"multipart/form-data; charset=unicode_escape; boundary=b",
                        b"multipart/form-data; charset=\"utf-8\x00\"; boundary=b"]),
       st.lists(st.sampled_from([b"--b\r\n", b"--b--\r\n", b"Content-Disposition: form-data",
                                 b"; name=\"a\"", b"; filename=\"f\"", b"\r\n", b"x", b"&",
                                 b"=", b"%", b"%zz", b"\xff", b"a=1"]), max_size=30),
       st.lists(st.integers(0, 400), max_size=6))
def test_web_form_errors_are_http_errors(loop: asyncio.AbstractEventLoop,
                                        content_type: bytes, words: list[bytes],
                                        cuts: list[int]) -> None:
    result = post_form(loop, content_type, cut(b"".join(words), cuts))
    assert result in (400, 415) or (isinstance(result, dict)
                                    and len(result) <= MAX_FORM_FIELDS)


@FAST
@given(st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=4),
).map(lambda v: json.dumps(v).encode())))
def test_web_json_body_is_an_object_or_a_reason(raw: bytes) -> None:
    result = json_object(raw)
    assert isinstance(result, dict | str)
