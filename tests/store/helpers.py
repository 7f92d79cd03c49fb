"""Small builders the store contract tests share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from postel.mail.mime import ParsedMessage, parse_message_bytes
from postel.store.model import NO_FLAGS, Account, BlobRef, Flags
from postel.store.sql.store import SqlStore

PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def message(subject: str = "x", body: str = "body") -> tuple[bytes, ParsedMessage]:
    raw = f"From: a@b\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
    return raw, parse_message_bytes(raw)


def put_message(
    store: SqlStore, subject: str = "x", body: str = "body"
) -> tuple[BlobRef, ParsedMessage]:
    raw, parsed = message(subject, body)
    return store.blobs.put(raw), parsed


def add_user(store: SqlStore, email: str, **kwargs: Any) -> Account:
    """Create an account, and its domain when it is not hosted yet."""
    domain = email.rpartition("@")[2]
    if store.directory.get_domain(domain) is None:
        store.directory.add_domain(domain)
    return store.directory.add_account(email, PASSWORD_HASH, **kwargs)


def mailbox_id(store: SqlStore, account: Account, name: str = "INBOX") -> int:
    box = store.mail.get_mailbox(account.id, name)
    assert box is not None, f"{account.email} has no mailbox {name}"
    return box.id


def deliver_one(
    store: SqlStore,
    account: Account,
    name: str = "INBOX",
    *,
    body: str = "body",
    flags: Flags = NO_FLAGS,
    internal_date: datetime | None = None,
) -> int:
    """Deliver a message into one mailbox; returns its UID."""
    blob, parsed = put_message(store, body=body)
    (delivered,) = store.mail.deliver(
        blob, parsed, [(account.id, name)], flags=flags, internal_date=internal_date
    )
    return delivered.uid
