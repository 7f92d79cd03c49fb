"""CATENATE (RFC 4469): join TEXT literals and URL-named messages or sections into the
one message APPEND stores.

URLs are resolved straight from the store by `postel/imapurl.py`, the same code URLFETCH
and SMTP BURL use. A URL may name only the user's own mailboxes unless it carries a
URLAUTH token that verifies (RFC 4469 5).
"""

from __future__ import annotations

import tempfile

from postel import imapurl
from postel.imap.proto.commands import CatPart, CatUrl
from postel.imap.proto.receiver import SPOOL_THRESHOLD, Literal
from postel.store.api import Store

CHUNK = 256 * 1024


class BadUrl(Exception):
    """RFC 4469 5: answered NO [BADURL <url>]."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(reason)
        self.url = url


class TooBig(Exception):
    """RFC 4469 5: answered NO [TOOBIG]."""


def url_bytes(store: Store, account_id: int, login: str, text: str) -> bytes:
    """Blocking: the bytes one CATENATE URL names."""
    try:
        url = imapurl.parse_url(text)
        if url.token is not None:
            target = imapurl.verify(store, url, login=login, submit=False)
        elif url.user is not None and url.user.lower() != login.lower():
            raise imapurl.UrlError("another user's mailbox needs a URLAUTH token")
        else:
            target = imapurl.find_target(store, url, account_id)
        return imapurl.read_target(store, target, url.section)
    except imapurl.UrlError as exc:
        raise BadUrl(text, str(exc)) from None


def join_parts(
    store: Store, account_id: int, login: str, parts: tuple[CatPart, ...], limit: int
) -> Literal:
    """Blocking: one literal (spooled to disk when big) holding every part in order."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_THRESHOLD)  # noqa: SIM115
    size = 0
    try:
        for part in parts:
            if isinstance(part, CatUrl):
                chunks = [url_bytes(store, account_id, login, part.url)]
            else:
                chunks = [part.read_all()]
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooBig()  # RFC 4469 5: the result must fit APPENDLIMIT
                spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Literal(size, file=spool)  # type: ignore[arg-type]
