"""Raw-socket helpers for SMTP tests that need exact bytes on the wire."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import ssl
from email.message import EmailMessage, Message

from tests.harness import PASSWORD, PostelServer


class RawSmtp:
    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock: socket.socket = tls.wrap_socket(sock) if tls else sock
        self.buffer = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: code and the joined text."""
        texts = []
        while True:
            line = self.line()
            texts.append(line[4:].decode())
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(texts)

    def command(self, text: str) -> tuple[int, str]:
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """True when the server has closed the connection (reads EOF)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, TimeoutError, OSError):
            return True

    def close(self) -> None:
        self.sock.close()


def connect(server: PostelServer, port_name: str, *, login: str | None = None) -> smtplib.SMTP:
    """smtplib on 25 ("smtp"), 587 ("submission", after STARTTLS) or 465 ("submissions"),
    after EHLO, logged in as `login` when given."""
    if port_name == "submissions":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            "127.0.0.1", server.port(port_name), context=server.client_tls()
        )
    else:
        client = smtplib.SMTP("127.0.0.1", server.port(port_name))
    client.ehlo()
    if port_name == "submission":
        client.starttls(context=server.client_tls())
        client.ehlo()
    if login is not None:
        client.login(login, PASSWORD)
    return client


def dsn_report(raw: bytes) -> tuple[EmailMessage, list[Message]]:
    """A stored DSN and its delivery-status groups (per message first, then per recipient)."""
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(dsn, EmailMessage)
    assert dsn.get_content_type() == "multipart/report"
    status = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    groups = status.get_payload()
    assert isinstance(groups, list)
    return dsn, groups
