"""SEARCH keys (RFC 9051 6.4.4, RFC 3501 6.4.4, RFC 7162 3.1.5 MODSEQ, RFC 5182 "$",
RFC 8514 SAVEDATE, RFC 5032 WITHIN)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from postel.imap.proto.cursor import Cursor, ParseError

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DATE = re.compile(r'"?(\d{1,2})-([A-Za-z]{3})-(\d{4})"?\Z')
_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}\Z")  # RFC 8474 6: objectid


@dataclass(frozen=True)
class SearchKey:
    """op is the key name; args hold its operands (SearchKeys for AND/OR/NOT)."""

    op: str
    args: tuple[object, ...] = ()


FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True), "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False), "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
# RFC 8514 4.3: SAVEDATESUPPORTED matches every message when the mailbox keeps save dates.
NO_ARG = {"ALL", "NEW", "OLD", "RECENT", "SAVEDATESUPPORTED"}
STRING_KEYS = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE",
             "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"}  # RFC 8514 4.3


def parse_date(text: str) -> date:
    m = _DATE.match(text)
    if not m or m.group(2).lower() not in _MONTHS:
        raise ParseError(f"bad date {text!r}")
    try:
        return date(int(m.group(3)), _MONTHS.index(m.group(2).lower()) + 1, int(m.group(1)))
    except ValueError:
        raise ParseError(f"bad date {text!r}") from None


def parse_search_keys(c: Cursor) -> SearchKey:
    """One or more keys up to the end of the command, ANDed."""
    keys = [search_key(c, 0)]
    while c.maybe_sp():
        keys.append(search_key(c, 0))
    c.end()
    return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))


def search_key(c: Cursor, depth: int) -> SearchKey:
    if depth > c.max_nesting:
        raise ParseError("search keys too deeply nested")
    if c.accept(b"("):
        keys = [search_key(c, depth + 1)]
        while not c.accept(b")"):
            c.sp()
            keys.append(search_key(c, depth + 1))
        return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
    nxt = c.peek()
    if nxt is not None and (0x30 <= nxt <= 0x39 or nxt in b"*$"):
        return SearchKey("SEQ", (c.sequence_set(),))
    word = c.atom().upper()
    if word in FLAG_KEYS:
        return SearchKey("FLAG", FLAG_KEYS[word])
    if word in NO_ARG:
        return SearchKey(word)
    if word in STRING_KEYS:
        c.sp()
        return SearchKey(word, (c.astring(),))
    if word in DATE_KEYS:
        c.sp()
        return SearchKey(word, (parse_date(c.astring()),))
    if word in ("KEYWORD", "UNKEYWORD"):
        c.sp()
        return SearchKey("FLAG", (c.flag(), word == "KEYWORD"))
    if word in ("LARGER", "SMALLER"):
        c.sp()
        return SearchKey(word, (c.number(),))
    if word == "HEADER":
        c.sp()
        name = c.astring()
        c.sp()
        return SearchKey("HEADER", (name, c.astring()))
    if word == "UID":
        c.sp()
        return SearchKey("UID", (c.sequence_set(),))
    if word == "NOT":
        c.sp()
        return SearchKey("NOT", (search_key(c, depth + 1),))
    if word == "OR":
        c.sp()
        a = search_key(c, depth + 1)
        c.sp()
        return SearchKey("OR", (a, search_key(c, depth + 1)))
    if word == "MODSEQ":
        # RFC 7162 3.1.5: MODSEQ [entry-name entry-type] mod-sequence-valzer
        c.sp()
        if c.peek() == ord('"'):
            c.string()
            c.sp()
            c.atom()
            c.sp()
        return SearchKey("MODSEQ", (c.number(),))
    if word in ("EMAILID", "THREADID"):
        # RFC 8474 6: search-key =/ "EMAILID" SP objectid / "THREADID" SP objectid
        c.sp()
        objectid = c.atom()
        if not _OBJECTID.match(objectid):
            raise ParseError(f"bad {word} {objectid!r}")
        return SearchKey(word, (objectid,))
    if word in ("OLDER", "YOUNGER"):
        # RFC 5032 3: "OLDER" SP nz-number / "YOUNGER" SP nz-number, in seconds.
        c.sp()
        interval = c.number()
        if interval == 0:
            raise ParseError(f"{word} needs a non-zero number of seconds")
        return SearchKey(word, (interval,))
    raise ParseError(f"unknown search key {word}")


