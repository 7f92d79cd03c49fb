"""BODY=BINARYMIME with CHUNKING (RFC 3030) over real sockets: offered on 25, 587 and
465; DATA refused in a binary transaction; the message stored octet for octet (NULs, bare
CR and LF kept) and served by IMAP: BINARY[] gives the octets in a literal8, BODY[] never
puts a NUL outside one (issue 11 item 2). Clients: a raw socket on 25, smtplib on 587,
aiosmtplib on 465."""

from __future__ import annotations

import asyncio
import re
import smtplib

import aiosmtplib
import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.smtp_helpers import RawSmtp, connect
from tests.integration.test_imap_conformance import no_nul_outside_literal8
from tests.integration.test_imap_support import Raw, new_user

# A binary part as RFC 3030 allows it: NUL, bare CR, bare LF, 8-bit octets, a lone "."
# line (no dot-stuffing with BDAT), and no final CRLF.
PART = b"\x00\x01bin\rary\n.\r\n\xff\xfe\r\r\n\n\x80end"
MESSAGE = (
    b"From: <alice@example.test>\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
    b"\r\n" + PART + b"\r\n--b1--\r\n"
)


def bdat(chunk: bytes, *, last: bool = False) -> bytes:
    return b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk


def assert_stored_exactly(postel: PostelServer, user: str) -> None:
    """The user's one message is MESSAGE octet for octet, after Return-Path and Received."""
    [raw] = postel.inbox(user)
    assert raw.endswith(MESSAGE)


@pytest.mark.parametrize("port_name", ["smtp", "submission", "submissions"])
def test_binarymime_is_offered_beside_chunking(postel: PostelServer, port_name: str) -> None:
    login = None if port_name == "smtp" else "alice@example.test"
    with connect(postel, port_name, login=login) as client:
        assert client.has_extn("chunking") and client.has_extn("binarymime")


def test_binary_message_on_25_is_stored_octet_for_octet(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = RawSmtp(postel.port("smtp"))
    assert raw.command("EHLO client.remote.test")[0] == 250
    assert raw.command("MAIL FROM:<sender@remote.test> BODY=BINARYMIME")[0] == 250
    assert raw.command(f"RCPT TO:<{user}>")[0] == 250
    # RFC 3030 3: "the DATA command MUST NOT be used"; the transaction goes on with BDAT.
    code, text = raw.command("DATA")
    assert (code, text[:5]) == (503, "5.5.1")
    cut = MESSAGE.index(b"\rary") + 1  # a chunk ending in a bare CR
    raw.send(bdat(MESSAGE[:cut]))
    assert raw.reply()[0] == 250
    raw.send(bdat(MESSAGE[cut:], last=True))
    assert raw.reply()[0] == 250
    # The next transaction on the connection is an ordinary one again: DATA works.
    assert raw.command("MAIL FROM:<sender@remote.test>")[0] == 250
    assert raw.command(f"RCPT TO:<{user}>")[0] == 250
    assert raw.command("DATA")[0] == 354
    raw.send(b"Subject: plain\r\n\r\nplain\r\n.\r\n")
    assert raw.reply()[0] == 250
    raw.command("QUIT")
    first, second = postel.inbox(user)
    assert first.endswith(MESSAGE)
    assert second.endswith(b"Subject: plain\r\n\r\nplain\r\n")


def test_binary_message_by_smtplib_on_587_and_imap_serves_it(postel: PostelServer) -> None:
    user = new_user(postel)
    with connect(postel, "submission", login="alice@example.test") as client:
        assert client.docmd("MAIL", "FROM:<alice@example.test> BODY=BINARYMIME")[0] == 250
        assert client.docmd("RCPT", f"TO:<{user}>")[0] == 250
        client.send(bdat(MESSAGE, last=True))
        assert client.getreply()[0] == 250
    assert_stored_exactly(postel, user)
    imap = Raw(postel)
    imap.login(user)
    imap.cmd(b"s", b"EXAMINE INBOX")
    # BINARY[2]: the part's octets exactly, in a literal8 (RFC 3516 4.2).
    lines = imap.cmd(b"b", b"FETCH 1 (BINARY.PEEK[2])")
    assert lines[0] == b"* 1 FETCH (BINARY[2] ~{%d}\r\n%s)" % (len(PART), PART)
    lines = imap.cmd(b"w", b"FETCH 1 (BINARY.PEEK[])")
    whole = re.match(rb"\* 1 FETCH \(BINARY\[\] ~\{(\d+)\}\r\n", lines[0])
    assert whole is not None and lines[0][whole.end():-1].endswith(MESSAGE)
    # BODY[] as a normal literal: never a NUL in it (issue 11 item 2); length unchanged.
    for fetch in (b"BODY.PEEK[]", b"BODY.PEEK[2]"):
        lines = imap.cmd(b"f", b"FETCH 1 (" + fetch + b")")
        assert lines[-1].startswith(b"f OK") and no_nul_outside_literal8(lines[0]), lines
    lines = imap.cmd(b"p", b"FETCH 1 (BODY.PEEK[2])")
    assert lines[0] == b"* 1 FETCH (BODY[2] {%d}\r\n%s)" % (
        len(PART), PART.replace(b"\0", b"\x80"))
    imap.close()


def test_binary_message_by_aiosmtplib_on_465(postel: PostelServer) -> None:
    user = new_user(postel)

    async def send() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=postel.port("submissions"),
                                 use_tls=True, tls_context=postel.client_tls(), timeout=30)
        async with client:
            await client.ehlo()
            assert client.supports_extension("binarymime")
            await client.login("alice@example.test", PASSWORD)
            await client.mail("alice@example.test", options=["BODY=BINARYMIME"])
            await client.rcpt(user)
            protocol = client.protocol
            assert protocol is not None
            # Many small chunks, each answered; the last is empty (BDAT 0 LAST).
            for start in range(0, len(MESSAGE), 7):
                protocol.write(bdat(MESSAGE[start : start + 7]))
                assert (await protocol.read_response(timeout=30)).code == 250
            protocol.write(bdat(b"", last=True))
            assert (await protocol.read_response(timeout=30)).code == 250

    asyncio.run(send())
    assert_stored_exactly(postel, user)


def test_bad_body_value_is_still_501(postel: PostelServer) -> None:
    with connect(postel, "smtp") as client:
        assert client.docmd("MAIL", "FROM:<a@remote.test> BODY=9BIT")[0] == 501


def test_smtplib_data_after_binarymime_is_refused(postel: PostelServer) -> None:
    user = new_user(postel)
    with connect(postel, "smtp") as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("sender@remote.test", [user], MESSAGE,
                            mail_options=["BODY=BINARYMIME"])
        assert refused.value.smtp_code == 503
    assert postel.inbox(user) == []
