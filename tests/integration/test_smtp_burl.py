"""BURL (RFC 4468) on 587 (STARTTLS) and 465: a draft stored over IMAP (raw lines on 993
and 143, GENURLAUTH) is sent with smtplib's ``docmd("BURL", ...)`` without uploading it
again; the submission server fetches it from the store, not over IMAP."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_imap_support import Raw, both_ports, new_user

pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def draft(sender: str, to: str, subject: str = "draft") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n"
            "the body of the draft\r\n").encode()


def store_draft(postel: PostelServer, user: str, body: bytes, access: str | None = None,
                section: str = "") -> bytes:
    """APPEND the draft to Drafts and return a GENURLAUTH URL for it."""
    raw = Raw(postel)
    raw.login(user)
    raw.send(b"a APPEND Drafts {%d+}\r\n" % len(body) + body + b"\r\n")
    appended = raw.until(b"a")[-1]
    found = re.search(rb"APPENDUID (\d+) (\d+)", appended)
    assert found, appended
    validity, uid = found.group(1).decode(), found.group(2).decode()
    access = access or f"submit+{quote(user, safe='')}"
    rump = (f"imap://{quote(user, safe='')}@localhost/Drafts;UIDVALIDITY={validity}/;UID={uid}"
            f"{section};URLAUTH={access}")
    lines = raw.cmd(b"g", b'GENURLAUTH "' + rump.encode() + b'" INTERNAL')
    raw.close()
    signed = re.match(rb'\* GENURLAUTH "([^"]+)"', lines[0])
    assert signed and lines[-1].startswith(b"g OK"), lines
    return signed.group(1)


@contextmanager
def submission(postel: PostelServer, port: str, user: str) -> Iterator[smtplib.SMTP]:
    if port == "465":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            "127.0.0.1", postel.port("submissions"), context=postel.client_tls(), timeout=30)
    else:
        client = smtplib.SMTP("127.0.0.1", postel.port("submission"), timeout=30)
        client.starttls(context=postel.client_tls())
    with client:
        _code, text = client.ehlo()
        assert b"BURL imap" in text
        client.login(user, PASSWORD)
        yield client


@pytest.mark.parametrize("port", ["587", "465"])
def test_burl_sends_the_stored_draft(postel: PostelServer, port: str) -> None:
    alice, bob = new_user(postel), new_user(postel)
    body = draft(alice, bob, f"burl {port}")
    url = store_draft(postel, alice, body)
    with submission(postel, port, alice) as client:
        assert client.mail(alice)[0] == 250
        assert client.rcpt(bob)[0] == 250
        code, text = client.docmd("BURL", url.decode() + " LAST")
        assert code == 250 and b"queued" in text, text
    stored = postel.inbox(bob)[-1]
    assert stored.endswith(body) and b"with ESMTPSA" in stored


def test_burl_in_pieces_and_with_bdat(postel: PostelServer) -> None:
    alice, bob = new_user(postel), new_user(postel)
    body = draft(alice, bob, "pieces")
    header = store_draft(postel, alice, body, section="/;SECTION=HEADER")
    text = store_draft(postel, alice, body, section="/;SECTION=TEXT")
    with submission(postel, "587", alice) as client:
        client.mail(alice)
        client.rcpt(bob)
        code, reply = client.docmd("BURL", header.decode())
        assert code == 250 and b"octets" in reply, reply
        client.send(b"BDAT 7\r\nX-Mid: ")
        assert client.getreply()[0] == 250
        assert client.docmd("BURL", text.decode() + " LAST")[0] == 250
    head, _, rest = body.partition(b"\r\n\r\n")
    assert postel.inbox(bob)[-1].endswith(head + b"\r\n\r\nX-Mid: " + rest)


def test_wrong_token_and_foreign_urls_are_refused(postel: PostelServer) -> None:
    alice, bob = new_user(postel), new_user(postel)
    url = store_draft(postel, alice, draft(alice, bob)).decode()
    as_bob = store_draft(postel, alice, draft(alice, bob),
                         access=f"submit+{quote(bob, safe='')}").decode()
    relative = "/Drafts/;UID=1;URLAUTH=submit+x:internal:" + "0" * 64
    with submission(postel, "587", alice) as client:
        for bad in (url[:-6] + "000000", as_bob, relative, "imap://nothing", url[:-71]):
            client.mail(alice)
            client.rcpt(bob)
            code, text = client.docmd("BURL", bad + " LAST")
            assert (code, text[:5]) == (554, b"5.7.0"), (bad, text)
            # The failed BURL ended the transaction (RFC 4468 6).
            assert client.docmd("BURL", url + " LAST")[0] == 503
        client.mail(alice)
        assert client.docmd("BURL", url + " LAST")[0] == 554  # no recipient yet
        assert client.docmd("BURL")[0] == 501
        assert client.docmd("BURL", "a b c")[0] == 501
        client.rset()
        client.mail(alice)
        client.rcpt(bob)
        assert client.docmd("BURL", url + " LAST")[0] == 250
    with submission(postel, "587", bob) as client:  # bob may not use alice's submit URL
        client.mail(bob)
        client.rcpt(alice)
        assert client.docmd("BURL", url + " LAST")[0] == 554


def test_same_sender_checks_as_data(postel: PostelServer) -> None:
    alice, bob = new_user(postel), new_user(postel)
    url = store_draft(postel, alice, draft("ceo@example.test", bob)).decode()
    with submission(postel, "587", alice) as client:
        client.mail(alice)
        client.rcpt(bob)
        code, text = client.docmd("BURL", url + " LAST")
        assert (code, text[:5]) == (550, b"5.7.1"), text


def test_port_25_offers_no_burl(postel: PostelServer) -> None:
    alice = new_user(postel)
    url = store_draft(postel, alice, draft(alice, alice)).decode()
    with smtplib.SMTP("127.0.0.1", postel.port("smtp"), timeout=30) as client:
        assert b"BURL" not in client.ehlo()[1]
        client.mail("someone@remote.test")
        client.rcpt(alice)
        assert client.docmd("BURL", url + " LAST")[0] == 500
        assert client.noop()[0] == 250
