"""What each SMTP listener allows, as one object per listener kind.

``MxPolicy`` (port 25) takes mail from the internet for local recipients only and offers
no AUTH; ``SubmissionPolicy`` (587 with STARTTLS, 465 with TLS) takes mail from its own
users only, after AUTH, for anyone. The session asks; each answer is a reply to send, or
None for "go on", so the listener kind is decided here and nowhere else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from postel.config import SmtpConfig
from postel.mail.address import Address
from postel.net import is_loopback
from postel.smtp import replies as r
from postel.smtp.replies import Reply
from postel.store.model import Account
from postel.submission import sender_allowed


class Listener(enum.Enum):
    MX = "smtp"  # port 25: mail from the internet for local users
    SUBMISSION = "submission"  # port 587: STARTTLS, then AUTH
    SUBMISSIONS = "submissions"  # port 465: implicit TLS, then AUTH


@dataclass(frozen=True)
class Client:
    """The other end, as far as policy cares."""

    ip: str
    tls: bool
    account: Account | None = None
    own_addresses: frozenset[str] = frozenset()  # lookup keys the account may send as


class ListenerPolicy(Protocol):
    listener: Listener

    def auth_refusal(self, client: Client) -> Reply | None:
        """AUTH is refused with this reply (and not offered in EHLO), or None."""

    def mail_refusal(self, client: Client) -> Reply | None:
        """Before anything else about MAIL: may this client send at all?"""

    def sender_refusal(self, client: Client, sender: Address | None) -> Reply | None:
        """May this client use this reverse-path?"""

    def remote_recipient(self, client: Client) -> Reply:
        """The answer to RCPT for a domain that is not ours: accept (relay) or refuse."""

    @property
    def checks_from_header(self) -> bool:
        """The From header must be one of the client's addresses too."""

    @property
    def checks_inbound(self) -> bool:
        """SPF, DKIM and DMARC are checked on the received message (mailauth.inbound)."""

    @property
    def offers_burl(self) -> bool:
        """BURL (RFC 4468): messages fetched from the store by URLAUTH URL; only where users
        authenticate, since the URL is checked against the user."""


class MxPolicy:
    """Port 25: anyone may send to our domains; nobody may relay (RFC 5321 3.6.2)."""

    listener = Listener.MX
    checks_from_header = False
    offers_burl = False

    def __init__(self, *, checks_inbound: bool) -> None:
        self.checks_inbound = checks_inbound

    def auth_refusal(self, client: Client) -> Reply | None:
        return Reply(503, "5.5.1", "AUTH is not offered on this port")

    def mail_refusal(self, client: Client) -> Reply | None:
        return None

    def sender_refusal(self, client: Client, sender: Address | None) -> Reply | None:
        return None

    def remote_recipient(self, client: Client) -> Reply:
        return r.RELAY_DENIED


class SubmissionPolicy:
    """Ports 587 and 465 (RFC 6409): authenticated users, their own addresses, any
    recipient. A password only travels over TLS (RFC 4954 4, RFC 8314), or in plain text
    from loopback when the operator allows it."""

    checks_from_header = True
    checks_inbound = False
    offers_burl = True  # RFC 4468 3: on submission, after AUTH

    def __init__(self, listener: Listener, config: SmtpConfig) -> None:
        self.listener = listener
        self.config = config

    def auth_refusal(self, client: Client) -> Reply | None:
        if client.tls:
            return None
        if self.config.allow_plaintext_auth_on_loopback and is_loopback(client.ip):
            return None
        return r.TLS_REQUIRED

    def mail_refusal(self, client: Client) -> Reply | None:
        if client.account is not None:
            return None
        return self.auth_refusal(client) or r.AUTH_REQUIRED  # RFC 6409 4.3, RFC 4954 6

    def sender_refusal(self, client: Client, sender: Address | None) -> Reply | None:
        # RFC 6409 8.1: the submission server may check the sender is the user's own.
        if not sender_allowed(client.own_addresses, sender):
            return Reply(553, "5.7.1", "you may only send as your own address or its aliases")
        return None

    def remote_recipient(self, client: Client) -> Reply:
        return r.RECIPIENT_OK if client.account is not None else r.RELAY_DENIED


def policy_for(listener: Listener, config: SmtpConfig, *, checks_inbound: bool
               ) -> ListenerPolicy:
    if listener is Listener.MX:
        return MxPolicy(checks_inbound=checks_inbound)
    return SubmissionPolicy(listener, config)
