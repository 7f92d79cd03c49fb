import smtplib

from tests.harness import PostelServer


def test_mail_on_port_25_reaches_the_inbox(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as client:
        client.sendmail("x@remote.test", ["alice@example.test"], b"Subject: hi\r\n\r\nhello\r\n")
    assert postel.inbox("alice@example.test")[-1].endswith(b"\r\n\r\nhello\r\n")
