"""Raw-socket helpers for SMTP tests that need exact bytes on the wire."""

from __future__ import annotations

import socket
import ssl


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
