"""Mailbox commands: LIST, LSUB, STATUS, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
GETQUOTA, GETQUOTAROOT (RFC 9051 6.3; RFC 5258 LIST-EXTENDED; RFC 5819 LIST-STATUS;
RFC 6154 SPECIAL-USE; RFC 3348 CHILDREN; RFC 9208 QUOTA; RFC 8438 STATUS=SIZE)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from postel.imap.commands.metadata import ListMetadata
from postel.imap.objectid import mailbox_id
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, Create, ListCmd, MailboxArg, QuotaRoot, Rename
from postel.imap.proto.commands import Status as StatusArgs
from postel.imap.status_items import STATUS_ITEMS, Source, StatusData, sources, status_values
from postel.store.errors import AlreadyExists, NotFound, StoreError
from postel.store.model import Mailbox

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

DELIMITER = "/"
SPECIAL_USES = ("\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash")


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """RFC 9051 6.3.9: "*" matches anything, "%" anything but the delimiter. INBOX is
    matched case-insensitively."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def matches(regex: re.Pattern[str], pattern: str, name: str) -> bool:
    # INBOX is case-insensitive (RFC 9051 5.1): fold an INBOX prefix of the pattern.
    if (name == "INBOX" or name.startswith("INBOX/")) and pattern[:5].upper() == "INBOX":
        regex = pattern_regex("INBOX" + pattern[5:])
    return bool(regex.match(name))


