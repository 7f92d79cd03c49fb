"""Receiving mail over SMTP on 25, 587 and 465 with real clients (smtplib, aiosmtplib)."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl

import aiosmtplib
import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.smtp_helpers import RawSmtp

MESSAGE = b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


def sent_as(user: str, to: str = "alice@example.test", subject: str = "hi") -> bytes:
    return f"From: {user}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


@pytest.fixture(scope="module", autouse=True)
def aliases(postel: PostelServer) -> None:
    postel.store.directory.add_alias("bob.alias@example.test", "bob@example.test")
    postel.add_domain("other.example")
    postel.store.directory.add_alias("@other.example", "alice@example.test")  # catch-all


def test_port_25_delivers_to_a_local_user_with_trace_headers(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        code, text = client.ehlo("client.remote.test")
        assert code == 250
        assert b"STARTTLS" in text and b"AUTH" not in text
        for extension in (
            b"SIZE",
            b"8BITMIME",
            b"SMTPUTF8",
            b"PIPELINING",
            b"CHUNKING",
            b"ENHANCEDSTATUSCODES",
        ):
            assert extension in text
        client.sendmail("sender@remote.test", ["Alice@EXAMPLE.test"], MESSAGE)
    stored = postel.inbox("alice@example.test")[-1]
    assert stored.startswith(
        b"Return-Path: <sender@remote.test>\r\nReceived: from client.remote.test"
    )
    assert b"by mail.example.test (Postel) with ESMTP" in stored
    assert stored.endswith(MESSAGE)


def test_port_25_with_starttls(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        client.starttls(context=postel.client_tls())
        _code, text = client.ehlo()
        assert b"STARTTLS" not in text
        client.sendmail(
            "s@remote.test", ["bob@example.test"], sent_as("s@remote.test", subject="tls25")
        )
    stored = postel.inbox("bob@example.test")[-1]
    assert b"with ESMTPS" in stored and b"Subject: tls25" in stored


def test_port_25_refuses_relaying_and_auth(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        client.ehlo()
        client.mail("spammer@remote.test")
        assert client.rcpt("victim@elsewhere.test") == (554, b"5.7.1 relay access denied")
        assert client.docmd("AUTH", "PLAIN")[0] == 503


def test_unknown_local_user_is_refused(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        client.ehlo()
        client.mail("s@remote.test")
        assert client.rcpt("nobody@example.test") == (550, b"5.1.1 no such user here")
        assert client.rcpt("alice@example.test")[0] == 250


def test_alias_and_catch_all_deliver(postel: PostelServer) -> None:
    before_bob = len(postel.inbox("bob@example.test"))
    before_alice = len(postel.inbox("alice@example.test"))
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        client.sendmail("s@remote.test", ["bob.alias@example.test"], sent_as("s@remote.test"))
        client.sendmail("s@remote.test", ["anything@other.example"], sent_as("s@remote.test"))
    assert len(postel.inbox("bob@example.test")) == before_bob + 1
    assert len(postel.inbox("alice@example.test")) == before_alice + 1


def test_submission_starttls_then_auth_then_send(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        _, text = client.ehlo()
        assert b"AUTH" not in text, "AUTH must not be offered before TLS"
        client.starttls(context=postel.client_tls())
        _code, text = client.ehlo()
        assert b"AUTH PLAIN LOGIN" in text
        assert client.login("ALICE@example.test", PASSWORD)[0] == 235
        client.sendmail(
            "alice@example.test",
            ["bob@example.test"],
            sent_as("alice@example.test", "bob@example.test", "sub587"),
        )
    stored = postel.inbox("bob@example.test")[-1]
    assert b"Subject: sub587" in stored and b"with ESMTPSA" in stored


def test_submission_auth_login_mechanism(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.ehlo()
        client.user, client.password = "bob@example.test", PASSWORD
        assert client.auth("LOGIN", client.auth_login)[0] == 235


def test_submission_refuses_auth_and_mail_before_tls(postel: PostelServer) -> None:
    raw = RawSmtp(postel.port("submission"))
    raw.command("EHLO c")
    token = base64.b64encode(f"\0alice@example.test\0{PASSWORD}".encode()).decode()
    assert raw.command(f"AUTH PLAIN {token}")[0] == 530
    assert raw.command("MAIL FROM:<alice@example.test>")[0] == 530
    raw.close()


def test_submission_refuses_mail_before_auth(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.ehlo()
        assert client.mail("alice@example.test") == (530, b"5.7.0 authentication required")


def test_wrong_password_is_535(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            client.login("alice@example.test", "not the password")
        assert failure.value.smtp_code == 535
        assert failure.value.smtp_error.startswith(b"5.7.8")


def test_unknown_user_login_is_535_too(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            client.login("nobody@example.test", PASSWORD)
        assert failure.value.smtp_code == 535


def test_submission_refuses_a_spoofed_sender(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.login("alice@example.test", PASSWORD)
        code, text = client.mail("bob@example.test")
        assert (code, text[:5]) == (553, b"5.7.1")
        assert client.mail("<>")[0] == 553


def test_submission_refuses_a_spoofed_from_header(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.login("alice@example.test", PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as failure:
            client.sendmail(
                "alice@example.test",
                ["bob@example.test"],
                sent_as("ceo@example.test", "bob@example.test"),
            )
        assert failure.value.smtp_code == 550


def test_user_may_send_as_its_alias(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.login("bob@example.test", PASSWORD)
        client.sendmail(
            "bob.alias@example.test", ["alice@example.test"], sent_as("bob.alias@example.test")
        )


def test_submissions_port_465_implicit_tls(postel: PostelServer) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", postel.port("submissions"), context=postel.client_tls()
    ) as client:
        _code, text = client.ehlo()
        assert b"STARTTLS" not in text and b"AUTH PLAIN LOGIN" in text
        client.login("alice@example.test", PASSWORD)
        client.sendmail(
            "alice@example.test",
            ["bob@example.test"],
            sent_as("alice@example.test", "bob@example.test", "via465"),
        )
    assert b"Subject: via465" in postel.inbox("bob@example.test")[-1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_is_refused(postel: PostelServer) -> None:
    context = postel.client_tls()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        smtplib.SMTP_SSL("127.0.0.1", postel.port("submissions"), context=context, timeout=10)


def test_remote_recipient_from_authenticated_user_is_queued(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("submission")) as client:
        client.starttls(context=postel.client_tls())
        client.login("alice@example.test", PASSWORD)
        client.sendmail(
            "alice@example.test",
            ["friend@remote.test", "bob@example.test"],
            sent_as("alice@example.test", "friend@remote.test", "outbound"),
        )
    queued = [item for item in postel.store.queue.list_all() if item.domain == "remote.test"]
    assert queued and queued[-1].recipients == ["friend@remote.test"]
    body = postel.store.blobs.path(queued[-1].blob_sha256).read_bytes()[queued[-1].body_offset :]
    assert body.startswith(b"Received: ") and b"Subject: outbound" in body
    assert b"Subject: outbound" in postel.inbox("bob@example.test")[-1]


def test_aiosmtplib_submission(postel: PostelServer) -> None:
    async def send() -> None:
        await aiosmtplib.send(
            sent_as("bob@example.test", subject="aio"),
            sender="bob@example.test",
            recipients=["alice@example.test"],
            hostname="127.0.0.1",
            port=postel.port("submission"),
            start_tls=True,
            tls_context=postel.client_tls(),
            username="bob@example.test",
            password=PASSWORD,
        )

    asyncio.run(send())
    assert b"Subject: aio" in postel.inbox("alice@example.test")[-1]


def test_8bit_body_and_utf8_addresses(postel: PostelServer) -> None:
    postel.add_domain("bücher.example")
    postel.add_user("用户@bücher.example")
    body = (
        "From: Zoë <zoe@remote.test>\r\nSubject: Grüße\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nÜber 8 bit\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        client.ehlo()
        client.sendmail(
            "zoë@remote.test",
            ["用户@bücher.example"],
            body,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
        # Without SMTPUTF8 a non-ASCII address is refused (RFC 6531 3.4).
        code, _ = client.mail("zoë@remote.test")
        assert code == 553
        client.rset()
        # An A-label (punycode) domain reaches the same user.
        client.sendmail(
            "a@remote.test", ["用户@xn--bcher-kva.example"], body, mail_options=["SMTPUTF8"]
        )
    stored = postel.inbox("用户@bücher.example")
    assert len(stored) == 2 and stored[0].endswith(body)
    assert stored[0].startswith("Return-Path: <zoë@remote.test>".encode())


def test_pipelined_commands_are_answered_in_order(postel: PostelServer) -> None:
    raw = RawSmtp(postel.port("smtp"))
    raw.send(
        b"EHLO pipe.test\r\nMAIL FROM:<p@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
        b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
    )
    assert raw.reply()[0] == 250
    assert [raw.reply()[0] for _ in range(5)] == [250, 250, 550, 250, 354]
    raw.send(b"Subject: pipelined\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
    assert raw.reply()[0] == 250
    assert raw.reply()[0] == 221
    stored = postel.inbox("bob@example.test")[-1]
    assert stored.endswith(b"Subject: pipelined\r\n\r\n.leading dot\r\n")


def test_bdat_chunks(postel: PostelServer) -> None:
    raw = RawSmtp(postel.port("smtp"))
    raw.command("EHLO bdat.test")
    assert raw.command("MAIL FROM:<c@remote.test>")[0] == 250
    assert raw.command("RCPT TO:<alice@example.test>")[0] == 250
    part1 = b"Subject: chunked\r\n\r\nfirst part\r"
    part2 = b"\n.second line starts with a dot\r\n"
    raw.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert raw.reply()[0] == 250
    raw.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    code, text = raw.reply()
    assert code == 250 and "queued as" in text
    assert postel.inbox("alice@example.test")[-1].endswith(part1 + part2)
    # BDAT without a transaction: the chunk is still consumed, then refused.
    raw.send(b"BDAT 5 LAST\r\nHELLO")
    assert raw.reply()[0] == 503
    assert raw.command("NOOP")[0] == 250
    raw.close()


@pytest.mark.parametrize(
    "smuggled",
    [b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\n.\n", b"\r\n.\r"],
    ids=["LF.CRLF", "CR.CRLF", "CRLF.LF", "LF.LF", "CRLF.CR"],
)
def test_smtp_smuggling_is_refused(postel: PostelServer, smuggled: bytes) -> None:
    before = len(postel.inbox("alice@example.test"))
    raw = RawSmtp(postel.port("smtp"))
    raw.command("EHLO smuggler.test")
    raw.command("MAIL FROM:<a@remote.test>")
    raw.command("RCPT TO:<alice@example.test>")
    assert raw.command("DATA")[0] == 354
    raw.send(
        b"Subject: outer\r\n\r\nhello"
        + smuggled
        + b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        + b"Subject: smuggled\r\n\r\nx\r\n.\r\n"
    )
    code, text = raw.reply()
    assert code == 554 and "smuggling" in text
    assert raw.command("NOOP")[0] == 250  # the session goes on; nothing was injected
    raw.close()
    assert len(postel.inbox("alice@example.test")) == before


def test_line_too_long_and_unknown_commands(postel: PostelServer) -> None:
    raw = RawSmtp(postel.port("smtp"))
    raw.send(b"EHLO " + b"x" * 10000 + b"\r\n")
    assert raw.reply() == (500, "5.5.2 line too long")
    assert raw.command("FOO bar")[0] == 500
    assert raw.command("MAIL FROM:<a@b.test>")[0] == 503  # no EHLO yet
    assert raw.command("EHLO ok.test")[0] == 250
    assert raw.command("MAIL FROM:<not an address>")[0] == 553
    assert raw.command("MAIL FROM:<a@remote.test> FOO=BAR")[0] == 555
    assert raw.command("RCPT TO:<alice@example.test>")[0] == 503
    assert raw.command("VRFY alice")[0] == 252
    raw.close()


def test_binary_garbage_gets_errors_not_a_crash(postel: PostelServer) -> None:
    raw = RawSmtp(postel.port("smtp"))
    raw.send(b"\xff\xfe\x00\x01garbage\r\n")
    assert raw.reply()[0] == 501
    raw.close()
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        assert client.noop()[0] == 250


def test_rset_discards_the_transaction(postel: PostelServer) -> None:
    before = len(postel.inbox("alice@example.test"))
    raw = RawSmtp(postel.port("smtp"))
    raw.command("EHLO r.test")
    raw.command("MAIL FROM:<a@remote.test>")
    raw.command("RCPT TO:<alice@example.test>")
    assert raw.command("RSET")[0] == 250
    assert raw.command("DATA")[0] == 503
    raw.close()
    assert len(postel.inbox("alice@example.test")) == before


def test_thirty_megabyte_message(postel: PostelServer) -> None:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = b"Subject: big\r\n\r\n" + line * (30 * 1024 * 1024 // len(line))

    async def send() -> None:
        await aiosmtplib.send(
            body,
            sender="big@remote.test",
            recipients=["bob@example.test"],
            hostname="127.0.0.1",
            port=postel.port("smtp"),
            timeout=120,
            tls_context=postel.client_tls(),
        )

    asyncio.run(send())
    stored = postel.inbox("bob@example.test")[-1]
    assert len(body) > 30_000_000
    assert stored.endswith(body)


def test_ehlo_with_control_characters_cannot_inject_headers(postel: PostelServer) -> None:
    raw = RawSmtp(postel.port("smtp"))
    assert raw.command("EHLO evil\rX-Injected:yes")[0] == 501
    assert raw.command("EHLO ok.test")[0] == 250
    raw.close()


def test_rcpt_between_bdat_chunks_is_refused(postel: PostelServer) -> None:
    # RFC 3030 2: the envelope is complete once BDAT starts; the Received header (which
    # names a single recipient) is already written.
    raw = RawSmtp(postel.port("smtp"))
    raw.command("EHLO order.test")
    raw.command("MAIL FROM:<o@remote.test>")
    raw.command("RCPT TO:<alice@example.test>")
    part = b"Subject: order\r\n\r\n"
    raw.send(b"BDAT %d\r\n" % len(part) + part)
    assert raw.reply()[0] == 250
    assert raw.command("RCPT TO:<bob@example.test>") == (503, "5.5.1 RCPT after BDAT")
    assert raw.command("DATA") == (503, "5.5.1 DATA after BDAT")
    raw.send(b"BDAT 3 LAST\r\nend")
    assert raw.reply()[0] == 250
    raw.close()


def test_size_with_a_non_ascii_digit_is_a_syntax_error(postel: PostelServer) -> None:
    # "²" passes str.isdigit(); it used to reach int() and end the session with a 421.
    raw = RawSmtp(postel.port("smtp"))
    raw.command("EHLO size.test")
    assert raw.command("MAIL FROM:<s@remote.test> SIZE=\u00b2")[0] == 501
    assert raw.command("MAIL FROM:<s@remote.test> SIZE=10")[0] == 250
    raw.close()
