"""Trace headers: Return-Path and Received (RFC 5321 4.4), the lines we put on top of
every message we accept. Pure functions of the envelope, so they are tested without a
session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from postel.mail.address import Address


def return_path(sender: Address | None) -> bytes:
    """RFC 5321 4.4: only the final delivery adds Return-Path (the null path is "<>")."""
    return f"Return-Path: <{sender if sender is not None else ''}>\r\n".encode()


def with_protocol(*, extended: bool, smtputf8: bool, tls: bool, authenticated: bool) -> str:
    """The "with" of Received: SMTP or ESMTP, UTF8SMTP under SMTPUTF8 (RFC 6531 3.7.3),
    then "S" for TLS and "A" for an authenticated client (RFC 3848 2)."""
    protocol = "ESMTP" if extended else "SMTP"
    if smtputf8:
        protocol = "UTF8SMTP"
    if tls:
        protocol += "S"
    if authenticated:
        protocol += "A"
    return protocol


@dataclass(frozen=True)
class Received:
    """One Received header (RFC 5321 4.4 Time-stamp-line)."""

    helo: str | None  # what the client said in EHLO/HELO
    peer_ip: str
    hostname: str  # ours
    protocol: str  # from with_protocol()
    queue_id: str
    recipients: tuple[str, ...]
    when: datetime

    def to_bytes(self) -> bytes:
        # "for" names the recipient only when there is one: with several it would tell
        # each of them who else got the message.
        for_clause = f"\r\n\tfor <{self.recipients[0]}>" if len(self.recipients) == 1 else ""
        text = (
            f"Received: from {self.helo or 'unknown'} ([{self.peer_ip}])\r\n"
            f"\tby {self.hostname} (Postel) with {self.protocol}\r\n"
            f"\tid {self.queue_id}{for_clause};\r\n\t{format_datetime(self.when)}\r\n"
        )
        return text.encode("utf-8")
