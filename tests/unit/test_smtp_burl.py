"""BURL (RFC 4468) in the sans-IO SMTP core: parsing and the order rules it shares with
BDAT, each conversation also fed one byte at a time (tests/unit/test_smtp_state.py)."""

from __future__ import annotations

from postel.smtp.proto import Burl, ProtocolError, parse_command
from postel.smtp.replies import Reply
from postel.smtp.state import DATA_AFTER_BDAT, NEED_MAIL, NEED_RCPT, RCPT_AFTER_BDAT, Phase
from tests.unit.test_smtp_state import EHLO, MAIL, RCPT, _run, events, refusals, refusing

URL = b"imap://a%40b.example@h/Drafts/;UID=1;URLAUTH=submit+a%40b.example:internal:00"


def test_parse_burl() -> None:
    assert parse_command(b"BURL " + URL) == Burl(URL.decode(), False)
    assert parse_command(b"burl " + URL + b" last") == Burl(URL.decode(), True)
    for bad in (b"BURL", b"BURL ", b"BURL a b", b"BURL a LAST x", b"BURL \xc3\xa9"):
        event = parse_command(bad)
        assert isinstance(event, ProtocolError) and event.code == 501, bad


def test_burl_needs_mail_and_a_recipient() -> None:
    burl = b"BURL " + URL + b" LAST\r\n"
    assert refusals(EHLO + burl) == [NEED_MAIL]
    assert refusals(EHLO + MAIL + burl) == [NEED_RCPT]
    assert refusals(EHLO + MAIL + RCPT + burl) == []


def test_burl_mixes_with_bdat_but_not_rcpt_or_data() -> None:
    got = events(EHLO + MAIL + RCPT + b"BURL " + URL + b"\r\nBDAT 2 LAST\r\nhi"
                 + MAIL + RCPT + b"BURL " + URL + b"\r\n" + RCPT + b"DATA\r\n")
    assert Burl(URL.decode(), False) in got
    assert [e for e in got if isinstance(e, ProtocolError)] == [RCPT_AFTER_BDAT,
                                                                DATA_AFTER_BDAT]


def test_last_or_refused_burl_ends_the_transaction() -> None:
    _, connection = _run([EHLO + MAIL + RCPT + b"BURL " + URL + b" LAST\r\n"],
                         lambda e: Reply(250, "2.0.0", "OK"))
    assert connection.phase is Phase.IDLE
    assert refusals(EHLO + MAIL + RCPT + b"BURL " + URL + b"\r\n" + RCPT,
                    refusing(Burl)) == [NEED_MAIL]