def _parents(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


async def _status_items(s: ImapSession, box: Mailbox, items: tuple[str, ...]) -> bytes | None:
    if any(i not in STATUS_ITEMS for i in items):
        return None
    needed = sources(items)
    data = StatusData(
        box, s.config.max_literal_size,
        counts=await s.run(s.store.mail.mailbox_counts, box.id)
        if Source.COUNTS in needed else None,
        messages=await s.run(s.store.mail.list_messages, box.id)
        if Source.MESSAGES in needed else None,
    )
    return r.status(s.mailbox_name(box.name), status_values(data, items))


async def status(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, StatusArgs)
    box = await s.run(s.store.mail.get_mailbox, s.account_id(), args.mailbox)
    if box is None:
        s.no(cmd.tag, "No such mailbox", "NONEXISTENT")
        return
    if "HIGHESTMODSEQ" in args.items:
        s.enable_condstore()  # RFC 7162 3.1.8
    line = await _status_items(s, box, args.items)
    if line is None:
        s.bad(cmd.tag, "Unknown STATUS item")
        return
    s.untagged(line)
    s.ok(cmd.tag, "STATUS completed")


async def list_(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, ListCmd)
    selection = set(args.selection)
    returns = set(args.returns)
    if selection - {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"} or returns - {
        "SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE",
        "METADATA",  # RFC 9590
    }:
        s.bad(cmd.tag, "Unknown LIST option")
        return
    if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
        s.bad(cmd.tag, "RECURSIVEMATCH needs another selection option")  # RFC 5258 3
        return
    if len(args.patterns) == 1 and args.patterns[0] == "" and not args.lsub:
        # RFC 9051 6.3.9: an empty pattern asks for the delimiter and root.
        s.untagged(b'LIST (\\Noselect) "/" ""')
        s.ok(cmd.tag, "LIST completed")
        return
    boxes = await s.run(s.store.mail.list_mailboxes, s.account_id())
    subscribed = await s.run(s.store.mail.subscriptions, s.account_id())
    by_name = {b.name: b for b in boxes}
    metadata = None
    if "METADATA" in returns:  # RFC 9590 3: entries of every listed mailbox, one query
        metadata = ListMetadata(s, args.metadata_entries, args.metadata_options)
        await metadata.load(boxes)
    implied: set[str] = set()
    for name in by_name:
        implied.update(p for p in _parents(name) if p not in by_name)
    has_children = {p for n in set(by_name) | implied for p in _parents(n)}
    regexes = [(pattern_regex(args.reference + p), args.reference + p) for p in args.patterns]
    want_subscribed = "SUBSCRIBED" in selection or args.lsub
    show_subscribed = want_subscribed or "SUBSCRIBED" in returns
    listed = set(by_name) | implied
    if want_subscribed:
        # RFC 5258 3.1: a subscribed name is listed even when its mailbox is gone.
        listed |= subscribed
    everything = sorted(listed, key=lambda n: (n != "INBOX", n))

    def matching(name: str) -> bool:
        return any(matches(rx, pat, name) for rx, pat in regexes)

    subscribed_parents = {p for n in subscribed for p in _parents(n)}
    # RFC 5258 3.5: CHILDINFO marks a parent with a subscribed descendant that this
    # LIST does not return itself (with "*" the descendant is returned, so no CHILDINFO).
    childinfo = {p for n in subscribed if not matching(n) for p in _parents(n)}
    recursive = "RECURSIVEMATCH" in selection and want_subscribed
    verb = "LSUB" if args.lsub else "LIST"
    for name in everything:
        if not matching(name):
            continue
        box = by_name.get(name)
        attrs: list[str] = []
        extra = b""
        if recursive and name in childinfo:
            extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
        if want_subscribed and name not in subscribed and not extra:
            if args.lsub and name in subscribed_parents and any(
                "%" in p for _, p in regexes
            ):
                attrs.append("\\Noselect")  # RFC 3501 6.3.9: LSUB of a parent
            else:
                continue
        if "SPECIAL-USE" in selection and (box is None or not box.special_use):
            continue
        if box is None and not args.lsub:
            attrs += ["\\NonExistent", "\\Noselect"]
        if not args.lsub:
            attrs.append("\\HasChildren" if name in has_children else "\\HasNoChildren")
        if show_subscribed and name in subscribed and not args.lsub:
            attrs.append("\\Subscribed")
        if box is not None and box.special_use and not args.lsub and (
            not args.extended or "SPECIAL-USE" in returns or "SPECIAL-USE" in selection
            or not returns
        ):
            attrs.append(box.special_use)
        s.untagged(
            f"{verb} ({' '.join(attrs)}) \"/\" ".encode() + s.mailbox_name(name) + extra
        )
        if "STATUS" in returns and box is not None:
            line = await _status_items(s, box, args.status_items)
            if line is None:
                s.bad(cmd.tag, "Unknown STATUS item")
                return
            s.untagged(line)
        if metadata is not None and box is not None:
            entries = metadata.line(box)  # RFC 9590 3: after the mailbox's LIST response
            if entries is not None:
                s.untagged(entries)
    s.ok(cmd.tag, f"{verb} completed", metadata.ok_code() if metadata else None)


MAX_NAME_OCTETS = 1000  # mailboxes.name is String(1000)


def _valid_name(name: str) -> tuple[str, str] | None:
    """(text, response code) when a new mailbox name is not acceptable."""
    if len(name.encode("utf-8")) > MAX_NAME_OCTETS:
        return "Mailbox name too long", "LIMIT"
    if not name or "*" in name or "%" in name or "//" in name or name.startswith("/"):
        return "Invalid mailbox name", "CANNOT"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "Invalid mailbox name", "CANNOT"
    return None


async def create(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Create)
    name = args.mailbox.rstrip(DELIMITER)  # RFC 9051 6.3.4: a trailing delimiter is ok
    problem = _valid_name(name)
    if problem:
        s.no(cmd.tag, *problem)
        return
    if name == "INBOX":
        s.no(cmd.tag, "INBOX already exists", "ALREADYEXISTS")
        return
    uses = [u for u in args.special_use]
    lookup = {u.lower(): u for u in SPECIAL_USES}
    if len(uses) > 1 or any(u.lower() not in lookup for u in uses):
        s.no(cmd.tag, "Unsupported special-use attribute", "USEATTR")  # RFC 6154 3
        return
    special = lookup[uses[0].lower()] if uses else None
    account = s.account_id()
    existing = {box.name for box in await s.run(s.store.mail.list_mailboxes, account)}
    adding = [p for p in _parents(name) if p not in existing] + [name]
    if len(existing) + len(adding) > s.config.max_mailboxes:
        # RFC 9051 7.1: LIMIT, "a limit ... on the number of mailboxes" was reached.
        s.no(cmd.tag, f"At most {s.config.max_mailboxes} mailboxes per account", "LIMIT")
        return
    try:
        # RFC 9051 6.3.4: create the superior names a client did not create itself.
        for parent in _parents(name):
            if await s.run(s.store.mail.get_mailbox, account, parent) is None:
                await s.run(s.store.mail.create_mailbox, account, parent)
        box = await s.run(s.store.mail.create_mailbox, account, name, special)
    except AlreadyExists:
        s.no(cmd.tag, "Mailbox already exists", "ALREADYEXISTS")
        return
    s.ok(cmd.tag, "CREATE completed", f"MAILBOXID ({mailbox_id(box)})")  # RFC 8474 4.1


async def delete(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, MailboxArg)
    if args.mailbox == "INBOX":
        s.no(cmd.tag, "INBOX cannot be deleted", "CANNOT")
        return
    if s.selected is not None and s.selected.name == args.mailbox:
        s.no(cmd.tag, "Mailbox is selected; UNSELECT it first", "INUSE")
        return
    try:
        await s.run(s.store.mail.delete_mailbox, s.account_id(), args.mailbox)
    except NotFound:
        s.no(cmd.tag, "No such mailbox", "NONEXISTENT")
        return
    except StoreError as exc:
        s.no(cmd.tag, str(exc), "CANNOT")
        return
    s.ok(cmd.tag, "DELETE completed")


async def rename(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, Rename)
    new = args.new.rstrip(DELIMITER)
    problem = _valid_name(new)
    if problem:
        s.no(cmd.tag, *problem)
        return
    # RENAME INBOX moves its messages, so INBOX may be renamed to one of its children.
    if new == args.old or (new.startswith(args.old + DELIMITER) and args.old != "INBOX"):
        s.no(cmd.tag, "Cannot rename a mailbox into itself", "CANNOT")
        return
    account = s.account_id()
    try:
        await s.run(s.store.mail.rename_mailbox, account, args.old, new)
        for parent in _parents(new):
            if await s.run(s.store.mail.get_mailbox, account, parent) is None:
                await s.run(s.store.mail.create_mailbox, account, parent)
    except NotFound:
        s.no(cmd.tag, "No such mailbox", "NONEXISTENT")
        return
    except AlreadyExists:
        s.no(cmd.tag, "Target mailbox already exists", "ALREADYEXISTS")
        return
    if s.selected is not None and (
        s.selected.name == args.old or s.selected.name.startswith(args.old + DELIMITER)
    ) and args.old != "INBOX":
        s.selected.name = new + s.selected.name[len(args.old):]
    s.ok(cmd.tag, "RENAME completed")


async def subscribe(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, MailboxArg)
    on = cmd.name == "SUBSCRIBE"
    found = await s.run(s.store.mail.set_subscribed, s.account_id(), args.mailbox, on)
    if not found:
        s.no(cmd.tag, "No such mailbox", "NONEXISTENT")
        return
    s.ok(cmd.tag, f"{cmd.name} completed")


async def _quota(s: ImapSession) -> bytes | None:
    account = await s.run(s.store.directory.get_account_by_id, s.account_id())
    if account is None or not account.quota_bytes:
        return None
    used = await s.run(s.store.directory.account_usage, account.id)
    # RFC 9208 5.1: STORAGE is in units of 1024 octets.
    return f'QUOTA "" (STORAGE {used // 1024} {account.quota_bytes // 1024})'.encode()


async def getquotaroot(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, MailboxArg)
    box = await s.run(s.store.mail.get_mailbox, s.account_id(), args.mailbox)
    if box is None:
        s.no(cmd.tag, "No such mailbox", "NONEXISTENT")
        return
    quota = await _quota(s)
    s.untagged(b"QUOTAROOT " + s.mailbox_name(box.name) + (b' ""' if quota else b""))
    if quota:
        s.untagged(quota)
    s.ok(cmd.tag, "GETQUOTAROOT completed")


async def getquota(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, QuotaRoot)
    quota = await _quota(s)
    if args.root != "" or quota is None:
        s.no(cmd.tag, "No such quota root", "NONEXISTENT")
        return
    s.untagged(quota)
    s.ok(cmd.tag, "GETQUOTA completed")

