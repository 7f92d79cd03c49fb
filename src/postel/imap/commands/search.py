"""SEARCH, SORT and THREAD with their UID forms (RFC 9051 6.4.4, RFC 4731 ESEARCH,
RFC 5182 SEARCHRES, RFC 5256 SORT/THREAD, RFC 5957 SORT=DISPLAY, RFC 7162 MODSEQ,
RFC 5267 ESORT and CONTEXT=SEARCH/SORT, RFC 9394 PARTIAL)."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from postel.imap import threading as threads
from postel.imap.bodies import ByteRange
from postel.imap.proto.commands import Command, Search, Sort, Thread
from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.sequence import SequenceSet
from postel.imap.search_eval import Candidate, Evaluator, decode_text, needed_columns, text_parts
from postel.imap.search_results import DATA_OPTIONS, SearchContext, result_items
from postel.mail.mime import MimePart

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

CHARSETS = ("UTF-8", "US-ASCII")
RETURN_OPTIONS = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}
# RFC 5267 4.1: CONTEXT (a hint we may ignore, 4.2), UPDATE (4.3) and PARTIAL (4.4).
CONTEXT_OPTIONS = {"CONTEXT", "UPDATE", "PARTIAL"}
# RFC 5267 3.1: SORT takes the ESEARCH options except SAVE (RFC 5182 is for SEARCH).
SORT_RETURN_OPTIONS = {"MIN", "MAX", "ALL", "COUNT"} | CONTEXT_OPTIONS


def _uses_modseq(key: SearchKey) -> bool:
    if key.op == "MODSEQ":
        return True
    return any(isinstance(a, SearchKey) and _uses_modseq(a) for a in key.args)


def _uses_saved(key: SearchKey) -> bool:
    if key.op in ("SEQ", "UID"):
        seq = key.args[0]
        return isinstance(seq, SequenceSet) and seq.saved
    return any(isinstance(a, SearchKey) and _uses_saved(a) for a in key.args)


async def run_search(
    s: ImapSession, key: SearchKey, extra: set[str], only: Collection[int] | None = None,
) -> list[Candidate]:
    """The messages matching `key`, in sequence order, with `extra` columns loaded; with
    `only`, just those UIDs are looked at (a context's changed messages)."""
    sel = s.selected
    assert sel is not None
    needle = _subject_needle(key)
    if only is None and needle:
        # Only the messages whose subject may match are evaluated: no JSON header
        # decoding for the 99,999 others of a big mailbox.
        only = await s.run(s.store.mail.subject_candidates, sel.mailbox_id, needle)
    if only is not None and not only:
        return []
    cols = needed_columns(key) | extra
    rows: dict[int, dict[str, Any]] = {}
    if cols:
        uids = None if only is None else sorted(only)
        rows = await s.run(s.store.mail.message_fields, sel.mailbox_id, uids, sorted(cols))
    blobs = s.store.blobs

    def body_text(m: Candidate) -> str:
        mime = m.row.get("mime")
        if mime is None:
            return ""
        root = MimePart.from_json(mime)
        out: list[str] = []
        with blobs.open(m.row["blob_sha256"]) as f:
            for part in text_parts(root):
                where = ByteRange(part.body_start, min(part.end, part.body_start + (8 << 20)))
                f.seek(where.start)
                out.append(decode_text(f.read(where.size), part))
        return "\n".join(out)

    evaluator = Evaluator(
        largest_seq=sel.exists, largest_uid=sel.uids[-1] if sel.uids else 0,
        saved=sel.saved, body_text=body_text,
    )
    candidates = [
        Candidate(uid, seq, sel.flags[uid], uid in sel.recent, sel.modseqs.get(uid, 0),
                  rows.get(uid, {}))
        for seq, uid in enumerate(sel.uids, start=1)
        if only is None or uid in only
    ]

    def evaluate() -> list[Candidate]:
        return [m for m in candidates if evaluator.match(key, m)]

    return await s.run(evaluate)


def _subject_needle(key: SearchKey) -> str:
    """The text of a SUBJECT key every match must satisfy (the key itself, or one term
    of a top-level AND), else "": the store can then pre-filter by subject."""
    if key.op == "SUBJECT":
        return str(key.args[0])
    if key.op == "AND":
        for sub in key.args:
            if isinstance(sub, SearchKey) and (found := _subject_needle(sub)):
                return found
    return ""


# RFC 5267 4.3.1: at least one updating context per client; past this many, NOUPDATE.
MAX_CONTEXTS = 16


def _may_update(s: ImapSession, tag: str) -> bool:
    sel = s.selected
    assert sel is not None
    if tag in sel.contexts:
        # RFC 5267 4.3: UPDATE with the tag of a live context SHALL be answered BAD.
        s.bad(tag, "Tag reuse: a search with this tag is still being updated")
        return False
    return True


def _open_context(
    s: ImapSession, tag: str, by_uid: bool, key: SearchKey,
    criteria: tuple[tuple[str, bool], ...] | None, uids: list[int],
    sort_keys: dict[int, Any] | None = None,
) -> None:
    sel = s.selected
    assert sel is not None
    if len(sel.contexts) >= MAX_CONTEXTS:
        # RFC 5267 4.3.1: refuse the updates only; the results were still given.
        s.untagged(f'NO [NOUPDATE "{tag}"] Too many searches are being updated')
        return
    sel.contexts[tag] = SearchContext(tag, by_uid, key, criteria, uids, sort_keys or {})


def _check_charset(s: ImapSession, tag: str, charset: str | None) -> bool:
    if charset is not None and charset.upper() not in CHARSETS:
        s.no(tag, "Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
        return False
    return True


async def search(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Search)
    sel = s.selected
    assert sel is not None
    by_uid = cmd.name == "UID SEARCH"
    if not _check_charset(s, cmd.tag, args.charset):
        return
    returns = args.returns
    if returns is not None and set(returns) - RETURN_OPTIONS - CONTEXT_OPTIONS:
        s.bad(cmd.tag, "Unknown RETURN option")
        return
    update = returns is not None and "UPDATE" in returns
    if update and not _may_update(s, cmd.tag):
        return
    modseq = _uses_modseq(args.key)
    if modseq:
        s.enable_condstore()  # RFC 7162 3.1.8
    found = await run_search(s, args.key, set())
    numbers = [m.uid if by_uid else m.seq for m in found]
    highest = max((m.modseq for m in found), default=0)
    esearch = returns is not None or s.rev2
    if not esearch:
        line = "SEARCH" + "".join(f" {n}" for n in numbers)
        if modseq and numbers:
            line += f" (MODSEQ {highest})"  # RFC 7162 3.1.5
        s.untagged(line)
    else:
        options = set(returns or ())
        if not options & (DATA_OPTIONS | {"SAVE"}):
            options.add("ALL")  # RFC 4731 3.1: no result option means ALL
        if "SAVE" in options:
            # RFC 5182 2.4: with MIN/MAX (and neither ALL nor COUNT) only those are saved.
            saved = found
            if options & {"MIN", "MAX"} and not options & {"ALL", "COUNT"} and found:
                ends = ([found[0]] if "MIN" in options else []) + (
                    [found[-1]] if "MAX" in options else [])
                saved = sorted({m.uid: m for m in ends}.values(), key=lambda m: m.uid)
            sel.saved = [m.uid for m in saved]
        if options & DATA_OPTIONS or not options & {"SAVE"}:
            parts = [f'(TAG "{cmd.tag}")']
            if by_uid:
                parts.append("UID")
            parts += result_items(numbers, options, args.partial, sorted_order=False)
            if modseq and numbers:
                parts.append(f"MODSEQ {_highest_returned(found, options)}")
            s.untagged("ESEARCH " + " ".join(parts))
    if update:
        _open_context(s, cmd.tag, by_uid, args.key, None, [m.uid for m in found])
    await s.poll(allow_expunge=by_uid, force=False)
    s.ok(cmd.tag, f"{cmd.name} completed")


def _highest_returned(found: list[Candidate], options: set[str]) -> int:
    """RFC 4731 3.2 / RFC 7162 3.1.5: MODSEQ is the highest mod-sequence of the messages
    returned, so with MIN and/or MAX alone only of those messages."""
    returned = found
    if not options & {"ALL", "COUNT"} and options & {"MIN", "MAX"}:
        returned = ([found[0]] if "MIN" in options else []) + (
            [found[-1]] if "MAX" in options else [])
    return max(m.modseq for m in returned)


_SORT_COLUMNS = {
    "ARRIVAL": "internal_date", "CC": "cc_sort", "DATE": "sent_date", "FROM": "from_sort",
    "SIZE": "size", "SUBJECT": "base_subject", "TO": "to_sort",
    "DISPLAYFROM": "display_from", "DISPLAYTO": "display_to",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sort_columns(criteria: tuple[tuple[str, bool], ...]) -> set[str]:
    cols = {_SORT_COLUMNS[name] for name, _ in criteria}
    if "sent_date" in cols:
        cols.add("internal_date")
    return cols


def sort_key(criteria: tuple[tuple[str, bool], ...], m: Candidate) -> Any:
    """What orders `m` among the results: each criterion in turn (REVERSE flips one),
    ties in mailbox order (RFC 5256 3)."""
    values = [_sort_value(name, m.row) for name, _ in criteria]

    def compare(a: tuple[list[Any], int], b: tuple[list[Any], int]) -> int:
        for (_, reverse), x, y in zip(criteria, a[0], b[0], strict=True):
            if x != y:
                return (1 if x > y else -1) * (-1 if reverse else 1)
        return (a[1] > b[1]) - (a[1] < b[1])

    return functools.cmp_to_key(compare)((values, m.uid))


def _sort_value(name: str, row: dict[str, Any]) -> Any:
    if name == "DATE":
        # RFC 5256 2.2: the sent date, or the internal date when it is missing/invalid.
        value = row.get("sent_date") or row.get("internal_date") or _EPOCH
        return value.astimezone(UTC) if isinstance(value, datetime) else _EPOCH
    if name == "ARRIVAL":
        value = row.get("internal_date") or _EPOCH
        return value.astimezone(UTC) if isinstance(value, datetime) else _EPOCH
    if name == "SIZE":
        return int(row.get("size") or 0)
    return unicode_casemap(str(row.get(_SORT_COLUMNS[name]) or ""))


def unicode_casemap(text: str) -> str:
    """The i;unicode-casemap key (RFC 5051 2, the SORT default of RFC 5255 4): each
    character titlecased, then decomposed; keys compare by code point, which is the
    UTF-8 octet order. Letters map to upper case, so "[" and "_" sort after them (with
    casefold they sorted before)."""
    if text.isascii():
        return text.upper()
    titled = "".join(t if len(t := c.title()) == 1 else c for c in text)
    return unicodedata.normalize("NFKD", titled)


async def sort(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Sort)
    by_uid = cmd.name == "UID SORT"
    if not _check_charset(s, cmd.tag, args.charset):
        return
    returns = args.returns
    if returns is not None and set(returns) - SORT_RETURN_OPTIONS:
        s.bad(cmd.tag, "Unknown RETURN option")
        return
    update = returns is not None and "UPDATE" in returns
    if update and not _may_update(s, cmd.tag):
        return
    found = await run_search(s, args.key, sort_columns(args.criteria))
    keys = {m.uid: sort_key(args.criteria, m) for m in found}
    ordered = sorted(found, key=lambda m: keys[m.uid])
    numbers = [m.uid if by_uid else m.seq for m in ordered]
    if returns is None:
        s.untagged("SORT" + "".join(f" {n}" for n in numbers))
    else:
        # RFC 5267 3: an extended SORT answers in an ESEARCH response, in sort order.
        options = set(returns)
        if not options & DATA_OPTIONS:
            options.add("ALL")  # RFC 5267 3.3: RETURN () is ALL
        parts = [f'(TAG "{cmd.tag}")', *(["UID"] if by_uid else [])]
        parts += result_items(numbers, options, args.partial, sorted_order=True)
        s.untagged("ESEARCH " + " ".join(parts))
    if update:
        _open_context(s, cmd.tag, by_uid, args.key, args.criteria,
                      [m.uid for m in ordered], keys)
    await s.poll(allow_expunge=by_uid, force=False)
    s.ok(cmd.tag, f"{cmd.name} completed")


_REPLY = re.compile(r"^\s*(?:\[[^\]]*\]\s*)*(?:re|fwd?)\s*(?:\[[^\]]*\])?\s*:", re.I)


async def thread(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Thread)
    by_uid = cmd.name == "UID THREAD"
    if args.algorithm not in ("ORDEREDSUBJECT", "REFERENCES"):
        s.bad(cmd.tag, "Unknown threading algorithm")
        return
    if not _check_charset(s, cmd.tag, args.charset):
        return
    cols = {"message_id", "in_reply_to", "references", "base_subject", "subject",
            "sent_date", "internal_date"}
    found = await run_search(s, args.key, cols)
    messages = []
    for m in found:
        refs = str(m.row.get("references") or "").split()
        if not refs and m.row.get("in_reply_to"):
            refs = [str(m.row["in_reply_to"])]
        messages.append(threads.ThreadMessage(
            number=m.uid if by_uid else m.seq,
            message_id=m.row.get("message_id"),
            references=refs,
            base_subject=str(m.row.get("base_subject") or "").casefold(),
            is_reply=bool(_REPLY.match(str(m.row.get("subject") or ""))),
            date=_sort_value("DATE", m.row),
        ))
    if args.algorithm == "ORDEREDSUBJECT":
        result = threads.ordered_subject(messages)
    else:
        result = threads.references(messages)
    s.untagged("THREAD" + (" " + result if result else ""))
    await s.poll(allow_expunge=by_uid, force=False)
    s.ok(cmd.tag, f"{cmd.name} completed")
