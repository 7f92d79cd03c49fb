"""Codec abuse in encoded words and a poison job in a group commit (issue 15, item 4)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.pool import StaticPool

from postel.mail.charsets import decode_text
from postel.mail.mime import decode_words, parse_message_bytes
from postel.store.model import Change
from postel.store.sql.groupcommit import GroupCommitter


@pytest.mark.parametrize("word", [
    "=?unicode_escape?q?=5Cud800?=",
    "=?raw_unicode_escape?q?=5Cud800?=",
    "=?punycode?q?9ca?=",
    "=?base64?q?eA=3D=3D?=",
    "=?zlib?b?eJwrzs9NVUjOzy0pSi0uUSguKcrMS1coSS0uUTA0MjYwNTUzAwDGJgrS?=",
    "=?rot13?q?uryyb?=",
    "=?idna?q?xn--caf-dma?=",
])
def test_non_text_codecs_are_not_charsets(word: str) -> None:
    text = decode_words(word)
    text.encode("utf-8")  # no lone surrogate: the message stays storable


def test_text_charsets_still_decode() -> None:
    assert decode_words("=?iso-8859-1?q?caf=E9?=") == "café"
    assert decode_words("=?windows-1252?q?=80?=") == "€"
    assert decode_words("=?koi8-r?b?8NLJ18XU?=") == "Привет"
    assert decode_words("=?shift_jis?b?k/qWe4zq?=") == "日本語"
    assert decode_text(b"caf\xc3\xa9", "x-made-up") == "café"
    assert decode_text(b"\xff", "x-made-up") == "\ufffd"


def test_an_encoded_word_longer_than_75_characters_is_not_decoded() -> None:
    # RFC 2047 2; a megabyte of punycode cost 22 s of CPU per message.
    word = "=?utf-8?q?" + "a" * 100 + "?="
    assert decode_words(word) == word
    huge = "=?punycode?q?9ca" + "a" * 1_000_000 + "?="
    assert decode_words(huge) == huge
    assert decode_words("=?utf-8?q?" + "b" * 63 + "?=") == "b" * 63  # exactly 75


def test_a_message_with_abusive_words_parses_and_is_storable() -> None:
    raw = (b"From: =?unicode_escape?q?=5Cud800?= <a@example.test>\r\n"
           b"Subject: =?unicode_escape?q?=5Cud800?= =?punycode?q?9ca" + b"a" * 200_000 +
           b"?=\r\n\r\nbody\r\n")
    parsed = parse_message_bytes(raw)
    assert "\ud800" not in parsed.subject
    parsed.subject.encode("utf-8")


def test_a_poison_job_in_a_batch_does_not_fail_its_neighbours() -> None:
    engine = create_engine("sqlite://", connect_args={"check_same_thread": False},
                           poolclass=StaticPool)
    rows = Table("rows", MetaData(), Column("n", Integer))
    rows.metadata.create_all(engine)
    lock = threading.Lock()
    published: list[Change] = []
    committer = GroupCommitter(engine, lock, (LookupError,), published.extend)
    results: dict[int, object] = {}

    def job(n: int) -> None:
        def work(conn: Connection, changes: list[Change]) -> int:
            conn.execute(insert(rows).values(n=n))
            if n == 2:
                raise RuntimeError("poison")
            return n

        try:
            results[n] = committer.run(work)
        except RuntimeError as exc:
            results[n] = exc

    with lock:  # hold the writer so all three jobs queue into one batch
        threads = [threading.Thread(target=job, args=(n,)) for n in (1, 2, 3)]
        for thread in threads:
            thread.start()
        while len(committer._pending) < 3:  # wait for the queue, not for a time
            time.sleep(0.001)
    for thread in threads:
        thread.join(30)
    assert results[1] == 1 and results[3] == 3
    assert isinstance(results[2], RuntimeError)
    with engine.connect() as conn:
        assert sorted(r.n for r in conn.execute(select(rows.c.n))) == [1, 3]
