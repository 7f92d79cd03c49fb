"""What the webmail tests share: mail in over SMTP, mail out over IMAP."""

from __future__ import annotations

import email
import imaplib
import smtplib
from email.message import Message
from email.policy import default

from tests.harness import PASSWORD, PostelServer


def smtp_send(server: PostelServer, raw: bytes, to: str = "alice@example.test") -> None:
    """Deliver over port 25 (loopback is a trusted network: no SPF/DKIM checks)."""
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
        smtp.sendmail("sender@elsewhere.test", [to], raw)


def imap(server: PostelServer, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    client.starttls(ssl_context=server.client_tls())
    client.login(user, PASSWORD)
    return client


def imap_messages(server: PostelServer, user: str, mailbox: str) -> list[Message]:
    """Every message of a mailbox as an IMAP client reads it, in UID order."""
    with imap(server, user) as client:
        client.select(mailbox)
        _, data = client.uid("SEARCH", "ALL")
        out = []
        for uid in data[0].split():
            _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            assert isinstance(fetched[0], tuple)
            out.append(email.message_from_bytes(fetched[0][1], policy=default))
        return out
