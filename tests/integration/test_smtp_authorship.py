"""Issue 15 item 9 over real sockets: on 587 and 465 every author field (each From, Sender,
Resent-From, Resent-Sender) must name the user's own addresses, and a second From field
is refused (RFC 5322 3.6)."""

from __future__ import annotations

import smtplib

import pytest

from tests.harness import PASSWORD, PostelServer

OWN = "bob@example.test"


@pytest.fixture(scope="module", autouse=True)
def alias(postel: PostelServer) -> None:
    postel.store.directory.add_alias("bob.alias@example.test", OWN)


def message(*fields: str) -> bytes:
    head = "".join(f"{f}\r\n" for f in fields)
    return f"{head}To: alice@example.test\r\nSubject: who\r\n\r\nhello\r\n".encode()


def submit(postel: PostelServer, listener: str, body: bytes) -> tuple[int, bytes]:
    """The reply to the end of DATA, as bob on `listener`."""
    if listener == "submissions":
        client: smtplib.SMTP = smtplib.SMTP_SSL("127.0.0.1", postel.port(listener),
                                                context=postel.client_tls(), timeout=30)
    else:
        client = smtplib.SMTP("127.0.0.1", postel.port(listener), timeout=30)
        client.starttls(context=postel.client_tls())
    with client:
        client.login(OWN, PASSWORD)
        assert client.mail(OWN)[0] == 250
        assert client.rcpt("alice@example.test")[0] == 250
        return client.data(body)


REFUSED = [
    pytest.param(("From: bob@example.test", "From: alice@example.test"), 554,
                 id="two-from-fields"),
    pytest.param(("From: bob@example.test", "From: bob@example.test"), 554,
                 id="two-from-fields-same"),
    pytest.param(("From: bob@example.test, alice@example.test",), 550, id="second-author"),
    pytest.param(("From: bob@example.test", "Sender: alice@example.test"), 550,
                 id="sender"),
    pytest.param(("From: bob@example.test", "Resent-From: alice@example.test"), 550,
                 id="resent-from"),
    pytest.param(("From: bob@example.test", "Resent-Sender: Al <alice@example.test>"), 550,
                 id="resent-sender"),
    pytest.param(("From: Team: bob@example.test, alice@example.test;",), 550,
                 id="inside-a-group"),
    pytest.param(("From: =?utf-8?q?bob@example.test?= <alice@example.test>",), 550,
                 id="encoded-display-name"),
]


@pytest.mark.parametrize("listener", ["submission", "submissions"])
@pytest.mark.parametrize(("fields", "code"), REFUSED)
def test_foreign_author_fields_are_refused(postel: PostelServer, listener: str,
                                           fields: tuple[str, ...], code: int) -> None:
    before = len(postel.inbox("alice@example.test"))
    reply, text = submit(postel, listener, message(*fields))
    assert reply == code, text
    assert text.startswith(b"5.6.0" if code == 554 else b"5.7.1")
    assert len(postel.inbox("alice@example.test")) == before


@pytest.mark.parametrize("listener", ["submission", "submissions"])
def test_own_addresses_in_every_author_field_pass(postel: PostelServer,
                                                  listener: str) -> None:
    reply, text = submit(postel, listener, message(
        "From: Bob <bob@example.test>, bob.alias@example.test",
        "Sender: BOB@example.test", "Resent-From: bob.alias@example.test",
        "Resent-Sender: bob@example.test"))
    assert reply == 250, text


def test_port_25_does_not_check_authors(postel: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", postel.port("smtp"), timeout=30) as client:
        client.ehlo("remote.test")
        client.sendmail("someone@remote.test", ["alice@example.test"],
                        message("From: someone@remote.test", "Sender: other@remote.test"))
