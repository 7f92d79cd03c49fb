"""The SMTP order rules (postel.smtp.state): told each reply, the core refuses commands out
of order itself. No sockets: bytes in, events out, replies in; every conversation is also
fed one byte at a time and must come out the same."""

from __future__ import annotations

import base64
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.mail.address import Address
from postel.smtp.params import MailParams, RcptParams
from postel.smtp.proto import (
    Auth,
    AuthResponse,
    Bdat,
    BodyData,
    BodyEnd,
    Data,
    Ehlo,
    ProtocolError,
    SimpleCommand,
)
from postel.smtp.replies import Reply
from postel.smtp.state import (
    ALREADY_AUTHENTICATED,
    AUTH_IN_TRANSACTION,
    DATA_AFTER_BDAT,
    NEED_HELO,
    NEED_MAIL,
    NEED_RCPT,
    NESTED_MAIL,
    RCPT_AFTER_BDAT,
    ConnectionEvent,
    MailFrom,
    Phase,
    RcptTo,
    SmtpConnection,
)

OK = Reply(250, "2.0.0", "OK")
Answer = Callable[[ConnectionEvent], Reply | None]
Turn = tuple[ConnectionEvent, int | None]


def willing(event: ConnectionEvent) -> Reply | None:
    """An application that accepts everything the core lets through."""
    match event:
        case Data():
            return Reply(354, "", "go ahead")
        case Bdat() | BodyData():
            return None  # a BDAT is answered at the end of its chunk
        case Auth(initial_response=None) | AuthResponse(line=""):
            return Reply(334, "", "")
        case Auth() | AuthResponse():
            return Reply(235, "2.7.0", "authenticated")
        case SimpleCommand(verb="QUIT"):
            return Reply(221, "2.0.0", "bye")
        case SimpleCommand(verb="STARTTLS"):
            return Reply(220, "2.0.0", "go ahead")
        case ProtocolError():
            return Reply(event.code, event.enhanced, event.text)
    return OK


def refusing(*kinds: type) -> Answer:
    """Like `willing`, but answers events of these kinds 550."""

    def answer(event: ConnectionEvent) -> Reply | None:
        if isinstance(event, kinds):
            return Reply(550, "5.0.0", "no")
        return willing(event)

    return answer


def _run(pieces: list[bytes], answer: Answer) -> tuple[list[Turn], SmtpConnection]:
    connection = SmtpConnection()
    turns: list[Turn] = []
    for piece in pieces:
        connection.receive(piece)
        while (event := connection.next_event()) is not None:
            reply = answer(event)
            if reply is not None:
                connection.send(reply)
            if isinstance(event, BodyData) and turns and isinstance(turns[-1][0], BodyData):
                turns[-1] = (BodyData(turns[-1][0].data + event.data), None)  # merge pieces
            else:
                turns.append((event, reply.code if reply else None))
    return turns, connection


def talk(data: bytes, answer: Answer = willing) -> list[Turn]:
    """The conversation, checked to be the same fed whole and one byte at a time."""
    whole, _ = _run([data], answer)
    split, _ = _run([data[i : i + 1] for i in range(len(data))], answer)
    assert split == whole
    return whole


def events(data: bytes, answer: Answer = willing) -> list[ConnectionEvent]:
    return [event for event, _ in talk(data, answer)]


def refusals(data: bytes, answer: Answer = willing) -> list[ProtocolError]:
    return [event for event in events(data, answer) if isinstance(event, ProtocolError)]


EHLO = b"EHLO c.example\r\n"
MAIL = b"MAIL FROM:<a@b.example>\r\n"
RCPT = b"RCPT TO:<x@y.example>\r\n"


def test_a_whole_transaction() -> None:
    assert events(EHLO + MAIL + RCPT + b"DATA\r\nhello\r\n.\r\nQUIT\r\n") == [
        Ehlo("c.example", True),
        MailFrom(Address("a", "b.example"), MailParams()),
        RcptTo(Address("x", "y.example"), RcptParams()),
        Data(),
        BodyData(b"hello\r\n"),
        BodyEnd(last=True),
        SimpleCommand("QUIT", ""),
    ]


