"""IMAP URLs (RFC 5092) and URLAUTH (RFC 4467), once for IMAP and SMTP.

IMAP's CATENATE and URLFETCH and SMTP's BURL all turn a URL into message bytes straight
from the store (no IMAP connection, RFC 4468 3 allows either), so the parsing, the token
check and the section lookup live here, below both protocol packages.

The INTERNAL mechanism (RFC 4467 7) is HMAC-SHA256 over the "rump" URL (everything up to
and including the access identifier) with the mailbox's access key, written as hex.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from postel.mail.mime import MimePart
from postel.store.api import Store
from postel.store.model import Mailbox

MECHANISM = "INTERNAL"  # RFC 4467 7: the one mechanism every URLAUTH server offers
TOKEN_HEX = 64  # HMAC-SHA256 as hex; RFC 4467 9 asks for at least 128 bits (32 hex digits)

_SECTION = re.compile(r"^(\d+(?:\.\d+)*)?(?:\.?(HEADER|TEXT|MIME))?$", re.IGNORECASE)
_ACCESS = re.compile(r"^(anonymous|authuser|(?:user|submit)\+[^:;/]+)$", re.IGNORECASE)


class UrlError(Exception):
    """The URL is malformed, names nothing, or its token does not verify ([BADURL])."""


@dataclass(frozen=True)
class ImapUrl:
    """One message or section URL (RFC 5092 3: icommand = imessagepart)."""

    user: str | None  # the iuserinfo, decoded; None in a relative URL
    host: str | None
    mailbox: str
    uidvalidity: int | None
    uid: int
    section: str | None
    expire: datetime | None = None  # RFC 4467 2.1
    access: str | None = None  # ";URLAUTH=<access>", e.g. "submit+alice@example.com"
    mechanism: str | None = None
    token: str | None = None
    rump: str = ""  # the URL up to and including the access identifier (RFC 4467 2.1)


def parse_url(text: str) -> ImapUrl:
    """An absolute ``imap://user@host/mbox;UIDVALIDITY=n/;UID=n/;SECTION=s`` URL, or a
    relative one starting with "/" (RFC 4469 5: CATENATE takes both)."""
    user = host = None
    rest = text
    if text[:7].lower() == "imap://":
        authority, slash, rest = text[7:].partition("/")
        if not slash:
            raise UrlError("the URL names no message")
        if "@" in authority:
            userinfo, _, host = authority.rpartition("@")
            # RFC 5092 3.2: ";AUTH=" may follow the user; it does not change whose mailbox.
            user = unquote(userinfo.split(";", 1)[0])
        else:
            host = authority
    elif text.startswith("/"):
        rest = text[1:]
    else:
        raise UrlError("not an IMAP URL")
    # RFC 5092 3: enc-mailbox [uidvalidity] iuid [isection] [ipartial] [iurlauth]
    pieces = rest.split("/;")
    if len(pieces) < 2:
        raise UrlError("the URL names no UID")
    mailbox_part = pieces[0]
    mailbox, _, validity = mailbox_part.partition(";")
    uidvalidity = None
    if validity:
        name, _, value = validity.partition("=")
        if name.upper() != "UIDVALIDITY" or not value.isdigit():
            raise UrlError("bad UIDVALIDITY")
        uidvalidity = int(value)
    uid = 0
    section = None
    expire = access = mechanism = token = None
    rump = text
    for index, piece in enumerate(pieces[1:]):
        params = piece.split(";")
        name, _, value = params[0].partition("=")
        name = name.upper()
        if index == 0 and name == "UID" and value.isdigit() and int(value) > 0:
            uid = int(value)
        elif index == 1 and name == "SECTION" and _SECTION.match(value):
            section = unquote(value).upper()
        else:
            raise UrlError(f"unexpected {name or 'part'} in the URL")
        for extra in params[1:]:
            key, _, value = extra.partition("=")
            key = key.upper()
            if key == "EXPIRE" and access is None:  # RFC 4467 2.1
                try:
                    expire = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise UrlError("bad EXPIRE") from None
                if expire.tzinfo is None:
                    raise UrlError("EXPIRE needs a time zone")
            elif key == "URLAUTH" and access is None:
                access, _, authpart = value.partition(":")
                if not _ACCESS.match(access):
                    raise UrlError("bad URLAUTH access")
                cut = text.rfind(";" + extra) + len(";" + key + "=" + access)
                rump = text[:cut]
                if authpart:
                    mechanism, _, token = authpart.partition(":")
                    if not token:
                        raise UrlError("URLAUTH without a token")
            else:
                raise UrlError(f"unexpected {key} in the URL")
    if uid == 0:
        raise UrlError("the URL names no UID")
    return ImapUrl(user, host, unquote(mailbox), uidvalidity, uid, section, expire,
                   access, mechanism, token, rump)


def sign(key: bytes, rump: str) -> str:
    """RFC 4467 7 INTERNAL: the token for a rump URL."""
    return hmac.new(key, rump.encode("utf-8"), hashlib.sha256).hexdigest()


def user_part(login: str) -> str:
    """The iuserinfo of a login (RFC 5092 3.2: "@" and ";" must be %-encoded)."""
    return quote(login, safe="")


def may_access(access: str, *, login: str | None, submit: bool) -> bool:
    """RFC 4467 3: who may use a URL. `login` is the authenticated user asking (None when
    anonymous); `submit` is true for a submission server acting for that user."""
    kind, _, encoded = access.partition("+")
    kind, who = kind.lower(), unquote(encoded)  # RFC 4467 9: enc-user is %-encoded
    if kind == "anonymous":
        return True
    if login is None:
        return False
    if kind == "authuser":
        return True
    if kind == "submit":
        return submit and who.lower() == login.lower()
    return kind == "user" and who.lower() == login.lower()


@dataclass(frozen=True)
class Target:
    """What a URL names in the store."""

    account_id: int
    mailbox: Mailbox
    uid: int


def find_target(store: Store, url: ImapUrl, account_id: int) -> Target:
    """Blocking: the mailbox and message a URL names in `account_id`'s mailboxes."""
    box = store.mail.get_mailbox(account_id, url.mailbox)
    if box is None:
        raise UrlError("no such mailbox")
    if url.uidvalidity is not None and url.uidvalidity != box.uidvalidity:
        raise UrlError("UIDVALIDITY changed")  # RFC 5092 6
    if store.mail.get_message_fields(box.id, url.uid) is None:
        raise UrlError("no such message")
    return Target(account_id, box, url.uid)


