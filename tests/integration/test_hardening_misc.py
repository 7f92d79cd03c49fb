"""The smaller findings of issue 15, item 10: deep JSON, tracebacks anyone can cause,
the login-limit race and the quota without SIZE=."""

from __future__ import annotations

import asyncio
import imaplib
import json
import smtplib
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from postel.auth.limits import FailureLimiter
from postel.auth.service import Authenticator, LoginResult
from postel.mail.mime import parse_message_bytes
from tests.harness import PASSWORD, PostelServer
from tests.integration.hardening_helpers import send_until
from tests.web.helpers import client, start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("misc"), extra_config=(
        "[imap]\nallow_plaintext_auth_on_loopback = true\n"
    ))
    server.add_user("alice@example.test")
    server.add_user("full@example.test", quota_bytes=12 * 1024)
    start(server)
    yield server
    server.close()


def _log_lines(server: PostelServer) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.log_path.read_text().splitlines()
            if line.startswith("{")]


def _wait_for_log(server: PostelServer, text: str) -> None:
    """Until the server has logged `text` (polling a condition, not waiting a time)."""
    deadline = time.monotonic() + 30
    while text not in server.log_path.read_text():
        assert time.monotonic() < deadline, f"never logged {text!r}"
        time.sleep(0.02)


def _errors(server: PostelServer) -> list[dict[str, object]]:
    return [line for line in _log_lines(server) if line["level"] in ("error", "critical")]


def test_deeply_nested_json_is_a_400(server: PostelServer) -> None:
    with client(server) as http:
        token = http.get("/api/v1/session").json()["csrf_token"]
        answer = http.post("/api/v1/session", content=b"[" * 100_000,
                           headers={"X-CSRF-Token": token,
                                    "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["error"]
    assert "RecursionError" not in server.log_path.read_text()


def test_a_failed_starttls_handshake_logs_no_traceback(server: PostelServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30) as sock:
        sock.recv(4096)
        sock.sendall(b"a STARTTLS\r\n")
        assert sock.recv(4096).startswith(b"a OK")
        sock.sendall(b"this is not a ClientHello\r\n" * 10)
        with pytest.raises(OSError):
            while sock.recv(4096):
                pass
            raise ConnectionError("closed")
    _wait_for_log(server, "connection ended")
    assert _errors(server) == []


def test_a_reset_during_fetch_logs_no_traceback(server: PostelServer) -> None:
    account = server.store.directory.get_account("alice@example.test")
    assert account is not None
    message = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 8000
    blob = server.store.blobs.put(message)
    server.store.mail.deliver(blob, parse_message_bytes(message), [(account.id, "INBOX")])
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.recv(4096)
        send_until(sock, f'a LOGIN alice@example.test "{PASSWORD}"\r\nb SELECT INBOX\r\n'
                   .encode(), b"b OK")
        sock.sendall(b"c FETCH 1:* BODY[]\r\n")
        sock.recv(4096)
        # Close with RST while the server is still writing the message.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    imap.login("alice@example.test", PASSWORD)
    imap.logout()
    _wait_for_log(server, "connection ended")
    assert _errors(server) == []


def test_concurrent_logins_run_no_more_checks_than_the_limit(server: PostelServer) -> None:
    authenticator = Authenticator(server.store, FailureLimiter(0, 5, 900.0))

    async def attempts() -> list[LoginResult]:
        # Thirty at once: each is counted when it is let through, before any reaches the
        # hash check. A stranger gets the 5 failures that lock the account, then (slowed
        # down) the locked account's budget of 5 more checks, and no more.
        return list(await asyncio.gather(*(
            authenticator.authenticate("alice@example.test", "wrong password", "192.0.2.9")
            for _ in range(30))))

    results = asyncio.run(attempts())
    checked = [result for result in results if not result.throttled]
    assert len(results) == 30 and len(checked) == 10


def test_the_quota_is_checked_at_the_end_of_data_without_size(server: PostelServer) -> None:
    message = b"Subject: fill\r\n\r\n" + b"q" * 8000 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
        smtp.ehlo()
        for expected in (250, 552):
            assert smtp.mail("sender@remote.test")[0] == 250  # no SIZE= parameter
            assert smtp.rcpt("full@example.test")[0] == 250
            code, text = smtp.data(message)
            assert code == expected, text
        assert b"5.2.2" in text
    assert len(server.inbox("full@example.test")) == 1


def test_codec_abuse_in_encoded_words_is_stored(server: PostelServer) -> None:
    # Issue 15 item 4: this was 451 on 25 and NO [SERVERBUG] on APPEND.
    message = (b"Subject: =?unicode_escape?q?=5Cud800?= =?punycode?q?9ca" + b"a" * 100_000
               + b"?=\r\nFrom: =?unicode_escape?q?=5Cud800?= <x@remote.test>\r\n\r\nhi\r\n")
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
        assert smtp.sendmail("x@remote.test", ["alice@example.test"], message) == {}
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    try:
        imap.login("alice@example.test", PASSWORD)
        assert imap.append("INBOX", None, None, message)[0] == "OK"
        imap.select("INBOX")
        assert imap.fetch("1:*", "(ENVELOPE)")[0] == "OK"
    finally:
        imap.logout()
