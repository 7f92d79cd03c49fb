"""The LISTEN/NOTIFY payload of store/sql/pgbus.py: every change kind survives the trip,
and a batch too big for NOTIFY becomes one wake-up per account that keeps every sign-out."""

from __future__ import annotations

import json

from postel.store.model import (
    CredentialsChanged,
    Flags,
    FlagsChanged,
    MailboxChanged,
    MessageAdded,
    MessagesExpunged,
    MetadataChanged,
    QueueChanged,
)
from postel.store.sql.pgbus import MAX_PAYLOAD, decode, encode


def test_every_change_kind_round_trips() -> None:
    changes = [
        MessageAdded(1, 2, 3, 4),
        FlagsChanged(1, 2, 3, 5, Flags(seen=True, draft=True, keywords=("$Label1", "x"))),
        MessagesExpunged(1, 2, (3, 7), 6),
        MailboxChanged(9, 10),
        CredentialsChanged(9),
        MetadataChanged(9, 10),
        MetadataChanged(None, None),
    ]
    payload = encode("me", [*changes, QueueChanged()])
    assert payload is not None
    assert decode(payload) == ("me", [*changes, QueueChanged()])


def test_an_empty_batch_sends_nothing() -> None:
    assert encode("me", []) is None


def test_a_huge_batch_becomes_wake_ups_and_keeps_sign_outs() -> None:
    changes = [MessagesExpunged(1, 2, tuple(range(1, 5000)), 9), CredentialsChanged(3)]
    payload = encode("me", changes)
    assert payload is not None and len(payload) <= MAX_PAYLOAD
    origin, decoded = decode(payload)
    assert origin == "me"
    assert {c.account_id for c in decoded if isinstance(c, MessagesExpunged)} == {1, 3}
    assert CredentialsChanged(3) in decoded
    assert json.loads(payload)["w"] == [1, 3]
