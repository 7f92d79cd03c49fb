"""Every query the webmail makes of its own: folder counts, the message list (keyset
paging in four sort orders), full-text search (SQLite FTS5, PostgreSQL tsvector), the
text index the indexer fills, threads, correspondents and preferences.

A part over the store's database object (its engine, transactions and write lock), not a
subclass: mail writes stay the store's own methods. Methods block; asyncio callers run
them in a worker thread.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    column,
    delete,
    func,
    or_,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from postel.mail.mime import decode_words
from postel.store.model import Flags
from postel.store.sql import schema as t
from postel.store.sql.database import Database
from postel.store.sql.mail import SqlMailboxes
from postel.store.sql.rows import message_fields
from postel.store.webmail_api import (
    BadCursor,
    FolderSummary,
    ListedMessage,
    ListPage,
    MessageText,
    SearchTerms,
    SortKey,
    UnindexedMessage,
    WebmailPrefs,
)

m = t.messages
w = t.webmail_text
PREVIEW_CHARS = 160
# FTS5 table made by migration 0005 (SQLite only); its rowid is webmail_text.message_id.
_fts = table("webmail_fts", column("rowid"))
_SORT_COLUMNS: dict[SortKey, ColumnElement[Any]] = {
    SortKey.DATE: m.c.internal_date,
    SortKey.FROM: t.FROM_SORT_PREFIX,
    SortKey.SUBJECT: t.SUBJECT_SORT_PREFIX,
    SortKey.SIZE: m.c.size,
}
_LIST_COLUMNS = (
    m.c.id, m.c.mailbox_id, m.c.uid, m.c.seen, m.c.answered, m.c.flagged, m.c.deleted,
    m.c.draft, m.c.keywords, m.c.internal_date, m.c.sent_date, m.c.size, m.c.subject,
    m.c.display_from, m.c.display_to, m.c.has_attachments,
    func.substr(w.c.body, 1, PREVIEW_CHARS).label("preview"),
)
_WORD = re.compile(r"\w+")


def _encode_cursor(sort: SortKey, key: Any, message_id: int) -> str:
    if isinstance(key, datetime):
        key = key.isoformat()
    raw = json.dumps([sort.value, key, message_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(sort: SortKey, cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, key, message_id = json.loads(raw)
        if name != sort.value or not isinstance(message_id, int):
            raise ValueError
        if sort is SortKey.DATE:
            key = datetime.fromisoformat(key)
            if key.tzinfo is None:
                raise ValueError
        elif not isinstance(key, int if sort is SortKey.SIZE else str):
            raise ValueError
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise BadCursor("this page cursor is not valid for this list") from exc
    return key, message_id


def _listed(row: Any) -> ListedMessage:
    return ListedMessage(
        id=row.id, mailbox_id=row.mailbox_id, uid=row.uid,
        flags=Flags(bool(row.seen), bool(row.answered), bool(row.flagged), bool(row.deleted),
                    bool(row.draft), tuple(row.keywords.split()) if row.keywords else ()),
        internal_date=row.internal_date, sent_date=row.sent_date, size=row.size,
        subject=row.subject, display_from=row.display_from, display_to=row.display_to,
        has_attachments=bool(row.has_attachments), preview=" ".join((row.preview or "").split()),
    )


def _fts5_phrase(word: str) -> str:
    # FTS5 string: double quotes doubled inside; the trailing * makes it a prefix query,
    # so a search typed halfway ("invoi") already finds "invoice".
    return '"' + word.replace('"', '""') + '"*'


def _tsquery_terms(words: Sequence[str]) -> str:
    """PostgreSQL to_tsquery text: every lexeme a prefix match, all required."""
    lexemes = [lex.lower() for word in words for lex in _WORD.findall(word)]
    return " & ".join(f"{lex}:*" for lex in lexemes)


class SqlWebmail:
    """`webmail_api.WebmailStore` on SQL: the webmail's queries, a sibling part over the
    store's database; mail writes stay with `SqlMailboxes`."""

    def __init__(self, db: Database, mail: SqlMailboxes) -> None:
        self._db = db
        self._mail = mail
        self.postgres = db.engine.dialect.name == "postgresql"

    # -- folders ----------------------------------------------------------------------

    def folders(self, account_id: int) -> list[FolderSummary]:
        boxes = self._mail.list_mailboxes(account_id)
        with self._db.read() as conn:
            counts = {
                row.mailbox_id: (int(row.total), int(row.unseen))
                for row in conn.execute(
                    select(
                        m.c.mailbox_id, func.count().label("total"),
                        func.coalesce(func.sum(case((m.c.seen == False, 1), else_=0)),  # noqa: E712
                                      0).label("unseen"),
                    )
                    .where(m.c.mailbox_id.in_([box.id for box in boxes]))
                    .group_by(m.c.mailbox_id)
                )
            }
        return [FolderSummary(box, *counts.get(box.id, (0, 0))) for box in boxes]

    # -- the message list -------------------------------------------------------------

    def _page(self, query: Select[Any], sort: SortKey, descending: bool, after: str | None,
              limit: int) -> ListPage:
        key = _SORT_COLUMNS[sort]
        if after:
            value, last_id = _decode_cursor(sort, after)
            position = tuple_(key, m.c.id)
            bound = tuple_(value, last_id)
            query = query.where(position < bound if descending else position > bound)
        order = (key.desc(), m.c.id.desc()) if descending else (key.asc(), m.c.id.asc())
        query = query.add_columns(key.label("sort_key")).order_by(*order).limit(limit + 1)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = _encode_cursor(sort, rows[-1].sort_key, rows[-1].id) if more else None
        return ListPage([_listed(row) for row in rows], cursor)

    def list_page(self, mailbox_id: int, sort: SortKey, descending: bool,
                  after: str | None, limit: int) -> ListPage:
        query = (
            select(*_LIST_COLUMNS)
            .select_from(m.outerjoin(w, w.c.message_id == m.c.id))
            .where(m.c.mailbox_id == mailbox_id)
        )
        return self._page(query, sort, descending, after, limit)

    # -- search -----------------------------------------------------------------------

    def search(self, account_id: int, mailbox_id: int | None, terms: SearchTerms,
               after: str | None, limit: int) -> ListPage:
        """Newest first; the text index must be caught up first (see the indexer)."""
        boxes = select(t.mailboxes.c.id).where(t.mailboxes.c.account_id == account_id)
        if mailbox_id is not None:
            boxes = boxes.where(t.mailboxes.c.id == mailbox_id)
        query = (
            select(*_LIST_COLUMNS)
            .select_from(m.outerjoin(w, w.c.message_id == m.c.id))
            .where(m.c.mailbox_id.in_(boxes.scalar_subquery()))
        )
        text_terms = terms.words or terms.from_ or terms.to or terms.subject
        if text_terms:
            query = self._text_match(query, terms)
        if terms.has_attachment:
            query = query.where(m.c.has_attachments == True)  # noqa: E712
        if terms.unread:
            query = query.where(m.c.seen == False)  # noqa: E712
        if terms.flagged:
            query = query.where(m.c.flagged == True)  # noqa: E712
        if terms.before is not None:
            query = query.where(m.c.internal_date < terms.before)
        if terms.after is not None:
            query = query.where(m.c.internal_date >= terms.after)
        return self._page(query, SortKey.DATE, True, after, limit)

    def _text_match(self, query: Select[Any], terms: SearchTerms) -> Select[Any]:
        if not self.postgres:
            # One FTS5 MATCH: free words in any column, operators in their own column.
            # Words without a letter or digit hold no token FTS5 could match: skipped.
            parts = [_fts5_phrase(word) for word in terms.words if _WORD.search(word)]
            for name, words in (("from_text", terms.from_), ("to_text", terms.to),
                                ("subject", terms.subject)):
                parts.extend(f"{name} : {_fts5_phrase(word)}" for word in words
                             if _WORD.search(word))
            if not parts:
                return query
            matched = select(_fts.c.rowid).where(text("webmail_fts MATCH :match"))
            return query.where(m.c.id.in_(matched.scalar_subquery())).params(
                match=" AND ".join(parts))
        if terms.words:
            tsquery = _tsquery_terms(terms.words)
            if tsquery:
                # Materialised first, from the GIN index: left to itself the planner walks
                # the date index and computes to_tsvector for every row until enough match.
                hits = (
                    select(w.c.message_id)
                    .where(t.SEARCH_DOCUMENT.bool_op("@@")(func.to_tsquery("simple", tsquery)))
                    .cte("text_hits").prefix_with("MATERIALIZED")
                )
                query = query.where(m.c.id.in_(select(hits.c.message_id)))
        for target, words in ((w.c.from_text, terms.from_), (w.c.to_text, terms.to),
                              (w.c.subject, terms.subject)):
            for word in words:
                escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(target.ilike(f"%{escaped}%", escape="\\"))
        return query

    # -- one message ------------------------------------------------------------------

    def message_row(self, account_id: int, message_id: int) -> dict[str, Any] | None:
        """Every stored column of a message of this account (JSON decoded), or None."""
        with self._db.read() as conn:
            row = conn.execute(
                select(m, t.mailboxes.c.name.label("mailbox_name"),
                       t.mailboxes.c.special_use.label("mailbox_special_use"))
                .join(t.mailboxes, t.mailboxes.c.id == m.c.mailbox_id)
                .where(and_(m.c.id == message_id, t.mailboxes.c.account_id == account_id))
            ).first()
        return None if row is None else message_fields(row)

    def locate(self, account_id: int, message_ids: Sequence[int]) -> dict[int, list[int]]:
        """mailbox id -> UIDs of those of the given messages this account owns."""
        found: dict[int, list[int]] = {}
        with self._db.read() as conn:
            for start in range(0, len(message_ids), 500):
                batch = list(message_ids[start:start + 500])
                for row in conn.execute(
                    select(m.c.mailbox_id, m.c.uid)
                    .join(t.mailboxes, t.mailboxes.c.id == m.c.mailbox_id)
                    .where(and_(m.c.id.in_(batch), t.mailboxes.c.account_id == account_id))
                ):
                    found.setdefault(int(row.mailbox_id), []).append(int(row.uid))
        return found

    def find_by_message_id(self, account_id: int, mailbox_id: int,
                           message_id: str) -> int | None:
        """The newest message of a mailbox with this Message-ID (a just-saved draft)."""
        indexed_prefix = t.MESSAGE_ID_PREFIX  # lets the lookup use its index
        with self._db.read() as conn:
            found = conn.execute(
                select(m.c.id)
                .where(and_(m.c.mailbox_id == mailbox_id,
                            indexed_prefix == message_id[:200],
                            m.c.message_id == message_id))
                .order_by(m.c.id.desc()).limit(1)
            ).scalar()
        return None if found is None else int(found)

    def thread(self, account_id: int, message_id: int,
               limit: int) -> list[ListedMessage] | None:
        """The conversation of a message across folders: messages it references, that
        reference it, or that share its references (RFC 5256 REFERENCES, simplified to
        the one thread the message belongs to), oldest first. None when the message is
        not this account's (the API answers 404, as for every other foreign id)."""
        row = self.message_row(account_id, message_id)
        if row is None:
            return None
        ids = set(row["references"].split())
        for value in (row["in_reply_to"], row["message_id"]):
            ids.update((value or "").split())
        ids = {i for i in ids if i.startswith("<")}
        if not ids:
            return []
        boxes = select(t.mailboxes.c.id).where(t.mailboxes.c.account_id == account_id)
        related: list[ColumnElement[bool]] = [m.c.message_id.in_(ids)]
        related.extend(m.c.references.contains(i) for i in sorted(ids)[:50])
        query = (
            select(*_LIST_COLUMNS)
            .select_from(m.outerjoin(w, w.c.message_id == m.c.id))
            .where(and_(m.c.mailbox_id.in_(boxes.scalar_subquery()), or_(*related)))
            .order_by(m.c.internal_date, m.c.id).limit(limit)
        )
        with self._db.read() as conn:
            return [_listed(r) for r in conn.execute(query)]

    def correspondents(self, account_id: int, prefix: str, limit: int) -> list[str]:
        """Addresses the user wrote to or heard from, starting with `prefix` (a name or an
        address), most recent first: for address autocomplete."""
        wanted = prefix.strip().lower()
        if not wanted:
            return []
        boxes = select(t.mailboxes.c.id).where(t.mailboxes.c.account_id == account_id)
        query = (
            select(m.c.envelope, t.mailboxes.c.special_use)
            .join(t.mailboxes, t.mailboxes.c.id == m.c.mailbox_id)
            .where(m.c.mailbox_id.in_(boxes.scalar_subquery()))
            .order_by(m.c.id.desc()).limit(3000)
        )
        seen: dict[str, str] = {}
        with self._db.read() as conn:
            for row in conn.execute(query):
                envelope = json.loads(row.envelope)
                # ENVELOPE: from is 2, to 5, cc 6 (RFC 9051 7.5.2); sent mail: recipients.
                fields = (5, 6) if row.special_use == "\\Sent" else (2,)
                for index in fields:
                    for entry in envelope[index] or []:
                        address = _address(entry)
                        if address and address[1].lower() not in seen:
                            name, addr = address
                            if wanted in addr.lower() or wanted in name.lower():
                                seen[addr.lower()] = f"{name} <{addr}>" if name else addr
                if len(seen) >= limit:
                    break
        return list(seen.values())[:limit]

    # -- the text index ---------------------------------------------------------------

    def newest_message_id(self, account_id: int) -> int:
        boxes = select(t.mailboxes.c.id).where(t.mailboxes.c.account_id == account_id)
        with self._db.read() as conn:
            found = conn.execute(
                select(func.max(m.c.id)).where(m.c.mailbox_id.in_(boxes.scalar_subquery()))
            ).scalar()
        return int(found or 0)

    def unindexed(self, account_id: int, limit: int,
                  above_id: int = 0) -> list[UnindexedMessage]:
        """Messages without a text row, newest first; only ids above `above_id` (a scan
        of the recent end instead of the whole mailbox)."""
        boxes = select(t.mailboxes.c.id).where(t.mailboxes.c.account_id == account_id)
        query = (
            select(m.c.id, m.c.blob_sha256, m.c.mime, m.c.envelope, m.c.subject)
            .select_from(m.outerjoin(w, w.c.message_id == m.c.id))
            .where(and_(m.c.mailbox_id.in_(boxes.scalar_subquery()), w.c.message_id.is_(None),
                        m.c.id > above_id))
            .order_by(m.c.id.desc()).limit(limit)
        )
        with self._db.read() as conn:
            return [
                UnindexedMessage(row.id, row.blob_sha256, json.loads(row.mime),
                                 json.loads(row.envelope), row.subject)
                for row in conn.execute(query)
            ]

    def save_texts(self, texts: Sequence[MessageText]) -> int:
        """Store extracted texts; messages expunged meanwhile are skipped. Returns how
        many rows were written."""
        if not texts:
            return 0
        rows = [
            {"message_id": x.message_id, "subject": x.subject, "from_text": x.from_text,
             "to_text": x.to_text, "body": x.body}
            for x in texts
        ]
        insert = (pg_insert if self.postgres else sqlite_insert)(w)
        for _attempt in range(3):
            try:
                with self._db.write() as (conn, _):
                    present = set(conn.execute(
                        select(m.c.id).where(m.c.id.in_([r["message_id"] for r in rows]))
                    ).scalars())
                    keep = [r for r in rows if r["message_id"] in present]
                    if keep:
                        conn.execute(insert.on_conflict_do_nothing(), keep)
                    return len(keep)
            except IntegrityError:
                # Expunged between the check and the insert (PostgreSQL): look again.
                continue
        return 0

    # -- preferences ------------------------------------------------------------------

    def prefs(self, account_id: int) -> WebmailPrefs:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.webmail_prefs).where(t.webmail_prefs.c.account_id == account_id)
            ).first()
            trusted = frozenset(conn.execute(
                select(t.webmail_trusted_senders.c.sender)
                .where(t.webmail_trusted_senders.c.account_id == account_id)
            ).scalars())
        if row is None:
            return WebmailPrefs(trusted_senders=trusted)
        return WebmailPrefs(row.signature, bool(row.mark_read_on_open), trusted)

    def save_prefs(self, account_id: int, *, signature: str, mark_read_on_open: bool) -> None:
        with self._db.write() as (conn, _):
            conn.execute(delete(t.webmail_prefs)
                         .where(t.webmail_prefs.c.account_id == account_id))
            conn.execute(t.webmail_prefs.insert().values(
                account_id=account_id, signature=signature,
                mark_read_on_open=mark_read_on_open))

    def trust_sender(self, account_id: int, sender: str) -> None:
        insert = (pg_insert if self.postgres else sqlite_insert)(t.webmail_trusted_senders)
        with self._db.write() as (conn, _):
            conn.execute(insert.on_conflict_do_nothing().values(
                account_id=account_id, sender=sender.lower()))


def _address(entry: list[Any]) -> tuple[str, str] | None:
    """(display name, addr-spec) of one ENVELOPE address; None for group markers."""
    name, _route, mailbox, host = (entry + [None] * 4)[:4]
    if not mailbox or not host:
        return None
    return decode_words(name or "").strip(), f"{mailbox}@{host}"
