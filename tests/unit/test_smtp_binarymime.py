"""BODY=BINARYMIME with CHUNKING (RFC 3030 3) in the sans-IO core: the chunks of a binary
transaction come out octet for octet, DATA is refused, and the next transaction is
normalised again. Every conversation is also fed one byte at a time (``talk``)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from postel.smtp.params import Body
from postel.smtp.proto import Bdat, BodyData, BodyEnd
from postel.smtp.replies import Reply
from postel.smtp.state import (
    DATA_IN_BINARYMIME,
    ConnectionEvent,
    MailFrom,
    Phase,
    SmtpConnection,
)
from tests.unit.test_smtp_state import (
    EHLO,
    MAIL,
    RCPT,
    events,
    refusals,
    refusing,
    talk,
    willing,
)

BINARY_MAIL = b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n"
# Every octet a line-ending rule could touch: NUL, bare CR, bare LF, CR at a chunk's end,
# a lone "." line, and an LF starting the next chunk.
NASTY = b"\x00a\rb\nc\r\n.\r\n\r\r\n\n\xff\x80\r"


def body(data: bytes) -> bytes:
    return b"".join(e.data for e in events(data) if isinstance(e, BodyData))


def bdat(chunk: bytes, *, last: bool = False) -> bytes:
    return b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk


def test_mail_body_binarymime_is_accepted() -> None:
    mail = events(EHLO + BINARY_MAIL)[1]
    assert isinstance(mail, MailFrom) and mail.params.body is Body.BINARY_MIME


def test_binary_chunks_are_kept_octet_for_octet() -> None:
    stream = EHLO + BINARY_MAIL + RCPT + bdat(NASTY) + bdat(b"\nz\r", last=True)
    assert body(stream) == NASTY + b"\nz\r"
    assert events(stream)[-1] == BodyEnd(last=True)


def test_the_same_chunks_without_binarymime_are_normalised() -> None:
    stream = EHLO + MAIL + RCPT + bdat(b"a\rb\n") + bdat(b"c\r", last=True)
    assert body(stream) == b"a\r\nb\r\nc\r\n"


def test_data_in_a_binarymime_transaction_is_503_and_bdat_still_works() -> None:
    # RFC 3030 3: "the DATA command MUST NOT be used"; the transaction stays open.
    stream = EHLO + BINARY_MAIL + RCPT + b"DATA\r\n" + bdat(b"\x00\n", last=True)
    assert refusals(stream) == [DATA_IN_BINARYMIME]
    assert DATA_IN_BINARYMIME.code == 503 and DATA_IN_BINARYMIME.enhanced == "5.5.1"
    assert body(stream) == b"\x00\n"


def test_binary_mode_ends_with_its_transaction() -> None:
    stream = (EHLO + BINARY_MAIL + RCPT + bdat(b"x\n", last=True)
              + MAIL + RCPT + bdat(b"y\n", last=True))
    assert body(stream) == b"x\ny\r\n"
    # ... and DATA is allowed again in the next, non-binary transaction.
    stream = EHLO + BINARY_MAIL + b"RSET\r\n" + MAIL + RCPT + b"DATA\r\nq\r\n.\r\n"
    assert refusals(stream) == []


def test_a_refused_binarymime_mail_leaves_the_mode_alone() -> None:
    # The core learns that MAIL was accepted only from its 250.
    stream = EHLO + BINARY_MAIL + MAIL + RCPT + bdat(b"a\n", last=True)
    seen = talk(stream, _refuse_first_mail())
    assert [e for e, _ in seen if isinstance(e, BodyData)] == [BodyData(b"a\r\n")]


def _refuse_first_mail() -> Callable[[ConnectionEvent], Reply | None]:
    count = [0]
    refuse = refusing(MailFrom)

    def answer(event: ConnectionEvent) -> Reply | None:
        if isinstance(event, MailFrom):
            count[0] += 1
            if count[0] % 2 == 1:  # talk() runs the stream twice: refuse each first MAIL
                return refuse(event)
        return willing(event)

    return answer


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5), st.data())
def test_any_octets_in_any_chunking_come_out_unchanged(
    chunks: list[bytes], draw: st.DataObject
) -> None:
    stream = EHLO + BINARY_MAIL + RCPT
    stream += b"".join(bdat(c) for c in chunks[:-1]) + bdat(chunks[-1], last=True)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    connection = SmtpConnection()
    out = b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        connection.receive(stream[a:b])
        while (event := connection.next_event()) is not None:
            if isinstance(event, BodyData):
                out += event.data
            elif not isinstance(event, Bdat):  # a chunk is answered at its end
                connection.send(Reply(250, "2.0.0", "OK"))
    assert out == b"".join(chunks)
    assert connection.phase is Phase.IDLE
