"""Commands: one parse function per command name, each returning typed arguments.

``parse_command`` turns a framed command into a ``Command``; any syntax error becomes a
``ParseError`` carrying the tag, which the session answers with BAD (RFC 9051 7.1.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from postel.imap.proto.cursor import Cursor, ParseError, Value
from postel.imap.proto.fetchatt import FetchAtt, parse_fetch_atts
from postel.imap.proto.metadata import (
    GetMetadata,
    MetadataOptions,
    SetMetadata,
    parse_getmetadata,
    parse_list_metadata,
    parse_setmetadata,
)
from postel.imap.proto.notify import Notify, parse_notify
from postel.imap.proto.receiver import CommandBytes, Literal
from postel.imap.proto.searchkeys import SearchKey, parse_search_keys
from postel.imap.proto.searchreturn import PartialRange, parse_return_options
from postel.imap.proto.sequence import SequenceSet


class CommandError(ParseError):
    def __init__(self, tag: str, message: str) -> None:
        super().__init__(message)
        self.tag = tag


@dataclass(frozen=True)
class NoArgs:
    pass


@dataclass(frozen=True)
class Login:
    username: str
    password: str


@dataclass(frozen=True)
class Authenticate:
    mechanism: str
    initial: str | None


@dataclass(frozen=True)
class Id:
    params: Value


@dataclass(frozen=True)
class Enable:
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class QresyncParams:
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select:
    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True)
class MailboxArg:
    mailbox: str


@dataclass(frozen=True)
class Create:
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True)
class ListCmd:
    reference: str
    patterns: tuple[str, ...]
    selection: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()
    status_items: tuple[str, ...] = ()
    lsub: bool = False
    extended: bool = False
    # RFC 9590 RETURN (METADATA (entries)): the entries and their GETMETADATA options.
    metadata_entries: tuple[str, ...] = ()
    metadata_options: MetadataOptions = field(default_factory=MetadataOptions)


@dataclass(frozen=True)
class Status:
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class CatUrl:
    """RFC 4469 5: a CATENATE part that names a message or section by IMAP URL."""

    url: str


CatPart = Literal | CatUrl  # a TEXT literal, or a URL


@dataclass
class AppendMessage:
    flags: list[str]
    date: datetime | None
    literal: Literal  # for CATENATE, empty until the handler has joined the parts
    catenate: tuple[CatPart, ...] = ()  # RFC 4469


@dataclass
class Append:
    mailbox: str
    messages: list[AppendMessage] = field(default_factory=list)


@dataclass
class Replace:
    """RFC 8508 6: REPLACE seq-number mailbox [flags] [date-time] literal (UID REPLACE:
    a UID)."""

    number: SequenceSet  # exactly one number, or "*"
    mailbox: str
    message: AppendMessage


@dataclass(frozen=True)
class Fetch:
    sequence: SequenceSet
    atts: tuple[FetchAtt, ...]
    changed_since: int | None = None
    vanished: bool = False


@dataclass(frozen=True)
class Store:
    sequence: SequenceSet
    mode: str  # replace | add | remove
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None


@dataclass(frozen=True)
class Search:
    key: SearchKey
    returns: tuple[str, ...] | None = None  # None: plain SEARCH; () = ESEARCH default ALL
    charset: str | None = None
    partial: PartialRange | None = None  # RETURN (PARTIAL m:n), RFC 5267 4.4 / RFC 9394


@dataclass(frozen=True)
class Sort:
    criteria: tuple[tuple[str, bool], ...]  # (key, reverse)
    key: SearchKey
    charset: str
    returns: tuple[str, ...] | None = None  # RFC 5267 3 ESORT: None is a plain SORT
    partial: PartialRange | None = None


@dataclass(frozen=True)
class CancelUpdate:
    tags: tuple[str, ...]  # RFC 5267 4.3.5


@dataclass(frozen=True)
class Thread:
    algorithm: str
    key: SearchKey
    charset: str


@dataclass(frozen=True)
class CopyMove:
    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True)
class Expunge:
    uids: SequenceSet | None = None


@dataclass(frozen=True)
class QuotaRoot:
    root: str


@dataclass(frozen=True)
class Compress:
    mechanism: str


@dataclass(frozen=True)
class GenUrlAuth:
    """RFC 4467 9: GENURLAUTH 1*(SP url-rump SP mechanism)."""

    requests: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ResetKey:
    """RFC 4467 9: RESETKEY [SP mailbox *(SP mechanism)]; no mailbox: every mailbox."""

    mailbox: str | None
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True)
class UrlFetch:
    """RFC 4467 9: URLFETCH 1*(SP url-full)."""

    urls: tuple[str, ...]


Args = (
    NoArgs | Login | Authenticate | Id | Enable | Select | MailboxArg | Create | Rename
    | ListCmd | Status | Append | Fetch | Store | Search | Sort | Thread | CopyMove | Expunge
    | QuotaRoot | Compress | Replace | CancelUpdate
    | GetMetadata | SetMetadata | Notify | GenUrlAuth | ResetKey | UrlFetch
)


@dataclass
class Command:
    tag: str
    name: str  # upper case; UID commands are "UID FETCH", "UID STORE", ...
    args: Args


Parser = Callable[[Cursor], Args]


def _none(c: Cursor) -> Args:
    return NoArgs()


def _login(c: Cursor) -> Args:
    c.sp()
    user = c.astring()
    c.sp()
    return Login(user, c.astring())


def _authenticate(c: Cursor) -> Args:
    c.sp()
    mech = c.atom().upper()
    initial = None
    if c.maybe_sp():  # RFC 4959 SASL-IR
        seg = c._seg
        initial = seg[c.pos :].decode("ascii", "replace")
        c.pos = len(seg)
    return Authenticate(mech, initial)


def _id(c: Cursor) -> Args:
    c.sp()
    return Id(c.value())


def _enable(c: Cursor) -> Args:
    caps = []
    while c.maybe_sp():
        caps.append(c.atom().upper())
    if not caps:
        raise ParseError("ENABLE needs a capability")
    return Enable(tuple(caps))


def _select(c: Cursor) -> Args:
    c.sp()
    name = c.mailbox()
    condstore, qresync = False, None
    if c.maybe_sp():
        c.expect(b"(")
        first = True
        while not c.accept(b")"):
            if not first:
                c.sp()
            first = False
            word = c.atom().upper()
            if word == "CONDSTORE":
                condstore = True
            elif word == "QRESYNC":
                c.sp()
                qresync = _qresync(c)
            else:
                raise ParseError(f"unknown SELECT parameter {word}")
    return Select(name, condstore, qresync)


def _qresync(c: Cursor) -> QresyncParams:
    # RFC 7162 3.2.5: (uidvalidity mod-sequence-value [known-uids [seq-match-data]])
    c.expect(b"(")
    uidvalidity = c.nz_number()
    c.sp()
    modseq = c.number()
    known = None
    seq_match = None
    if c.maybe_sp():
        if c.peek() != ord("("):
            known = c.sequence_set()
            c.maybe_sp()
        if c.accept(b"("):
            seqs = c.sequence_set()
            c.sp()
            uids = c.sequence_set()
            c.expect(b")")
            seq_match = (seqs, uids)
    c.expect(b")")
    return QresyncParams(uidvalidity, modseq, known, seq_match)


def _mailbox(c: Cursor) -> Args:
    c.sp()
    return MailboxArg(c.mailbox())


def _create(c: Cursor) -> Args:
    c.sp()
    name = c.mailbox()
    uses: list[str] = []
    if c.maybe_sp():
        # RFC 6154 3: CREATE name (USE (\Sent))
        c.expect(b"(")
        c.expect(b"USE")
        c.sp()
        uses = c.flag_list()
        c.expect(b")")
    return Create(name, tuple(uses))


def _rename(c: Cursor) -> Args:
    c.sp()
    old = c.mailbox()
    c.sp()
    return Rename(old, c.mailbox())


def _atom_list(c: Cursor) -> list[str]:
    c.expect(b"(")
    out: list[str] = []
    while not c.accept(b")"):
        if out:
            c.sp()
        out.append(c.atom().upper())
    return out


def _list(c: Cursor, lsub: bool = False) -> Args:
    c.sp()
    selection: list[str] = []
    extended = False
    if not lsub and c.peek() == ord("("):
        selection = _atom_list(c)  # RFC 5258 3: list-select-opts
        extended = True
        c.sp()
    reference = c.mailbox_text()
    c.sp()
    patterns: list[str] = []
    if not lsub and c.accept(b"("):
        extended = True
        while not c.accept(b")"):
            if patterns:
                c.sp()
            patterns.append(c.mailbox_text(pattern=True))
    else:
        patterns.append(c.mailbox_text(pattern=True))
    returns: list[str] = []
    status_items: list[str] = []
    metadata: tuple[tuple[str, ...], MetadataOptions] = ((), MetadataOptions())
    if not lsub and c.maybe_sp():
        extended = True
        c.expect(b"RETURN")
        c.sp()
        c.expect(b"(")
        while not c.accept(b")"):
            if returns:
                c.sp()
            word = c.atom().upper()
            returns.append(word)
            if word == "STATUS":  # RFC 5819 LIST-STATUS
                c.sp()
                status_items = _atom_list(c)
            elif word == "METADATA":  # RFC 9590 LIST-METADATA
                c.sp()
                metadata = parse_list_metadata(c)
    return ListCmd(reference, tuple(patterns), tuple(selection), tuple(returns),
                   tuple(status_items), lsub, extended, *metadata)


def _lsub(c: Cursor) -> Args:
    return _list(c, lsub=True)


def _status(c: Cursor) -> Args:
    c.sp()
    name = c.mailbox()
    c.sp()
    items = _atom_list(c)
    if not items:
        raise ParseError("STATUS needs items")
    return Status(name, tuple(items))


def parse_date_time(text: str) -> datetime:
    # RFC 9051 9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be space-padded).
    try:
        return datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        raise ParseError(f"bad date-time {text!r}") from None


def _append(c: Cursor) -> Args:
    c.sp()
    result = Append(c.mailbox())
    while c.maybe_sp():  # RFC 3502 MULTIAPPEND: one or more messages
        result.messages.append(_append_message(c))
    if not result.messages:
        raise ParseError("APPEND needs a message literal")
    return result


def _append_message(c: Cursor) -> AppendMessage:
    """[flag-list SP] [date-time SP] literal, or UTF8 (literal8) (RFC 6855 4)."""
    flags: list[str] = []
    date = None
    if c.peek() == ord("("):
        flags = c.flag_list()
        c.sp()
    if c.peek() == ord('"'):
        date = parse_date_time(c.quoted_bytes().decode("ascii", "replace"))
        c.sp()
    if c.accept(b"UTF8"):  # RFC 6855 4: UTF8 (literal8)
        c.sp()
        c.expect(b"(")
        message = AppendMessage(flags, date, c.literal())
        c.expect(b")")
        return message
    if c.accept(b"CATENATE"):
        return AppendMessage(flags, date, Literal(0), _catenate(c))
    return AppendMessage(flags, date, c.literal())


def _catenate(c: Cursor) -> tuple[CatPart, ...]:
    # RFC 4469 5: "CATENATE" SP "(" cat-part *(SP cat-part) ")";
    # cat-part = "TEXT" SP literal / "URL" SP astring
    c.sp()
    c.expect(b"(")
    parts: list[CatPart] = []
    while not c.accept(b")"):
        if parts:
            c.sp()
        word = c.atom().upper()
        c.sp()
        if word == "TEXT":
            parts.append(c.literal())
        elif word == "URL":
            parts.append(CatUrl(c.astring()))
        else:
            raise ParseError(f"unknown CATENATE part {word}")
    if not parts:
        raise ParseError("CATENATE needs a part")
    return tuple(parts)


def _replace(c: Cursor) -> Args:
    # RFC 8508 6: replace = "REPLACE" SP seq-number SP mailbox SP append-message
    c.sp()
    number = c.sequence_set()
    if number.saved or len(number.ranges) != 1 or number.ranges[0][0] != number.ranges[0][1]:
        raise ParseError("REPLACE takes one message number")
    c.sp()
    mailbox = c.mailbox()
    c.sp()
    return Replace(number, mailbox, _append_message(c))


def _fetch(c: Cursor) -> Args:
    c.sp()
    seq = c.sequence_set()
    c.sp()
    atts = parse_fetch_atts(c)
    changed_since = None
    vanished = False
    if c.maybe_sp():
        # RFC 7162 3.1.4.1 CHANGEDSINCE, 3.2.6 VANISHED
        c.expect(b"(")
        first = True
        while not c.accept(b")"):
            if not first:
                c.sp()
            first = False
            word = c.atom().upper()
            if word == "CHANGEDSINCE":
                c.sp()
                changed_since = c.number()
            elif word == "VANISHED":
                vanished = True
            else:
                raise ParseError(f"unknown FETCH modifier {word}")
    return Fetch(seq, tuple(atts), changed_since, vanished)


def _store(c: Cursor) -> Args:
    c.sp()
    seq = c.sequence_set()
    c.sp()
    unchanged_since = None
    if c.accept(b"("):
        c.expect(b"UNCHANGEDSINCE")
        c.sp()
        unchanged_since = c.number()
        c.expect(b")")
        c.sp()
    mode = "replace"
    if c.accept(b"+"):
        mode = "add"
    elif c.accept(b"-"):
        mode = "remove"
    word = c.atom().upper()
    if word not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("expected FLAGS or FLAGS.SILENT")
    c.sp()
    if c.peek() == ord("("):
        flags = c.flag_list()
    else:
        flags = [c.flag()]
        while c.maybe_sp():
            flags.append(c.flag())
    return Store(seq, mode, word.endswith(".SILENT"), tuple(flags), unchanged_since)


def _charset(c: Cursor) -> str | None:
    if c.accept(b"CHARSET "):
        charset = c.astring().upper()
        c.sp()
        return charset
    return None


def _search(c: Cursor) -> Args:
    c.sp()
    returns: tuple[str, ...] | None = None
    partial = None
    if c.accept(b"RETURN "):  # RFC 4731 ESEARCH
        returns, partial = parse_return_options(c)
        c.sp()
    charset = _charset(c)
    return Search(parse_search_keys(c), returns, charset, partial)


SORT_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM",
             "DISPLAYTO"}


def _sort(c: Cursor) -> Args:
    c.sp()
    returns: tuple[str, ...] | None = None
    partial = None
    if c.accept(b"RETURN "):  # RFC 5267 3: extended-sort = "SORT" search-return-opts ...
        returns, partial = parse_return_options(c)
        c.sp()
    words = _atom_list(c)
    criteria: list[tuple[str, bool]] = []
    reverse = False
    for word in words:
        if word == "REVERSE":
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise ParseError(f"unknown sort key {word}")
        criteria.append((word, reverse))
        reverse = False
    if reverse or not criteria:
        raise ParseError("bad sort criteria")
    c.sp()
    charset = c.astring().upper()
    c.sp()
    return Sort(tuple(criteria), parse_search_keys(c), charset, returns, partial)


def _cancel_update(c: Cursor) -> Args:
    # RFC 5267 5: "CANCELUPDATE" 1*(SP quoted)
    tags = []
    while c.maybe_sp():
        tags.append(c.quoted_bytes().decode("ascii", "replace"))
    if not tags:
        raise ParseError("CANCELUPDATE needs the tags of the searches to cancel")
    return CancelUpdate(tuple(tags))


def _thread(c: Cursor) -> Args:
    c.sp()
    algorithm = c.atom().upper()
    c.sp()
    charset = c.astring().upper()
    c.sp()
    return Thread(algorithm, parse_search_keys(c), charset)


def _copy(c: Cursor) -> Args:
    c.sp()
    seq = c.sequence_set()
    c.sp()
    return CopyMove(seq, c.mailbox())


def _uid_expunge(c: Cursor) -> Args:
    c.sp()
    return Expunge(c.sequence_set())


def _quota_root(c: Cursor) -> Args:
    c.sp()
    return QuotaRoot(c.astring())


def _compress(c: Cursor) -> Args:
    c.sp()
    return Compress(c.atom().upper())


def _genurlauth(c: Cursor) -> Args:
    requests: list[tuple[str, str]] = []
    while c.maybe_sp():
        rump = c.astring()
        c.sp()
        requests.append((rump, c.atom().upper()))
    if not requests:
        raise ParseError("GENURLAUTH needs a URL and a mechanism")
    return GenUrlAuth(tuple(requests))


def _resetkey(c: Cursor) -> Args:
    if not c.maybe_sp():
        return ResetKey(None)
    name = c.mailbox()
    mechanisms: list[str] = []
    while c.maybe_sp():
        mechanisms.append(c.atom().upper())
    return ResetKey(name, tuple(mechanisms))


def _urlfetch(c: Cursor) -> Args:
    urls: list[str] = []
    while c.maybe_sp():
        urls.append(c.astring())
    if not urls:
        raise ParseError("URLFETCH needs a URL")
    return UrlFetch(tuple(urls))


PARSERS: dict[str, Parser] = {
    "CAPABILITY": _none, "NOOP": _none, "LOGOUT": _none, "STARTTLS": _none,
    "LOGIN": _login, "AUTHENTICATE": _authenticate, "ID": _id, "ENABLE": _enable,
    "NAMESPACE": _none, "SELECT": _select, "EXAMINE": _select, "CREATE": _create,
    "DELETE": _mailbox, "RENAME": _rename, "SUBSCRIBE": _mailbox, "UNSUBSCRIBE": _mailbox,
    "LIST": _list, "LSUB": _lsub, "STATUS": _status, "APPEND": _append, "CHECK": _none,
    "CLOSE": _none, "UNSELECT": _none, "EXPUNGE": _none, "IDLE": _none, "FETCH": _fetch,
    "STORE": _store, "SEARCH": _search, "SORT": _sort, "THREAD": _thread, "COPY": _copy,
    "MOVE": _copy, "GETQUOTA": _quota_root, "GETQUOTAROOT": _mailbox,
    "COMPRESS": _compress,
    "REPLACE": _replace,  # RFC 8508
    "CANCELUPDATE": _cancel_update,
    "GETMETADATA": parse_getmetadata, "SETMETADATA": parse_setmetadata,  # RFC 5464
    "NOTIFY": parse_notify,  # RFC 5465
    "GENURLAUTH": _genurlauth, "RESETKEY": _resetkey, "URLFETCH": _urlfetch,  # RFC 4467
}
UID_PARSERS: dict[str, Parser] = {
    "FETCH": _fetch, "STORE": _store, "SEARCH": _search, "SORT": _sort, "THREAD": _thread,
    "COPY": _copy, "MOVE": _copy, "EXPUNGE": _uid_expunge,
    "REPLACE": _replace,  # RFC 8508
}


def parse_command(raw: CommandBytes, *, utf8: bool = False, max_nesting: int = 32) -> Command:
    """Parse one framed command; raise CommandError (with the tag, or "*") on bad syntax."""
    c = Cursor(raw.parts, utf8=utf8, max_nesting=max_nesting)
    tag = "*"
    try:
        tag = c.tag()
        c.sp()
        name = c.atom().upper()
        table = PARSERS
        if name == "UID":
            c.sp()
            name = c.atom().upper()
            table = UID_PARSERS
            if name not in table:
                raise ParseError(f"UID {name} is not a command")
            full = "UID " + name
        else:
            full = name
        parser = table.get(name)
        if parser is None:
            raise ParseError(f"unknown command {name}")
        args = parser(c)
        c.end()
    except ParseError as exc:
        raise CommandError(tag, str(exc)) from None
    return Command(tag, full, args)
