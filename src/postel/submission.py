"""The rules of message submission, once, for every way a user sends: SMTP on 587/465
(smtp/session.py applies them command by command) and the webmail (submit_message).

* The sender and every From address must be the user's own address or an alias that
  points at it (store.directory.addresses_of); a catch-all does not count.
* A local recipient must resolve to accounts (aliases, catch-all) with room for the
  message; remote recipients go to the outbound queue, which signs with DKIM.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from postel.delivery import Envelope, deliver
from postel.mail.address import Address, AddressError, parse_email
from postel.mail.mime import ParsedMessage, parse_message_bytes
from postel.store.api import Store
from postel.store.model import Account, BlobRef


def sender_allowed(own_addresses: Set[str], sender: Address | None) -> bool:
    """MAIL FROM on submission: only the user's own addresses (no null sender)."""
    return sender is not None and sender.key in own_addresses


def foreign_from(parsed: ParsedMessage, own_addresses: set[str]) -> str | None:
    """The first From address that is not one of the user's, or None when all are."""
    for address in parsed.from_:
        mailbox, host = address.mailbox, address.host
        if mailbox is None or host is None:
            continue  # group syntax markers
        try:
            key = parse_email(f"{mailbox}@{host}").key
        except AddressError:
            key = ""
        if key not in own_addresses:
            return f"{mailbox}@{host}"
    return None


class Refusal(enum.Enum):
    UNKNOWN_USER = "no such user here"
    UNAVAILABLE = "mailbox unavailable"
    FULL = "mailbox full"


def route_local(store: Store, key: str, size: int) -> tuple[list[Account], list[str]] | \
        Refusal:
    """Blocking: the accounts a local address delivers to and the remote addresses its
    forwarding aliases add, or why it cannot take a message of `size` bytes."""
    resolved = store.directory.resolve(key)
    if resolved is None:
        return Refusal.UNKNOWN_USER
    accounts, remote = resolved
    if not accounts and not remote:
        return Refusal.UNAVAILABLE
    for account in accounts:
        if account.quota_bytes and store.directory.account_usage(account.id) + size > \
                account.quota_bytes:
            return Refusal.FULL
    return accounts, remote


class SubmissionRefused(Exception):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class Submitted:
    queue_id: str
    local: list[str]
    remote: list[str]


def submit_message(
    store: Store,
    hostname: str,
    account: Account,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    *,
    client: str,
    max_size: int,
) -> Submitted:
    """Blocking: submit a whole message as `account`, under the rules of port 587.

    `client` names where it came from for the Received header (e.g. "webmail [ip]").
    Local copies are committed and remote ones queued before this returns.
    """
    own = store.directory.addresses_of(account)
    try:
        mail_from = parse_email(sender)
    except AddressError:
        raise SubmissionRefused("The sender is not a valid address.", "from") from None
    if not sender_allowed(own, mail_from):
        raise SubmissionRefused("You may only send as your own address or its aliases.",
                                "from")
    if len(message) > max_size:
        raise SubmissionRefused(f"The message is larger than {max_size} bytes.")
    local: dict[int, Account] = {}
    remote: list[str] = []
    for text in recipients:
        try:
            rcpt = parse_email(text)
        except AddressError:
            raise SubmissionRefused(f"{text} is not a valid address.", "to") from None
        if not store.directory.is_local_domain(rcpt.domain):
            remote.append(str(rcpt))
            continue
        routed = route_local(store, rcpt.key, len(message))
        if isinstance(routed, Refusal):
            raise SubmissionRefused(f"{rcpt}: {routed.value}.", "to")
        local.update((a.id, a) for a in routed[0])
        remote.extend(a for a in routed[1] if a not in remote)
    if not local and not remote:
        raise SubmissionRefused("Add at least one recipient.", "to")
    queue_id = secrets.token_hex(6).upper()
    # RFC 5321 4.4: Return-Path only for final delivery (queued copies skip it).
    return_path = f"Return-Path: <{mail_from}>\r\n".encode() if local else b""
    received = (f"Received: from {client}\r\n\tby {hostname} (Postel) with HTTPS\r\n"
                f"\tid {queue_id};\r\n\t{format_datetime(datetime.now(UTC))}\r\n").encode()
    stored = return_path + received + message
    parsed = parse_message_bytes(stored)
    foreign = foreign_from(parsed, own)
    if foreign is not None:
        raise SubmissionRefused(f"From: {foreign} is not one of your addresses.", "from")
    blob: BlobRef = store.blobs.put(stored)
    all_text = " ".join([str(mail_from), *remote, *(a.email for a in local.values())])
    deliver(store, blob, parsed, Envelope(
        queue_id=queue_id, mail_from=str(mail_from), local=list(local.values()),
        remote=remote, account_id=account.id, smtputf8=not all_text.isascii(),
        body_8bit=not message.isascii(),
    ), return_path_length=len(return_path))
    return Submitted(queue_id, [a.email for a in local.values()], remote)