def test_mail_needs_ehlo_first() -> None:
    assert refusals(MAIL) == [NEED_HELO]
    assert refusals(b"HELO c.example\r\n" + MAIL) == []


def test_rcpt_and_data_need_an_accepted_mail() -> None:
    assert refusals(EHLO + RCPT + b"DATA\r\n") == [NEED_MAIL, NEED_MAIL]
    # The core knows MAIL was accepted only from the 250 that answers it.
    assert refusals(EHLO + MAIL + RCPT, refusing(MailFrom)) == [NEED_MAIL]


def test_data_needs_an_accepted_recipient() -> None:
    assert refusals(EHLO + MAIL + b"DATA\r\n") == [NEED_RCPT]
    turns = talk(EHLO + MAIL + RCPT + b"DATA\r\nNOOP\r\n", refusing(RcptTo))
    assert [event for event, _ in turns][-2:] == [NEED_RCPT, SimpleCommand("NOOP", "")]


def test_second_mail_inside_a_transaction() -> None:
    assert refusals(EHLO + MAIL + MAIL) == [NESTED_MAIL]
    assert refusals(EHLO + MAIL + RCPT + MAIL) == [NESTED_MAIL]


def test_rset_and_ehlo_end_the_transaction() -> None:
    assert refusals(EHLO + MAIL + b"RSET\r\n" + RCPT) == [NEED_MAIL]
    assert refusals(EHLO + MAIL + EHLO + MAIL) == []


def test_the_body_starts_only_after_354() -> None:
    def no_data(event: ConnectionEvent) -> Reply | None:
        if isinstance(event, Data):
            return Reply(451, "4.3.0", "not now")
        return willing(event)

    # With no 354, the lines after DATA are commands, not a body.
    assert events(EHLO + MAIL + RCPT + b"DATA\r\nNOOP\r\n", no_data)[-2:] == [
        Data(), SimpleCommand("NOOP", "")
    ]


def test_the_message_end_ends_the_transaction_whatever_the_reply() -> None:
    stream = EHLO + MAIL + RCPT + b"DATA\r\nx\r\n.\r\n" + RCPT
    assert refusals(stream) == [NEED_MAIL]
    assert refusals(stream, refusing(BodyEnd)) == [NEED_MAIL]


def test_bdat_without_mail_consumes_its_chunk_then_refuses() -> None:
    # RFC 3030 2: the chunk is read whatever the answer; a command inside it is data.
    chunk = b"MAIL FROM:<evil@x.example>\r\n"
    stream = EHLO + b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n"
    assert events(stream)[1:] == [NEED_MAIL, SimpleCommand("NOOP", "")]


def test_bdat_without_recipient_refuses_and_ends_the_transaction() -> None:
    stream = EHLO + MAIL + b"BDAT 3\r\nabc" + RCPT
    assert refusals(stream) == [NEED_RCPT, NEED_MAIL]


def test_bdat_chunks() -> None:
    stream = EHLO + MAIL + RCPT + b"BDAT 3\r\nabcBDAT 2 LAST\r\nde" + MAIL
    turns = talk(stream)
    assert turns[3:] == [
        (Bdat(3, False), None),
        (BodyData(b"abc"), None),
        (BodyEnd(last=False), 250),
        (Bdat(2, True), None),
        (BodyData(b"de"), None),
        (BodyEnd(last=True), 250),
        (MailFrom(Address("a", "b.example"), MailParams()), 250),
    ]


def test_data_and_rcpt_after_bdat() -> None:
    assert refusals(EHLO + MAIL + RCPT + b"BDAT 1\r\nx" + b"DATA\r\n" + RCPT) == [
        DATA_AFTER_BDAT, RCPT_AFTER_BDAT
    ]


