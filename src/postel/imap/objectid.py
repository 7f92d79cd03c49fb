"""OBJECTID (RFC 8474): the MAILBOXID, EMAILID and THREADID of mailboxes and messages,
derived from what is stored, so no column and no migration is needed.

- MAILBOXID is the mailbox row's id with its UIDVALIDITY: both survive RENAME (RFC 8474
  4.2: the id MUST NOT change), and a re-used row id comes with a new UIDVALIDITY (the
  counter only grows), so an id is never handed to a second mailbox (RFC 8474 4).
  RENAME INBOX moves the messages to a new mailbox, which gets a new MAILBOXID while
  INBOX keeps its own (RFC 8474 4.2).
- EMAILID is per content: the body's SHA-256. COPY and MOVE keep the body, so the copy
  has the same EMAILID (RFC 8474 5.1); two deliveries never share a body in practice
  (each gets its own Received: line), so they get different ones.
- THREADID hashes the thread's root Message-ID: the first entry of References, else
  In-Reply-To, else the message's own Message-ID (RFC 8474 5.2 leaves the algorithm to
  the server). A message with none of them is a thread of its own, named by its body.

Every id matches objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474 6) and starts
with a letter, as RFC 8474 3 recommends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from postel.store.model import Mailbox

_HEX_DIGITS = 24  # 96 bits: enough that no two messages of one account collide

# The stored columns EMAILID and THREADID are computed from.
EMAILID_COLUMNS = frozenset({"blob_sha256"})
THREADID_COLUMNS = frozenset({"blob_sha256", "message_id", "in_reply_to", "references"})


def mailbox_id(box: Mailbox) -> str:
    return f"F{box.id}-{box.uidvalidity}"


def email_id(row: Mapping[str, Any]) -> str:
    return "M" + str(row["blob_sha256"])[:_HEX_DIGITS]


def thread_id(row: Mapping[str, Any]) -> str:
    references = str(row.get("references") or "").split()
    root = (references[0] if references else None) or row.get("in_reply_to") or row.get(
        "message_id")
    if not root:
        return "T" + str(row["blob_sha256"])[:_HEX_DIGITS]
    digest = hashlib.sha256(str(root).strip().lower().encode("utf-8", "replace"))
    return "T" + digest.hexdigest()[:_HEX_DIGITS]
