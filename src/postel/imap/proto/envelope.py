"""The IMAP ENVELOPE (RFC 9051 7.5.2) as a typed value.

Built from the stored form (``mail.mime.StoredEnvelope``: the messages.envelope column and
the envelope of an embedded message/rfc822), which stays as it always was, so no migration
is needed; ``to_stored`` gives it back unchanged. ``proto/responses.py`` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postel.mail.mime import HeaderAddress, ParsedMessage, StoredEnvelope

Addresses = tuple[HeaderAddress, ...]


@dataclass(frozen=True)
class Envelope:
    """Every field as written in the header (RFC 2047 words not decoded). An absent or
    empty address header is () and written NIL; Sender and Reply-To already default to
    From (RFC 9051 7.5.2) in the stored form."""

    date: str | None
    subject: str | None
    from_: Addresses
    sender: Addresses
    reply_to: Addresses
    to: Addresses
    cc: Addresses
    bcc: Addresses
    in_reply_to: str | None
    message_id: str | None

    @classmethod
    def from_stored(cls, stored: StoredEnvelope) -> Envelope:
        # A short list (hand-written rows, older test data) reads as NIL for the rest.
        padded = [*stored[:10], *[None] * (10 - len(stored))]
        date, subject, *lists, in_reply_to, message_id = padded
        from_, sender, reply_to, to, cc, bcc = (_addresses(x) for x in lists)
        return cls(date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to,
                   message_id)

    @classmethod
    def of(cls, parsed: ParsedMessage) -> Envelope:
        return cls.from_stored(parsed.envelope)

    def to_stored(self) -> StoredEnvelope:
        lists = (self.from_, self.sender, self.reply_to, self.to, self.cc, self.bcc)
        return [self.date, self.subject, *(_stored(x) for x in lists), self.in_reply_to,
                self.message_id]


def _addresses(stored: Any) -> Addresses:
    return tuple(HeaderAddress.from_stored(item) for item in stored or ())


def _stored(addresses: Addresses) -> list[list[str | None]] | None:
    return [a.to_stored() for a in addresses] or None
