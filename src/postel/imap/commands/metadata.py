"""GETMETADATA and SETMETADATA (RFC 5464 METADATA, METADATA-SERVER) and the METADATA
return option of LIST (RFC 9590 LIST-METADATA).

Mailbox entries, /private and /shared alike, are the mailbox owner's (Postel shares no
mailbox between accounts). Server entries (mailbox "") are the account's own under
/private and the whole server's under /shared, which only an admin may change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from postel.imap.proto.commands import Command
from postel.imap.proto.metadata import PREFIXES, GetMetadata, MetadataOptions, SetMetadata
from postel.imap.proto.metadata import metadata_response as response
from postel.store.errors import LimitReached, NotFound
from postel.store.model import Mailbox, Role

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

SERVER = ""  # RFC 5464 4.2: the empty mailbox name stands for the server
PRIVATE = "/private"


def _within_depth(name: str, wanted: str, depth: int | None) -> bool:
    """RFC 5464 4.2.2 DEPTH: 0 the entry itself, 1 also its children, infinity all below."""
    if name == wanted:
        return True
    if not name.startswith(wanted + "/"):
        return False
    return depth is None or (depth == 1 and "/" not in name[len(wanted) + 1:])


def visible(stored: Mapping[str, bytes], private: bool) -> dict[str, bytes]:
    """The entries a client may see: /private ones only where they are kept at all."""
    if private:
        return dict(stored)
    return {n: v for n, v in stored.items() if not n.startswith(PRIVATE + "/")}


class Selection:
    """What one GETMETADATA (or one LIST-METADATA mailbox) answers from the stored
    entries, and the biggest value MAXSIZE left out (RFC 5464 4.2.1 LONGENTRIES)."""

    def __init__(self, entries: tuple[str, ...], options: MetadataOptions,
                 private: bool) -> None:
        self.entries = entries
        self.options = options
        self.private = private
        self.longest_omitted = 0

    @property
    def descendants(self) -> bool:
        return self.options.depth != 0

    def pick(self, stored: Mapping[str, bytes]) -> list[tuple[str, bytes | None]]:
        depth, maxsize = self.options.depth, self.options.maxsize
        out: dict[str, bytes | None] = {}
        for wanted in self.entries:
            names = [n for n in sorted(stored) if _within_depth(n, wanted, depth)]
            if not names and depth == 0 and wanted not in PREFIXES:
                # A requested entry without a value reads as NIL, as after SETMETADATA
                # removed it with NIL (RFC 5464 4.3).
                out.setdefault(wanted, None)
            for name in names:
                value = stored[name]
                if maxsize is not None and len(value) > maxsize:
                    self.longest_omitted = max(self.longest_omitted, len(value))
                else:
                    out[name] = value
        return list(out.items())

    def visible(self, stored: dict[str, bytes]) -> dict[str, bytes]:
        return visible(stored, self.private)

    def ok_code(self) -> str | None:
        if self.longest_omitted:
            return f"METADATA LONGENTRIES {self.longest_omitted}"  # RFC 5464 4.2.1
        return None


async def _target(s: ImapSession, tag: str, name: str) -> tuple[bool, Mailbox | None]:
    """(found, mailbox); found with no mailbox is the server. Says NO when not found."""
    if name == SERVER:
        return True, None
    box = await s.run(s.store.mail.get_mailbox, s.account_id(), name)
    if box is None:
        s.no(tag, "No such mailbox", "NONEXISTENT")
    return box is not None, box


async def getmetadata(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, GetMetadata)
    found, box = await _target(s, cmd.tag, args.mailbox)
    if not found:
        return
    selection = Selection(args.entries, args.options, s.config.metadata_private)
    stored = await s.run(s.store.metadata.get_entries, s.account_id(),
                         box.id if box else None, list(args.entries),
                         descendants=selection.descendants)
    values = selection.pick(selection.visible(stored))
    if values:
        s.untagged(response(s.mailbox_name(args.mailbox), values))
    s.ok(cmd.tag, "GETMETADATA completed", selection.ok_code())


def _refusal(s: ImapSession, box: Mailbox | None,
             values: Iterable[tuple[str, bytes | None]]) -> tuple[str, str] | None:
    """(text, code) when SETMETADATA must set nothing (RFC 5464 4.3)."""
    limit = s.config.metadata_max_value_size
    for name, value in values:
        if name.startswith(PRIVATE + "/") and not s.config.metadata_private:
            return "Private entries are not kept here", "METADATA NOPRIVATE"
        if value is not None and len(value) > limit:
            return "Value too large", f"METADATA MAXSIZE {limit}"
        account = s.account
        if box is None and not name.startswith(PRIVATE + "/") and (
            account is None or account.role is not Role.ADMIN
        ):
            # The server's shared entries are read by every user: only an admin writes.
            return "Only an administrator may change shared server entries", "NOPERM"
    return None


async def setmetadata(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, SetMetadata)
    found, box = await _target(s, cmd.tag, args.mailbox)
    if not found:
        return
    refusal = _refusal(s, box, args.values)
    if refusal:
        s.no(cmd.tag, *refusal)
        return
    try:
        await s.run(s.store.metadata.set_entries, s.account_id(), box.id if box else None,
                    dict(args.values), max_entries=s.config.metadata_max_entries)
    except LimitReached:
        s.no(cmd.tag, "Too many entries", "METADATA TOOMANY")  # RFC 5464 4.3
        return
    except NotFound:
        s.no(cmd.tag, "No such mailbox", "NONEXISTENT")
        return
    s.ok(cmd.tag, "SETMETADATA completed")


class ListMetadata:
    """RFC 9590: the METADATA response after each listed mailbox's LIST response."""

    def __init__(self, s: ImapSession, entries: tuple[str, ...],
                 options: MetadataOptions) -> None:
        self.session = s
        self.selection = Selection(entries, options, s.config.metadata_private)
        self.stored: dict[int, dict[str, bytes]] = {}

    async def load(self, boxes: Iterable[Mailbox]) -> None:
        s = self.session
        self.stored = await s.run(
            s.store.metadata.entries_of_mailboxes, [b.id for b in boxes],
            list(self.selection.entries), descendants=self.selection.descendants,
        )

    def line(self, box: Mailbox) -> bytes | None:
        stored = self.selection.visible(self.stored.get(box.id, {}))
        values = self.selection.pick(stored)
        if not values:
            return None
        return response(self.session.mailbox_name(box.name), values)

    def ok_code(self) -> str | None:
        return self.selection.ok_code()