def owner_of(store: Store, url: ImapUrl) -> int:
    """Blocking: the account whose mailbox an absolute URL names."""
    if url.user is None:
        raise UrlError("the URL names no user")
    account = store.directory.get_account(url.user)
    if account is None:
        raise UrlError("no such user")
    return account.id


def verify(store: Store, url: ImapUrl, *, login: str | None, submit: bool,
           now: datetime | None = None) -> Target:
    """Blocking: check a URLAUTH-authorized URL (RFC 4467 5, 6) and return its target."""
    if url.access is None or url.token is None or url.mechanism is None:
        raise UrlError("the URL carries no URLAUTH token")
    if url.mechanism.upper() != MECHANISM:
        raise UrlError("unknown URLAUTH mechanism")
    if url.expire is not None and url.expire <= (now or datetime.now(UTC)):
        raise UrlError("the URL has expired")  # RFC 4467 2.1
    if not may_access(url.access, login=login, submit=submit):
        raise UrlError("not allowed by the URL's access identifier")
    target = find_target(store, url, owner_of(store, url))
    key = store.urlauth.access_key(target.mailbox.id, create=False)
    if key is None or not hmac.compare_digest(sign(key, url.rump), url.token.lower()):
        raise UrlError("the URLAUTH token does not verify")
    return target


def read_target(store: Store, target: Target, section: str | None) -> bytes:
    """Blocking: the bytes of the message or of one section (RFC 9051 6.4.5 naming)."""
    row = store.mail.get_message_fields(target.mailbox.id, target.uid)
    if row is None:
        raise UrlError("no such message")
    try:
        with store.blobs.open(row["blob_sha256"]) as blob:
            data = blob.read()
    except OSError:
        raise UrlError("the message body cannot be read") from None
    if not section:
        return bytes(data)
    span = section_span(MimePart.from_json(row["mime"]), section)
    if span is None:
        raise UrlError("no such section")
    return bytes(data[span[0]:span[1]])


def section_span(root: MimePart, section: str) -> tuple[int, int] | None:
    """The byte range of "1.2", "HEADER", "TEXT", "1.MIME", "2.HEADER" in the message."""
    match = _SECTION.match(section)
    if match is None:
        return None
    numbers, text = match.group(1), (match.group(2) or "").upper()
    part = root
    if numbers:
        for depth, n in enumerate(int(x) for x in numbers.split(".")):
            if depth > 0 and part.message is not None:
                part = part.message.body
            if part.children:
                if not 0 < n <= len(part.children):
                    return None
                part = part.children[n - 1]
            elif n != 1:
                return None
        if text == "MIME":
            return part.header_start, part.body_start
        if text:
            if part.message is None:
                return None
            part = part.message.body
        else:
            return part.body_start, part.end
    if text == "HEADER":
        return part.header_start, part.body_start
    if text == "TEXT":
        return part.body_start, part.end
    return None if text else (0, root.end)
