"""The classic open-relay set on 25 and on unauthenticated 587, sender spoofing by an
authenticated user (587, 465, webmail), and header injection through web compose and the
reset form. Each case checks the store: nothing may enter the outbound queue.

One server for the module; alice and bob are ours (example.test), other.org is remote.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.smtp_helpers import RawSmtp
from tests.web.helpers import api_logon, ask_reset, client, start

ALICE, BOB = "alice@example.test", "bob@example.test"

# RCPT paths that try to get mail for other.org (or a bare IP) accepted by us. RFC 5321
# 3.6.2 and 3.6.1: we are no relay; the percent hack, bang paths and source routes are
# not honoured (a source route's hops are ignored, so its last address is what counts).
RELAY_ATTEMPTS = [
    "<user%other.org@example.test>", "<user%other.org>", "<@example.test:user@other.org>",
    "<@example.test,@other.org:user@other.org>", "<other.org!user@example.test>",
    "<other.org!user>", '<"user@other.org"@example.test>', '<"user@other.org">',
    "<user@[1.2.3.4]>", "<user@[127.0.0.1]>", "<user@[IPv6:::1]>", "<user@other.org.>",
    "<user@OTHER.ORG>", "<user@Example.Test.other.org>", "<user@example.test.other.org>",
    "<user@other.org@example.test>", "<user@localhost>", "<postmaster@other.org>",
    "<user@other.org%example.test>", "<USER%OTHER.ORG@EXAMPLE.TEST>", "<user@mail.example.test>",
]
SENDERS = ["<>", "<alice@example.test>", "<someone@other.org>", "<user@[1.2.3.4]>"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(
        tmp_path_factory.mktemp("relay"),
        extra_config="[web]\ntest_hooks = true\nlogin_backoff_base = 0.0\n"
                     "reset_max_per_ip = 1000\n"
                     "[auth]\nmax_failures_per_ip = 0\nmax_failures_per_account = 0\n",
    )
    server.add_user(ALICE, backup_email="alice@backup.other.org")
    server.add_user(BOB, backup_email="bob@backup.other.org")
    start(server)
    yield server
    server.close()


def queued(server: PostelServer) -> list[str]:
    return [r for item in server.store.queue.list_all() for r in item.recipients]


def assert_refused(conn: RawSmtp, sender: str, rcpt: str) -> None:
    code, text = conn.command(f"MAIL FROM:{sender}")
    if code == 250:
        code, text = conn.command(f"RCPT TO:{rcpt}")
        assert 500 <= code < 600, (sender, rcpt, code, text)
        conn.command("RSET")
    else:
        assert 500 <= code < 600, (sender, code, text)


@pytest.mark.parametrize("sender", SENDERS)
def test_port_25_relays_nothing(server: PostelServer, sender: str) -> None:
    before = queued(server)
    conn = RawSmtp(server.port("smtp"))
    assert conn.command("EHLO relay.other.org")[0] == 250
    for rcpt in RELAY_ATTEMPTS:
        assert_refused(conn, sender, rcpt)
    # Mail for our own users still goes in, and DATA after refused RCPTs is 503/554.
    assert conn.command(f"MAIL FROM:{sender}")[0] == 250
    assert conn.command("RCPT TO:<user%other.org@example.test>")[0] >= 500
    assert conn.command("DATA")[0] >= 500
    conn.command("QUIT")
    conn.close()
    assert queued(server) == before


def test_unauthenticated_587_relays_nothing(server: PostelServer) -> None:
    for sender in SENDERS:
        # Too many refusals end the session with 421 (a refusal too): a fresh connection
        # per sender, and one again whenever the server hangs up.
        smtp = None
        for rcpt in (*RELAY_ATTEMPTS, f"<{ALICE}>"):
            if smtp is None:
                smtp = smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30)
                smtp.starttls(context=server.client_tls())
                smtp.ehlo("relay.other.org")
                code, _ = smtp.docmd("MAIL", f"FROM:{sender}")
                assert 500 <= code < 600, (sender, code)
            code, _ = smtp.docmd("RCPT", f"TO:{rcpt}")
            assert code == 421 or 500 <= code < 600, (sender, rcpt, code)
            if code == 421:
                smtp.close()
                smtp = None
        if smtp is not None:
            assert smtp.docmd("DATA")[0] >= 500
            smtp.close()
    assert queued(server) == []


# -- an authenticated user cannot send as another ----------------------------------------


def logged_in(server: PostelServer, listener: str) -> smtplib.SMTP:
    if listener == "submissions":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL("127.0.0.1", server.port(listener),
                                              context=server.client_tls(), timeout=30)
    else:
        smtp = smtplib.SMTP("127.0.0.1", server.port(listener), timeout=30)
        smtp.starttls(context=server.client_tls())
    smtp.login(ALICE, PASSWORD)
    return smtp


@pytest.mark.parametrize("listener", ["submission", "submissions"])
def test_authenticated_user_cannot_use_anothers_envelope_sender(server: PostelServer,
                                                                listener: str) -> None:
    with logged_in(server, listener) as smtp:
        for sender in (BOB, "BOB@EXAMPLE.TEST", "someone@other.org", '"alice"@other.org',
                       "alice%example.test@other.org", "@example.test:bob@example.test"):
            code, text = smtp.docmd("MAIL", f"FROM:<{sender}>")
            assert code == 550 or (500 <= code < 600 and code != 250), (sender, code, text)
            smtp.rset()
    assert queued(server) == []


# -- the webmail: spoofing and header injection ------------------------------------------


def sent_bytes(server: PostelServer, subject_marker: str) -> bytes:
    """The message alice's webmail put in her Sent folder whose bytes hold the marker."""
    account = server.store.directory.get_account(ALICE)
    assert account is not None
    for box in server.store.mail.list_mailboxes(account.id):
        for m in server.store.mail.list_messages(box.id):
            data = server.store.blobs.path(m.blob_sha256).read_bytes()
            if subject_marker.encode() in data:
                return data
    raise AssertionError(f"no stored message with {subject_marker!r}")


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode().lower() for line in head.split(b"\r\n")
            if line and not line[:1].isspace()]


