"""Sending a DSN to an envelope sender: into its INBOX when the sender is local, queued
with the null reverse-path (RFC 5321 4.5.5, never bounced itself) when it is not. Used by
the queue for failures, delays and relays, and by local delivery for success DSNs."""

from __future__ import annotations

import logging
import secrets

from postel.mail.address import AddressError, parse_email
from postel.mail.mime import parse_message_file
from postel.store.api import Store

log = logging.getLogger("postel.queue")

RETURN_PATH = b"Return-Path: <>\r\n"


def send_dsn(store: Store, *, sender: str, data: bytes, about: str) -> str | None:
    """Blocking. Deliver or queue the DSN `data` to `sender`; `about` is the queue id of
    the message it reports on (for the log). Returns the DSN's queue id, or None when
    the sender cannot be reached."""
    try:
        address = parse_email(sender)
    except AddressError:
        log.warning("queue: cannot send a DSN to a malformed sender",
                    extra={"fields": {"queue_id": about, "from": sender}})
        return None
    local_accounts: list[int] = []
    remote: list[str] = [sender]
    if store.directory.is_local_domain(address.domain):
        resolved = store.directory.resolve(address.key)
        if resolved is None:
            log.warning("queue: the local sender of a DSN does not exist",
                        extra={"fields": {"queue_id": about, "from": sender}})
            return None
        accounts, remote = resolved
        local_accounts = [a.id for a in accounts]
    blob = store.blobs.put(RETURN_PATH + data)
    queue_id = secrets.token_hex(6).upper()
    if local_accounts:
        parsed = parse_message_file(store.blobs.path(blob.sha256))
        store.mail.deliver(blob, parsed, [(a, "INBOX") for a in local_accounts])
    if remote:
        store.queue.enqueue(
            queue_id=queue_id, blob=blob, body_offset=len(RETURN_PATH), mail_from="",
            recipients=remote, account_id=None,
            smtputf8=not all(r.isascii() for r in remote), body_8bit=True,
        )
    return queue_id
