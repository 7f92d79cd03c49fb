"""Read-only commands skip the store when the change bus is quiet; NOOP never does.

A message stored by another process (here: the test's own store handle, as the CLI or a
second host would) sends no hint to the server's bus, so only an explicit poll finds it."""

from __future__ import annotations

import imaplib
import smtplib

from postel.mail.mime import parse_message_bytes
from tests.harness import PASSWORD, PostelServer

MESSAGE = b"From: a@remote.test\r\nSubject: from another process\r\n\r\nhi\r\n"


def store_elsewhere(server: PostelServer) -> None:
    account = server.store.directory.get_account("alice@example.test")
    assert account is not None
    server.store.mail.deliver(
        server.store.blobs.put(MESSAGE), parse_message_bytes(MESSAGE), [(account.id, "INBOX")]
    )


def login(server: PostelServer) -> tuple[imaplib.IMAP4_SSL, int]:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.client_tls())
    client.login("alice@example.test", PASSWORD)
    _, data = client.select("INBOX")
    client.response("EXISTS")  # forget the EXISTS of the SELECT
    return client, int(data[0] or 0)


def test_noop_finds_a_message_stored_without_a_hint(postel: PostelServer) -> None:
    client, before = login(postel)
    store_elsewhere(postel)
    client.noop()
    assert client.response("EXISTS") == ("EXISTS", [str(before + 1).encode()])
    _, fetched = client.fetch(str(before + 1), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"from another process" in fetched[0][1]
    client.logout()


def test_a_delivery_in_this_process_is_reported_by_the_next_fetch(postel: PostelServer) -> None:
    client, before = login(postel)
    with smtplib.SMTP("127.0.0.1", postel.port("smtp")) as smtp:
        smtp.sendmail("a@remote.test", ["alice@example.test"], MESSAGE)
    # FETCH skips the store only while the bus is quiet; the delivery's hint makes it look.
    client.fetch("1", "(FLAGS)")
    assert client.response("EXISTS") == ("EXISTS", [str(before + 1).encode()])
    client.logout()
