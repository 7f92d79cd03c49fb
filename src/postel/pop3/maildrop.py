"""The POP3 maildrop: the INBOX as it was at login, deletion marks, and the login lock.

RFC 1939 is a snapshot protocol: message numbers are fixed for the whole session, DELE only
marks, RSET unmarks, and the marked messages are removed in the UPDATE state after QUIT
(RFC 1939 6). Messages delivered during a session appear in the next one. Nothing here
does I/O except ``load_maildrop`` (SQL and blob reads; run it in a worker thread).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from postel.pop3.transfer import file_chunks, transfer_size
from postel.store.api import Store
from postel.store.bus import LocalLocks, Locks

log = logging.getLogger("postel.pop3")

# Transfer sizes remembered per blob. Blobs are content-addressed and never change, so an
# entry never goes stale; 100k entries cost a few MB and cover large maildrops.
SIZE_CACHE_ENTRIES = 100_000


@dataclass
class MaildropMessage:
    uid: int
    blob_sha256: str
    size: int  # octets RETR delivers (transfer.transfer_size), what LIST and STAT report
    deleted: bool = False


class Maildrop:
    def __init__(self, mailbox_id: int, uidvalidity: int, messages: list[MaildropMessage]):
        self.mailbox_id = mailbox_id
        self.uidvalidity = uidvalidity
        self.messages = messages

    def get(self, number: int) -> MaildropMessage | str:
        """The message with this number, or the text of the -ERR to answer."""
        if not 1 <= number <= len(self.messages):
            return f"no such message, only {len(self.messages)} in maildrop"
        message = self.messages[number - 1]
        if message.deleted:
            # RFC 1939 5: a message marked as deleted may not be referred to again.
            return f"message {number} already deleted"
        return message

    def live(self) -> list[tuple[int, MaildropMessage]]:
        """(number, message) for every message not marked as deleted."""
        return [(n, m) for n, m in enumerate(self.messages, 1) if not m.deleted]

    def stat(self) -> tuple[int, int]:
        live = self.live()
        return len(live), sum(m.size for _, m in live)

    def unique_id(self, message: MaildropMessage) -> str:
        # RFC 1939 7 UIDL: 1 to 70 characters in 0x21..0x7E, never reused for another
        # message. UIDVALIDITY.UID is exactly what IMAP promises never to reuse
        # (RFC 9051 2.3.1.1), so a client that leaves mail on the server never downloads
        # a message twice, across sessions, restarts and expunges by other clients.
        return f"{self.uidvalidity}.{message.uid}"

    def reset(self) -> None:
        for message in self.messages:
            message.deleted = False

    def marked_uids(self) -> list[int]:
        return [m.uid for m in self.messages if m.deleted]


class TransferSizes:
    """A bounded, thread-safe cache of transfer sizes by blob name."""

    def __init__(self, entries: int = SIZE_CACHE_ENTRIES) -> None:
        self.entries = entries
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str) -> int | None:
        with self._lock:
            size = self._sizes.get(sha256)
            if size is not None:
                self._sizes.move_to_end(sha256)
            return size

    def put(self, sha256: str, size: int) -> None:
        with self._lock:
            self._sizes[sha256] = size
            self._sizes.move_to_end(sha256)
            while len(self._sizes) > self.entries:
                self._sizes.popitem(last=False)


class MaildropLocks:
    """RFC 1939 4: one session at a time holds a maildrop's exclusive lock; a second login gets
    ``-ERR [IN-USE]`` (RFC 2449 8.1.1). IMAP sessions are not affected.

    Over the host's `Locks`: in-process with one worker, the supervisor's hub with several
    (a session on another worker holds it just the same). Several hosts sharing a
    PostgreSQL store need a store-level lock (an advisory lock held for the session).
    """

    def __init__(self, locks: Locks | None = None) -> None:
        self._locks: Locks = locks if locks is not None else LocalLocks()

    @staticmethod
    def _key(account_id: int) -> str:
        return f"pop3:{account_id}"

    async def acquire(self, account_id: int) -> bool:
        return await self._locks.acquire(self._key(account_id))

    def release(self, account_id: int) -> None:
        self._locks.release(self._key(account_id))

    def held(self, account_id: int) -> bool:
        return self._locks.held(self._key(account_id))


def load_maildrop(store: Store, account_id: int, sizes: TransferSizes) -> Maildrop:
    """Blocking: read the INBOX listing and the transfer size of every message."""
    box = store.mail.get_mailbox(account_id, "INBOX")
    if box is None:
        raise LookupError(f"account {account_id} has no INBOX")
    messages = []
    for meta in store.mail.list_messages(box.id):
        size = sizes.get(meta.blob_sha256)
        if size is None:
            try:
                with store.blobs.open(meta.blob_sha256) as handle:
                    size = transfer_size(file_chunks(handle))
                sizes.put(meta.blob_sha256, size)
            except OSError as exc:
                # RETR of it answers -ERR; the rest of the maildrop stays usable.
                log.warning("message body unreadable", extra={"fields": {
                    "mailbox": box.id, "uid": meta.uid, "error": str(exc)}})
                size = meta.size
        messages.append(MaildropMessage(meta.uid, meta.blob_sha256, size))
    return Maildrop(box.id, box.uidvalidity, messages)
