"""Findings of the atheris fuzz targets (fuzz/), replayed over real sockets.

Header text that decodes to NUL (a raw NUL octet, an RFC 2047 word "=00", an RFC 2231
"%00"): PostgreSQL's text type cannot hold NUL, so storing the decoded Subject failed the
delivery; and no IMAP string can carry NUL (RFC 9051 4.3: CHAR8 is %x01-ff), yet the
BODYSTRUCTURE wrote it in a literal. The server runs on PostgreSQL, where it failed.

A tag longer than a whole command line (imap.max_line_length) was answered with as much of
it as the first read held: which prefix depended on how TCP cut the bytes, and none is the
client's tag. Where a tag ends cannot be known then, so the BAD is untagged (RFC 9051 7.1.5).

A multipart form whose Content-Type names a charset was decoded with whatever codec that
named: `unicode_escape` made lone surrogates of "\\ud800" (issue 15 item 4's attack on
message charsets, now on forms), and a NUL in the name raised ValueError (a 500).
"""

from __future__ import annotations

import imaplib
import json
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import PASSWORD, PostelServer, drop_pg_database, fresh_pg_database
from tests.web.helpers import client, csrf, start

pytestmark = pytest.mark.postgres

USER = "alice@example.test"
NUL_HEADERS = (
    b"From: =?utf-8?q?A=00B?= <a@example.test>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: =?utf-8?q?before=00after?=\r\n"
    b"Content-Type: text/plain; charset=utf-8; name*=utf-8''a%00b.txt\r\n"
    b"Content-Disposition: attac\x00hment; filename=\"x\x00y.txt\"\r\n"
    b"\r\n"
    b"body\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    url = fresh_pg_database()
    postel = PostelServer(Path(tmp_path_factory.mktemp("fuzz-findings")), storage_url=url)
    postel.add_user(USER)
    start(postel)
    yield postel
    postel.close()
    drop_pg_database(url)


def test_smtp_message_with_nul_in_its_header_is_stored_and_fetched(
        server: PostelServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as client:
        client.ehlo("client.example")
        code, _ = client.docmd("MAIL", "FROM:<sender@elsewhere.example>")
        assert code == 250
        code, _ = client.docmd("RCPT", f"TO:<{USER}>")
        assert code == 250
        code, _ = client.data(NUL_HEADERS)
        assert code == 250
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                           ssl_context=server.client_tls(), timeout=30) as imap:
        imap.login(USER, PASSWORD)
        imap.select("INBOX")
        typ, data = imap.fetch("1:*", "(ENVELOPE BODYSTRUCTURE)")
        assert typ == "OK"
        wire = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
        assert b"attac" in wire and b"\x00" not in wire
        typ, found = imap.search(None, "SUBJECT", "before")
        assert typ == "OK" and found[0]


@pytest.mark.parametrize("charset", ["unicode_escape", "punycode", "rot13", "x-no-such"])
def test_a_form_in_a_charset_that_is_no_text_charset_is_refused(
        server: PostelServer, charset: str) -> None:
    with client(server) as http:
        token = csrf(http.get("/logon").text)
        body = (b"--b\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
                + token.encode() + b"\r\n--b\r\nContent-Disposition: form-data; "
                b"name=\"email\"\r\n\r\n\\ud800@example.test\r\n--b--\r\n")
        response = http.post("/logon", content=body, headers={
            "Content-Type": f"multipart/form-data; charset={charset}; boundary=b"})
    # RFC 9110 15.5.16: content in a form the server does not support is 415.
    assert response.status_code == 415
    log = server.log_path.read_text()
    errors = [line for line in log.splitlines() if line.startswith("{")
              and json.loads(line).get("level") in ("error", "critical")]
    assert not errors and "Traceback" not in log


def test_a_tag_longer_than_a_line_gets_an_untagged_bad(server: PostelServer) -> None:
    limit = server.config.imap.max_line_length
    raw = socket.create_connection(("127.0.0.1", server.port("imaps")), timeout=30)
    with server.client_tls().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        reader = tls.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        # Sent in pieces, as TCP may deliver them: the answer must not depend on it.
        line = b"T" * (limit + 4096) + b" NOOP\r\n"
        for at in range(0, len(line), 1000):
            tls.sendall(line[at : at + 1000])
        answer = reader.readline()
        assert answer.startswith(b"* BAD"), answer[:80]
        tls.sendall(b"a1 NOOP\r\n")
        assert reader.readline().startswith(b"a1 OK")


def test_a_form_with_more_fields_than_any_page_has_is_refused(server: PostelServer) -> None:
    """web/pages.py:MAX_FORM_FIELDS (40): no page of ours has half as many fields, so more
    is a client's mistake or an attack on the parser, and gets a readable 400."""
    with client(server) as http:
        token = csrf(http.get("/logon").text)
        fields = {"csrf_token": token, "email": "a@example.test", "password": "x"}
        fields |= {f"extra{n}": "y" for n in range(45)}
        response = http.post("/logon", data=fields)
    assert response.status_code == 400
    assert "Traceback" not in response.text and "Traceback" not in server.log_path.read_text()
