"""Recipients to places: local accounts get the message in INBOX, remote ones are queued.

One durable transaction covers every local recipient, so a 250 means every local copy is
committed; queued rows commit in a second transaction before the 250 too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from postel.mail.mime import ParsedMessage
from postel.queue.dsn import RecipientStatus, build_dsn
from postel.queue.notify import send_dsn
from postel.store.api import Store
from postel.store.model import Account, BlobRef, DeliveredMessage, DsnRequest, OutboundCopy

log = logging.getLogger("postel.delivery")


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
    local_recipients: Sequence[str] = ()  # the RCPT addresses that reached `local`
    hostname: str = ""  # our name, as the Reporting-MTA of success DSNs
    requiretls: bool = False  # RFC 8689: queued copies travel only over verified TLS
    body_binary: bool = False  # RFC 3030 BODY=BINARYMIME: queued copies need it next hop


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
    queued = None
    if envelope.remote:
        queued = OutboundCopy(
            queue_id=envelope.queue_id,
            body_offset=return_path_length,
            mail_from=envelope.mail_from,
            recipients=tuple(envelope.remote),
            account_id=envelope.account_id,
            smtputf8=envelope.smtputf8,
            body_8bit=envelope.body_8bit,
            dsn=envelope.dsn,
            requiretls=envelope.requiretls,
            body_binary=envelope.body_binary,
        )
    if envelope.local:
        # Local copies and outbound rows in one transaction: a crash between the two would
        # leave a message stored here and never sent there (and a retry would store it
        # twice here).
        targets = [(account.id, envelope.mailbox) for account in envelope.local]
        delivered = store.mail.deliver(blob, parsed, targets, queued=queued)
    elif queued is not None:
        store.queue.enqueue(
            queue_id=queued.queue_id, blob=blob, body_offset=queued.body_offset,
            mail_from=queued.mail_from, recipients=queued.recipients,
            account_id=queued.account_id, smtputf8=queued.smtputf8,
            body_8bit=queued.body_8bit, dsn=queued.dsn, requiretls=queued.requiretls,
            body_binary=queued.body_binary,
        )
    if envelope.local and envelope.dsn is not None:
        _report_success(store, blob, envelope, return_path_length)
    return delivered


def _report_success(
    store: Store, blob: BlobRef, envelope: Envelope, return_path_length: int
) -> None:
    """RFC 3461 4.1, RFC 3464 2.3.3: NOTIFY=SUCCESS recipients delivered here get a
    "delivered" DSN. The message is committed already, so a failure here is only logged."""
    dsn = envelope.dsn
    assert dsn is not None
    wanted = [a for a in envelope.local_recipients if dsn.wants(a, "SUCCESS")]
    if not wanted or not envelope.mail_from:
        return
    statuses = [
        RecipientStatus(a, "2.0.0", "delivered to the mailbox",
                        original_recipient=dsn.orcpt.get(a, ""))
        for a in wanted
    ]
    try:
        data = build_dsn(
            hostname=envelope.hostname, sender=envelope.mail_from, queue_id=envelope.queue_id,
            arrival=datetime.now(UTC), statuses=statuses,
            original=store.blobs.path(blob.sha256), original_offset=return_path_length,
            envid=dsn.envid, success="delivered",
        )
        send_dsn(store, sender=envelope.mail_from, data=data, about=envelope.queue_id)
    except Exception:
        log.exception("sending a success DSN failed",
                      extra={"fields": {"queue_id": envelope.queue_id}})