def test_webmail_refuses_foreign_from(server: PostelServer) -> None:
    with client(server) as http:
        token = api_logon(http, ALICE)
        for sender in (BOB, "Bob <bob@example.test>", "someone@other.org",
                       "alice@example.test\r\nSender: bob@example.test",
                       "alice@example.test, bob@example.test"):
            answer = http.post("/api/v1/mail/send", headers={"X-CSRF-Token": token}, json={
                "from": sender, "to": [ALICE], "subject": "spoof", "text": "x"})
            assert answer.status_code == 400, (sender, answer.text)
    assert queued(server) == []


INJECTIONS = ["\r\nBcc: victim@other.org", "\nBcc: victim@other.org",
              "\rBcc: victim@other.org", "\u2028Bcc: victim@other.org",
              "\x85Bcc: victim@other.org", "\r\n\r\n<html>body</html>"]


def test_web_compose_header_injection(server: PostelServer) -> None:
    with client(server) as http:
        token = api_logon(http, ALICE)
        headers = {"X-CSRF-Token": token}
        for n, evil in enumerate(INJECTIONS):
            marker = f"inject-{n}-marker"
            upload = http.post("/api/v1/mail/uploads", headers=headers, content=b"data",
                               params={"name": f"a{evil}.txt", "type": f"text/plain{evil}",
                                       "last": "1"})
            assert upload.status_code in (201, 400), upload.text
            attachments = [{"upload": upload.json()["upload"]}] if upload.status_code == 201 \
                else []
            answer = http.post("/api/v1/mail/send", headers=headers, json={
                "to": [BOB], "subject": f"{marker}{evil}", "text": "x",
                "in_reply_to": f"<a@b>{evil}", "references": [f"<a@b>{evil}"],
                "attachments": attachments})
            assert answer.status_code == 200, answer.text
            raw = sent_bytes(server, marker)
            assert "bcc" not in header_names(raw), raw
            parsed = message_from_bytes(raw, policy=default)
            assert parsed["Bcc"] is None and "victim" not in str(parsed["To"])
            for part in parsed.walk():
                assert "victim" not in str(part.get("Content-Type", "")).split(";")[0]
            # To with a line break is not an address: refused, nothing sent.
            answer = http.post("/api/v1/mail/send", headers=headers, json={
                "to": [f"{BOB}{evil}"], "subject": "x", "text": "x"})
            assert answer.status_code == 400, (evil, answer.text)
    assert queued(server) == []
    assert not any("bcc" in header_names(m) for m in server.inbox(BOB))


def test_reset_form_address_injection(server: PostelServer) -> None:
    with client(server) as http:
        for evil in (f"{ALICE}\r\nBcc: victim@other.org", f"{ALICE}\nCc: victim@other.org",
                     f"victim@other.org\r\n{ALICE}", f"{ALICE}%victim@other.org",
                     f"{ALICE},victim@other.org"):
            answer = ask_reset(http, evil)
            assert answer.status_code == 200, answer.text
    for item in server.store.queue.list_all():
        assert item.recipients in (["alice@backup.other.org"],), item.recipients
        body = server.store.blobs.path(item.blob_sha256).read_bytes()
        assert b"victim" not in body



def test_a_prober_is_cut_off_after_max_junk_commands(server: PostelServer) -> None:
    """smtp.max_junk_commands (default 50): commands outside a transaction, then 421."""
    limit = server.config.smtp.max_junk_commands
    conn = RawSmtp(server.port("smtp"))
    conn.send(b"VRFY postmaster\r\n" * (limit + 5))
    codes = []
    try:
        while True:
            codes.append(conn.reply()[0])
    except ConnectionError:
        pass
    conn.close()
    assert codes[limit] == 421 and len(codes) == limit + 1, codes
    assert 421 not in codes[:limit]
