"""What the webmail keeps per server: its store queries, the search indexer, uploads.

The indexer keeps the full-text index out of the delivery path: it indexes every message
of an account that has no text row yet, (a) in the background when the account's change
hints arrive or its list is read, and (b) to the end before every search answers, so a
search always sees every message stored before it began.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from postel.mail.mime import MimePart, decode_words
from postel.store.sql.webmail import WebmailSql
from postel.store.webmail_api import MessageText, UnindexedMessage
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
    def __init__(self, sql: WebmailSql) -> None:
        self.sql = sql
        self._locks: dict[int, asyncio.Lock] = {}
        self._running: dict[int, asyncio.Task[None]] = {}

    def _index_batch(self, account_id: int) -> int:
        """Blocking: index up to BATCH messages; returns how many were left to do."""
        items = self.sql.unindexed(account_id, BATCH)
        blobs = self.sql.store.blobs
        texts = [extract_text(blobs.path(item.blob_sha256), item) for item in items]
        self.sql.save_texts(texts)
        return len(items)

    async def catch_up(self, account_id: int) -> None:
        """Index every message of the account not indexed yet; returns when done."""
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            while await asyncio.to_thread(self._index_batch, account_id) == BATCH:
                pass

    def kick(self, account_id: int) -> None:
        """Start catching up in the background unless that is already happening."""
        task = self._running.get(account_id)
        if task is not None and not task.done():
            return
        self._running[account_id] = asyncio.get_running_loop().create_task(
            self._background(account_id), name=f"webmail-index-{account_id}")

    async def _background(self, account_id: int) -> None:
        try:
            await self.catch_up(account_id)
        except Exception:
            log.exception("background indexing failed for account %s", account_id)


class MailState:
    def __init__(self, web: Web) -> None:
        self.sql = WebmailSql(web.store)
        self.indexer = Indexer(self.sql)
        self.uploads = web.context.config.data_dir / "tmp" / "webmail-uploads"


def mail_state(web: Web) -> MailState:
    state = web.extra.get("webmail")
    if state is None:
        state = web.extra["webmail"] = MailState(web)
    assert isinstance(state, MailState)
    return state
