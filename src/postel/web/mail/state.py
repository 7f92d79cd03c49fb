"""What the webmail keeps per server: its store queries, the search indexer, uploads.

The indexer keeps the full-text index out of the delivery path: it indexes every message
of an account that has no text row yet, (a) in the background when the account's change
hints arrive or its list is read, and (b) to the end before every search answers, so a
search always sees every message stored before it began.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from postel.mail.mime import MimePart, decode_words
from postel.store.blobs import BlobStore
from postel.store.webmail_api import MessageText, UnindexedMessage, WebmailStore
from postel.web.mail.mimeview import address_list, index_text
from postel.web.state import Web

log = logging.getLogger("postel.web.mail")
BATCH = 200


def extract_text(blobs_path: Path, item: UnindexedMessage) -> MessageText:
    """The searchable text of one message; a broken one still gets a row (no retries)."""
    def people(*fields: str) -> str:
        return " ".join(f"{a['name']} {a['email']}" for f in fields
                        for a in address_list(item.envelope, f))

    try:
        body = index_text(blobs_path, MimePart.from_json(item.mime))
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("could not index message %s", item.id, exc_info=True)
        body = ""
    return MessageText(item.id, decode_words(item.subject), people("from", "sender"),
                       people("to", "cc"), body)


class Indexer:
    """Per account it remembers up to which message id a scan found everything indexed,
    so a catch-up looks only at the recent end (ids above that, less SLACK for writers
    that took an id earlier and committed later); the whole mailbox is scanned at the
    first catch-up and again every FULL_SCAN_SECONDS in the background."""

    SLACK = 10_000
    FULL_SCAN_SECONDS = 600.0

    def __init__(self, sql: WebmailStore, blobs: BlobStore) -> None:
        self.sql = sql
        self.blobs = blobs
        self._locks: dict[int, asyncio.Lock] = {}
        self._running: dict[int, asyncio.Task[None]] = {}
        self._indexed_to: dict[int, int] = {}  # account -> every id <= it has a text row
        self._full_scan_at: dict[int, float] = {}

    def _index_batch(self, account_id: int, above_id: int) -> int:
        """Blocking: index up to BATCH messages; returns how many it found to do."""
        items = self.sql.unindexed(account_id, BATCH, above_id)
        blobs = self.blobs
        texts = [extract_text(blobs.path(item.blob_sha256), item) for item in items]
        self.sql.save_texts(texts)
        return len(items)

    async def catch_up(self, account_id: int, *, full: bool = False) -> None:
        """Index every message of the account not indexed yet; returns when done."""
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            known = self._indexed_to.get(account_id)
            full = full or known is None
            above = 0 if full or known is None else max(0, known - self.SLACK)
            newest = await asyncio.to_thread(self.sql.newest_message_id, account_id)
            while await asyncio.to_thread(self._index_batch, account_id, above) == BATCH:
                pass
            self._indexed_to[account_id] = max(newest, known or 0)
            if full:
                self._full_scan_at[account_id] = time.monotonic()

    def kick(self, account_id: int) -> None:
        """Start catching up in the background unless that is already happening."""
        task = self._running.get(account_id)
        if task is not None and not task.done():
            return
        self._running[account_id] = asyncio.get_running_loop().create_task(
            self._background(account_id), name=f"webmail-index-{account_id}")

    async def _background(self, account_id: int) -> None:
        last_full = self._full_scan_at.get(account_id, 0.0)
        try:
            await self.catch_up(
                account_id, full=time.monotonic() - last_full > self.FULL_SCAN_SECONDS)
        except Exception:
            log.exception("background indexing failed for account %s", account_id)


class MailState:
    def __init__(self, web: Web) -> None:
        self.sql = web.store.webmail
        self.indexer = Indexer(self.sql, web.store.blobs)
        self.uploads = web.context.config.data_dir / "tmp" / "webmail-uploads"


def mail_state(web: Web) -> MailState:
    state = web.extra.get("webmail")
    if state is None:
        state = web.extra["webmail"] = MailState(web)
    assert isinstance(state, MailState)
    return state
