"""WebmailSql on SQLite and PostgreSQL: folder counts, keyset paging in every sort order,
full-text search with operators, the text index following expunges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from postel.mail.mime import parse_message_bytes
from postel.store.model import Flags
from postel.store.sql import schema as t
from postel.store.sql.store import SqlStore
from postel.store.sql.webmail import SqlWebmail
from postel.store.webmail_api import BadCursor, MessageText, SearchTerms, SortKey
from tests.store.helpers import add_user, mailbox_id

START = datetime(2026, 1, 1, tzinfo=UTC)


def deliver(store: SqlStore, account_id: int, sender: str, subject: str, body: str,
            minutes: int, *, box: str = "INBOX", seen: bool = False) -> int:
    raw = (f"From: {sender}\r\nTo: me@example.test\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '.')}@x>\r\n\r\n{body}\r\n").encode()
    (delivered,) = store.mail.deliver(store.blobs.put(raw), parse_message_bytes(raw),
                                 [(account_id, box)], flags=Flags(seen=seen),
                                 internal_date=START + timedelta(minutes=minutes))
    return delivered.uid


def index_all(sql: SqlWebmail, account_id: int) -> None:
    for item in sql.unindexed(account_id, 1000):
        sql.save_texts([MessageText(item.id, item.subject, str(item.envelope[2]),
                                    str(item.envelope[5]), f"body of {item.subject}")])


def test_folders_list_and_paging(store: SqlStore) -> None:
    sql = store.webmail
    me = add_user(store, "me@example.test")
    for n in range(7):
        deliver(store, me.id, f"s{n % 3}@x.test", f"subject {n}", "hi", n, seen=n < 2)
    folders = {f.mailbox.name: f for f in sql.folders(me.id)}
    assert (folders["INBOX"].total, folders["INBOX"].unseen) == (7, 5)
    assert folders["Trash"].total == 0
    inbox = mailbox_id(store, me)
    for sort in SortKey:
        for descending in (True, False):
            seen: list[int] = []
            cursor = None
            while True:
                page = sql.list_page(inbox, sort, descending, cursor, 3)
                seen += [x.id for x in page.messages]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sorted(seen) == sorted(set(seen)) and len(seen) == 7, (sort, descending)
    newest = sql.list_page(inbox, SortKey.DATE, True, None, 2).messages
    assert [x.subject for x in newest] == ["subject 6", "subject 5"]
    with pytest.raises(BadCursor):
        sql.list_page(inbox, SortKey.SIZE, True, "garbage", 2)


def test_search_and_index_follow_expunge(store: SqlStore) -> None:
    sql = store.webmail
    me = add_user(store, "me@example.test")
    other = add_user(store, "other@example.test")
    deliver(store, me.id, "alice@x.test", "invoice march", "", 1)
    deliver(store, me.id, "bob@x.test", "lunch", "", 2)
    deliver(store, other.id, "alice@x.test", "invoice other", "", 3)
    index_all(sql, me.id)
    index_all(sql, other.id)
    assert sql.unindexed(me.id, 10) == []

    def subjects(terms: SearchTerms, box: int | None = None) -> list[str]:
        return [x.subject for x in sql.search(me.id, box, terms, None, 50).messages]

    assert subjects(SearchTerms(words=("invoice",))) == ["invoice march"]
    assert subjects(SearchTerms(words=("invo",))) == ["invoice march"]  # prefix
    assert subjects(SearchTerms(words=("body",))) == ["lunch", "invoice march"]
    assert subjects(SearchTerms(from_=("bob",))) == ["lunch"]
    assert subjects(SearchTerms(subject=("lunch",), words=("body",))) == ["lunch"]
    assert subjects(SearchTerms(unread=True, after=START + timedelta(minutes=2))) == ["lunch"]
    assert subjects(SearchTerms(words=('say "hi"',))) == []  # quotes are data
    inbox = mailbox_id(store, me)
    first = sql.list_page(inbox, SortKey.DATE, False, None, 1).messages[0]
    assert first.preview == "body of invoice march"
    store.mail.expunge(inbox, [first.uid])
    assert subjects(SearchTerms(words=("invoice",))) == []
    with store.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.webmail_text)).scalar() == 2


def test_prefs_thread_and_correspondents(store: SqlStore) -> None:
    sql = store.webmail
    me = add_user(store, "me@example.test")
    assert sql.prefs(me.id).mark_read_on_open
    sql.save_prefs(me.id, signature="-- me", mark_read_on_open=False)
    sql.trust_sender(me.id, "News@X.test")
    sql.trust_sender(me.id, "news@x.test")
    prefs = sql.prefs(me.id)
    assert (prefs.signature, prefs.mark_read_on_open) == ("-- me", False)
    assert prefs.trusted_senders == {"news@x.test"}
    raw = (b"From: Carol <carol@x.test>\r\nSubject: re\r\nMessage-ID: <b@x>\r\n"
           b"In-Reply-To: <a@x>\r\nReferences: <a@x>\r\n\r\nhi\r\n")
    store.mail.deliver(store.blobs.put(raw), parse_message_bytes(raw), [(me.id, "Archive")])
    deliver(store, me.id, "carol@x.test", "a", "", 1)  # Message-ID <a@x>
    first = sql.list_page(mailbox_id(store, me), SortKey.DATE, True, None, 1).messages[0]
    assert [x.subject for x in sql.thread(me.id, first.id, 50)] == ["a", "re"]
    # One entry per address, from the newest message that names it.
    assert sql.correspondents(me.id, "car", 10) == ["carol@x.test"]
    assert sql.correspondents(me.id, "nobody", 10) == []
