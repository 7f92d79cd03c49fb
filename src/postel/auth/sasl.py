"""Sans-IO SASL exchanges shared by SMTP, IMAP and POP3: PLAIN (RFC 4616) and LOGIN.

The protocol layer hands over base64 lines from the client and gets back either a
challenge to send, the credentials to check, or an error; it never sees mechanism details.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")


@dataclass(frozen=True)
class Challenge:
    data: bytes  # raw bytes; the protocol base64-encodes them


@dataclass(frozen=True)
class Credentials:
    authzid: str
    username: str
    password: str


@dataclass(frozen=True)
class Failed:
    reason: str


Step = Challenge | Credentials | Failed


def _decode(line: str) -> bytes | None:
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


class SaslExchange:
    """One AUTH exchange. Call start() with the initial response (or None), then step()."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism.upper()
        if self.mechanism not in MECHANISMS:
            raise ValueError(mechanism)
        self._username: str | None = None

    def start(self, initial: str | None) -> Step:
        if self.mechanism == "PLAIN":
            # RFC 4954 4: "=" is an empty initial response; none means "send a challenge".
            if initial is None:
                return Challenge(b"")
            return self._plain("" if initial == "=" else initial)
        if initial is not None and initial != "=":
            return self._login_username(initial)
        return Challenge(b"Username:")

    def step(self, line: str) -> Step:
        if line.strip() == "*":
            return Failed("authentication cancelled")
        if self.mechanism == "PLAIN":
            return self._plain(line)
        if self._username is None:
            return self._login_username(line)
        raw = _decode(line)
        if raw is None:
            return Failed("invalid base64")
        try:
            password = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Failed("password is not UTF-8")
        return Credentials("", self._username, password)

    def _login_username(self, line: str) -> Step:
        raw = _decode(line)
        if raw is None:
            return Failed("invalid base64")
        try:
            self._username = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Failed("user name is not UTF-8")
        return Challenge(b"Password:")

    def _plain(self, line: str) -> Step:
        raw = _decode(line)
        if raw is None:
            return Failed("invalid base64")
        parts = raw.split(b"\0")
        if len(parts) != 3:
            return Failed("malformed PLAIN response")
        try:
            authzid, username, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return Failed("credentials are not UTF-8")
        if not username:
            return Failed("empty user name")
        return Credentials(authzid, username, password)
