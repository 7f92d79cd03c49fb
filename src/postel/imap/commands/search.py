"""SEARCH, SORT and THREAD with their UID forms (RFC 9051 6.4.4, RFC 4731 ESEARCH,
RFC 5182 SEARCHRES, RFC 5256 SORT/THREAD, RFC 5957 SORT=DISPLAY, RFC 7162 MODSEQ)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from postel.imap import threading as threads
from postel.imap.bodies import ByteRange
from postel.imap.proto.commands import Command, Search, Sort, Thread
from postel.imap.proto.searchkeys import SearchKey
from postel.imap.proto.sequence import SequenceSet
from postel.imap.search_eval import Candidate, Evaluator, decode_text, needed_columns, text_parts
from postel.mail.mime import MimePart

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

CHARSETS = ("UTF-8", "US-ASCII")
RETURN_OPTIONS = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}


def _uses_modseq(key: SearchKey) -> bool:
    if key.op == "MODSEQ":
        return True
    return any(isinstance(a, SearchKey) and _uses_modseq(a) for a in key.args)


def _uses_saved(key: SearchKey) -> bool:
    if key.op in ("SEQ", "UID"):
        seq = key.args[0]
        return isinstance(seq, SequenceSet) and seq.saved
    return any(isinstance(a, SearchKey) and _uses_saved(a) for a in key.args)


async def run_search(s: ImapSession, key: SearchKey, extra: set[str]) -> list[Candidate]:
    """The messages matching `key`, in sequence order, with `extra` columns loaded."""
    sel = s.selected
    assert sel is not None
    cols = needed_columns(key) | extra
    rows: dict[int, dict[str, Any]] = {}
    if cols:
        rows = await s.run(s.store.mail.message_fields, sel.mailbox_id, None, sorted(cols))
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
    ]

    def evaluate() -> list[Candidate]:
        return [m for m in candidates if evaluator.match(key, m)]

    return await s.run(evaluate)


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
    if returns is not None and set(returns) - RETURN_OPTIONS:
        s.bad(cmd.tag, "Unknown RETURN option")
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
        options = set(returns or ()) or {"ALL"}
        if "SAVE" in options:
            # RFC 5182 2.4: with MIN/MAX (and neither ALL nor COUNT) only those are saved.
            saved = found
            if options & {"MIN", "MAX"} and not options & {"ALL", "COUNT"} and found:
                ends = ([found[0]] if "MIN" in options else []) + (
                    [found[-1]] if "MAX" in options else [])
                saved = sorted({m.uid: m for m in ends}.values(), key=lambda m: m.uid)
            sel.saved = [m.uid for m in saved]
        if options != {"SAVE"}:
            parts = [f'(TAG "{cmd.tag}")']
            if by_uid:
                parts.append("UID")
            if numbers:
                if "MIN" in options:
                    parts.append(f"MIN {min(numbers)}")
                if "MAX" in options:
                    parts.append(f"MAX {max(numbers)}")
                if "ALL" in options:
                    parts.append(f"ALL {SequenceSet.of(numbers)}")
            if "COUNT" in options:
                parts.append(f"COUNT {len(numbers)}")
            if modseq and numbers:
                parts.append(f"MODSEQ {_highest_returned(found, options)}")
            s.untagged("ESEARCH " + " ".join(parts))
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
    cols = {_SORT_COLUMNS[name] for name, _ in args.criteria}
    if "sent_date" in cols:
        cols.add("internal_date")
    found = await run_search(s, args.key, cols)
    # Stable sorts from the last key to the first; ties keep sequence order (RFC 5256 3).
    ordered = list(found)
    for name, reverse in reversed(args.criteria):

        def by(m: Candidate, n: str = name) -> Any:
            return _sort_value(n, m.row)

        ordered.sort(key=by, reverse=reverse)
    numbers = [m.uid if by_uid else m.seq for m in ordered]
    s.untagged("SORT" + "".join(f" {n}" for n in numbers))
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
