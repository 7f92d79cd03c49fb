"""Every IMAP command Postel answers, in one literal table (mox's ``commands`` map).

The session looks a command up here and, before calling the handler, applies what its
row says: the states it is allowed in (RFC 9051 3, 6), the sequence-number check, the
read-write check. A command missing here is answered BAD "not supported"; one given in
the wrong state BAD "not allowed in this state".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from postel.imap.commands import (
    append,
    auth,
    contexts,
    copy,
    fetch,
    mailboxes,
    notify,
    replace,
    search,
    select,
    store,
    urlauth,
)
from postel.imap.commands import metadata as metadata_commands
from postel.imap.proto.commands import Command
from postel.imap.state import ANY, AUTH, NOT_AUTH, SELECTED, State

if TYPE_CHECKING:
    from postel.imap.session import ImapSession

Handler = Callable[["ImapSession", Command], Awaitable[None]]


@dataclass(frozen=True)
class CommandSpec:
    handler: Handler
    states: frozenset[State]
    # The handler reports mailbox changes itself, at the moment its rules allow (RFC 9051
    # 7.4.1: no EXPUNGE during FETCH/STORE/SEARCH by sequence number), or must not report
    # them (LOGOUT, the commands that leave the mailbox). The others get the pending
    # changes before they run.
    reports_changes: bool = False
    # The arguments name messages by sequence number, which must exist (RFC 9051 6.4).
    by_sequence_number: bool = False
    # The command changes the selected mailbox, so EXAMINE's read-only one refuses it.
    needs_read_write: bool = False



COMMANDS: Mapping[str, CommandSpec] = MappingProxyType({
    # RFC 9051 6.1: any state.
    "CAPABILITY": CommandSpec(auth.capability, ANY),
    "NOOP": CommandSpec(auth.noop, ANY, reports_changes=True),
    "LOGOUT": CommandSpec(auth.logout, ANY, reports_changes=True),
    "ID": CommandSpec(auth.id_, ANY),  # RFC 2971
    # RFC 9051 6.2: not authenticated.
    "STARTTLS": CommandSpec(auth.starttls, NOT_AUTH),
    "LOGIN": CommandSpec(auth.login, NOT_AUTH),
    "AUTHENTICATE": CommandSpec(auth.authenticate, NOT_AUTH),
    # RFC 9051 6.3: authenticated (and selected).
    "ENABLE": CommandSpec(auth.enable, AUTH),  # RFC 5161
    "NAMESPACE": CommandSpec(auth.namespace, AUTH),  # RFC 2342
    "COMPRESS": CommandSpec(auth.compress, AUTH),  # RFC 4978
    "SELECT": CommandSpec(select.select, AUTH, reports_changes=True),
    "EXAMINE": CommandSpec(select.select, AUTH, reports_changes=True),
    "CREATE": CommandSpec(mailboxes.create, AUTH),
    "DELETE": CommandSpec(mailboxes.delete, AUTH),
    "RENAME": CommandSpec(mailboxes.rename, AUTH),
    "SUBSCRIBE": CommandSpec(mailboxes.subscribe, AUTH),
    "UNSUBSCRIBE": CommandSpec(mailboxes.subscribe, AUTH),
    "LIST": CommandSpec(mailboxes.list_, AUTH),
    "LSUB": CommandSpec(mailboxes.list_, AUTH),
    "STATUS": CommandSpec(mailboxes.status, AUTH),
    "GETQUOTA": CommandSpec(mailboxes.getquota, AUTH),  # RFC 9208
    "GETQUOTAROOT": CommandSpec(mailboxes.getquotaroot, AUTH),
    "GETMETADATA": CommandSpec(metadata_commands.getmetadata, AUTH),  # RFC 5464
    "SETMETADATA": CommandSpec(metadata_commands.setmetadata, AUTH),
    "APPEND": CommandSpec(append.append, AUTH, reports_changes=True),
    "IDLE": CommandSpec(select.idle, AUTH, reports_changes=True),  # RFC 2177
    "NOTIFY": CommandSpec(notify.notify, AUTH, reports_changes=True),  # RFC 5465
    "GENURLAUTH": CommandSpec(urlauth.genurlauth, AUTH),  # RFC 4467
    "RESETKEY": CommandSpec(urlauth.resetkey, AUTH),
    "URLFETCH": CommandSpec(urlauth.urlfetch, AUTH),
    # RFC 9051 6.4: selected.
    "CLOSE": CommandSpec(select.close, SELECTED, reports_changes=True),
    "UNSELECT": CommandSpec(select.unselect, SELECTED, reports_changes=True),  # RFC 3691
    "CHECK": CommandSpec(select.check, SELECTED, reports_changes=True),
    "EXPUNGE": CommandSpec(select.expunge, SELECTED, reports_changes=True,
                           needs_read_write=True),
    "UID EXPUNGE": CommandSpec(select.expunge, SELECTED, reports_changes=True,
                               needs_read_write=True),  # RFC 4315
    "SEARCH": CommandSpec(search.search, SELECTED, reports_changes=True),
    "UID SEARCH": CommandSpec(search.search, SELECTED, reports_changes=True),
    "SORT": CommandSpec(search.sort, SELECTED, reports_changes=True),  # RFC 5256
    "UID SORT": CommandSpec(search.sort, SELECTED, reports_changes=True),
    "THREAD": CommandSpec(search.thread, SELECTED, reports_changes=True),
    "UID THREAD": CommandSpec(search.thread, SELECTED, reports_changes=True),
    "CANCELUPDATE": CommandSpec(contexts.cancelupdate, SELECTED),  # RFC 5267 4.3.5
    "FETCH": CommandSpec(fetch.fetch, SELECTED, reports_changes=True,
                         by_sequence_number=True),
    "UID FETCH": CommandSpec(fetch.fetch, SELECTED, reports_changes=True),
    "STORE": CommandSpec(store.store, SELECTED, reports_changes=True,
                         by_sequence_number=True, needs_read_write=True),
    "UID STORE": CommandSpec(store.store, SELECTED, reports_changes=True,
                             needs_read_write=True),
    "COPY": CommandSpec(copy.copy, SELECTED, reports_changes=True, by_sequence_number=True),
    "UID COPY": CommandSpec(copy.copy, SELECTED, reports_changes=True),
    "MOVE": CommandSpec(copy.copy, SELECTED, reports_changes=True,  # RFC 6851
                        by_sequence_number=True, needs_read_write=True),
    "UID MOVE": CommandSpec(copy.copy, SELECTED, reports_changes=True,
                            needs_read_write=True),
    # RFC 8508: the handler checks its sequence number itself.
    "REPLACE": CommandSpec(replace.replace, SELECTED, reports_changes=True,
                           needs_read_write=True),
    "UID REPLACE": CommandSpec(replace.replace, SELECTED, reports_changes=True,
                               needs_read_write=True),
})