def test_auth_order() -> None:
    token = base64.b64encode(b"\0alice\0pw")
    auth = b"AUTH PLAIN " + token + b"\r\n"
    assert refusals(auth) == [NEED_HELO]
    assert refusals(EHLO + MAIL + auth) == [AUTH_IN_TRANSACTION]
    assert refusals(EHLO + auth + auth) == [ALREADY_AUTHENTICATED]
    # A refused AUTH leaves the door open.
    assert refusals(EHLO + auth + auth, refusing(Auth)) == []


def test_334_makes_the_next_line_an_auth_answer() -> None:
    stream = EHLO + b"AUTH PLAIN\r\nNOOP\r\nNOOP\r\n"
    assert events(stream)[1:] == [
        Auth("PLAIN", None), AuthResponse("NOOP"), SimpleCommand("NOOP", "")
    ]


def test_starttls_forgets_the_greeting_and_pipelined_plaintext() -> None:
    connection = SmtpConnection()
    connection.receive(EHLO)
    assert connection.next_event() == Ehlo("c.example", True)
    connection.send(OK)
    connection.receive(b"STARTTLS\r\n" + MAIL)
    assert connection.next_event() == SimpleCommand("STARTTLS", "")
    connection.send(Reply(220, "2.0.0", "go ahead"))
    assert connection.next_event() is None  # the injected MAIL is gone
    connection.receive(MAIL)
    assert connection.next_event() == NEED_HELO


def test_quit_and_421_close() -> None:
    turns = talk(EHLO + b"QUIT\r\nNOOP\r\n")
    assert [event for event, _ in turns] == [Ehlo("c.example", True), SimpleCommand("QUIT", "")]
    connection = SmtpConnection()
    connection.receive(b"NOOP\r\nNOOP\r\n")
    connection.next_event()
    connection.send(Reply(421, "4.3.2", "shutting down"))
    assert connection.closed and connection.next_event() is None


def test_in_transaction_follows_the_replies() -> None:
    connection = SmtpConnection()
    connection.receive(EHLO + MAIL)
    connection.next_event()
    connection.send(OK)
    connection.next_event()
    assert not connection.in_transaction  # MAIL is not accepted until answered
    connection.send(Reply(250, "2.1.0", "sender OK"))
    assert connection.in_transaction and connection.phase is Phase.MAIL
    # A second reply (say, a 421 after a refusal) answers nothing new.
    connection.receive(b"RSET\r\n")
    connection.next_event()
    connection.send(OK)
    assert connection.phase is Phase.IDLE


def test_bad_parameters_are_refused_by_the_core() -> None:
    assert refusals(EHLO + b"MAIL FROM:<a@b.example> FOO=1\r\n") == [
        ProtocolError(555, "5.5.4", "unsupported MAIL parameter: FOO")
    ]
    # DSN (RFC 3461) offers NOTIFY and ORCPT; other RCPT parameters stay 555.
    assert refusals(EHLO + MAIL + b"RCPT TO:<x@y.example> FOO=1\r\n") == [
        ProtocolError(555, "5.5.4", "unsupported RCPT parameter: FOO")
    ]


# No STARTTLS here: what it discards depends on how the bytes arrived, by design.
PARTS = [EHLO, MAIL, RCPT, b"DATA\r\n", b"body\r\n", b".\r\n", b"RSET\r\n", b"BDAT 4\r\n",
         b"BDAT 0 LAST\r\n", b"xyzw", b"AUTH PLAIN\r\n", b"=\r\n", b"NOOP\r\n", b"QUIT\r\n",
         b"\r\n", b"MAIL FROM:<> SIZE=x\r\n", b"\n", b"\r", b"."]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PARTS), max_size=25), st.data())
def test_splitting_never_matters_and_nothing_raises(
    parts: list[bytes], draw: st.DataObject
) -> None:
    data = b"".join(parts)
    whole, _ = _run([data], willing)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=8)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    split, _ = _run(pieces, willing)
    assert split == whole
