"""Recipients to places: local accounts get the message in INBOX, remote ones are queued.

One durable transaction covers every local recipient, so a 250 means every local copy is
committed; queued rows commit in a second transaction before the 250 too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from postel.mail.mime import ParsedMessage
from postel.store.api import Store
from postel.store.model import Account, BlobRef, DeliveredMessage, DsnRequest


@dataclass(frozen=True)
class Envelope:
    queue_id: str
    mail_from: str  # "" for the null reverse-path
    local: Sequence[Account]
    remote: Sequence[str]
    account_id: int | None  # the authenticated submitter, if any
    smtputf8: bool
    body_8bit: bool
    mailbox: str = "INBOX"  # where local copies go ("Junk" when quarantined)
    dsn: DsnRequest | None = None  # RFC 3461 parameters, carried with queued copies


def deliver(
    store: Store,
    blob: BlobRef,
    parsed: ParsedMessage,
    envelope: Envelope,
    *,
    return_path_length: int,
) -> list[DeliveredMessage]:
    """Blocking: store locally and queue remotely. The blob must already be durable.

    `return_path_length` bytes at the start of the blob are the Return-Path header added
    for final delivery (RFC 5321 4.4); queued copies skip them, as a relay must not add it.
    """
    delivered: list[DeliveredMessage] = []
    if envelope.local:
        targets = [(account.id, envelope.mailbox) for account in envelope.local]
        delivered = store.mail.deliver(blob, parsed, targets)
    if envelope.remote:
        store.queue.enqueue(
            queue_id=envelope.queue_id,
            blob=blob,
            body_offset=return_path_length,
            mail_from=envelope.mail_from,
            recipients=envelope.remote,
            account_id=envelope.account_id,
            smtputf8=envelope.smtputf8,
            body_8bit=envelope.body_8bit,
            dsn=envelope.dsn,
        )
    return delivered
