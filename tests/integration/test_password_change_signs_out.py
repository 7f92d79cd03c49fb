"""After a password change, sessions logged in with the old password sign out everywhere:
IMAP (at once in IDLE, at the next command otherwise), POP3 and SMTP submission; the new
password works at once."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from collections.abc import Callable

import pytest
from imapclient import IMAPClient

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_web_api import api_logon
from tests.web.helpers import client, start

NEW_PASSWORD = "a brand new secret 77"


def change_password(server: PostelServer) -> None:
    with client(server) as http:
        token = api_logon(http, "alice@example.test")
        answer = http.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers={"X-CSRF-Token": token},
        )
        assert answer.status_code == 200, answer.text


def test_a_password_change_signs_out_every_protocol(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(extra_config="[web]\nlogin_backoff_base = 0.0\n")
    server.add_user("alice@example.test")
    start(server)
    tls = server.client_tls()

    idler = IMAPClient("127.0.0.1", port=server.port("imaps"), ssl_context=tls, timeout=30)
    idler.login("alice@example.test", PASSWORD)
    idler.select_folder("INBOX")
    idler.idle()
    quiet = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=tls)
    quiet.login("alice@example.test", PASSWORD)
    pop = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=tls, timeout=30)
    pop.user("alice@example.test")
    pop.pass_(PASSWORD)
    smtp = smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"), context=tls, timeout=30)
    smtp.login("alice@example.test", PASSWORD)

    change_password(server)

    # IDLE: told at once, without sending anything.
    responses = idler.idle_check(timeout=20)
    assert any(b"BYE" in (r[0] if isinstance(r, tuple) else r) for r in responses), responses
    # A session not in IDLE is signed out at its next command.
    with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
        quiet.noop()
        quiet.select("INBOX")
    with pytest.raises(poplib.error_proto, match="password was changed"):
        pop.stat()
    code, _ = smtp.docmd("MAIL", "FROM:<alice@example.test>")
    assert code == 421

    # The new password works at once, the old one nowhere.
    fresh = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=tls)
    assert fresh.login("alice@example.test", NEW_PASSWORD)[0] == "OK"
    fresh.logout()
    with pytest.raises(imaplib.IMAP4.error):
        imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=tls).login(
            "alice@example.test", PASSWORD
        )
