"""URLAUTH (RFC 4467): GENURLAUTH signs a URL with the mailbox's access key, RESETKEY
forgets keys (every URL they signed stops working), URLFETCH returns what URLs name.

The URL rules themselves (syntax, access identifiers, the INTERNAL token) are in
`postel/imapurl.py`, which SMTP BURL shares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postel import imapurl
from postel.imap.proto import responses as r
from postel.imap.proto.commands import Command, GenUrlAuth, ResetKey, UrlFetch

if TYPE_CHECKING:
    from postel.imap.session import ImapSession


def _login(s: ImapSession) -> str:
    assert s.account is not None
    return s.account.email


async def genurlauth(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, GenUrlAuth)
    signed: list[str] = []
    for rump, mechanism in args.requests:
        if mechanism != imapurl.MECHANISM:
            s.no(cmd.tag, f"Unknown URLAUTH mechanism {mechanism}")  # RFC 4467 4
            return
        try:
            url = imapurl.parse_url(rump)
            # RFC 4467 4: an absolute URL of the user's own mailbox, with ";URLAUTH="
            # access but no mechanism and token yet.
            if url.access is None or url.token is not None or url.rump != rump:
                raise imapurl.UrlError("not a URLAUTH rump URL")
            if url.user is None or url.user.lower() != _login(s).lower():
                raise imapurl.UrlError("the URL must name the logged-in user")
            target = await s.run(imapurl.find_target, s.store, url, s.account_id())
            key = await s.run(s.store.urlauth.access_key, target.mailbox.id, create=True)
        except imapurl.UrlError:
            s.no(cmd.tag, "Bad URL in GENURLAUTH", f"BADURL {rump}")
            return
        assert key is not None
        # RFC 4467 7: url-full = rump ":" mechanism ":" token
        signed.append(f"{rump}:{mechanism.lower()}:{imapurl.sign(key, rump)}")
    s.untagged(b"GENURLAUTH " + b" ".join(r.string(u) for u in signed))
    s.ok(cmd.tag, "GENURLAUTH completed")


async def resetkey(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, ResetKey)
    if any(m != imapurl.MECHANISM for m in args.mechanisms):
        s.no(cmd.tag, "Unknown URLAUTH mechanism")
        return
    if args.mailbox is None:
        boxes = await s.run(s.store.mail.list_mailboxes, s.account_id())
        await s.run(s.store.urlauth.reset_keys, [b.id for b in boxes])
        s.ok(cmd.tag, "All keys removed")  # RFC 4467 4
        return
    box = await s.run(s.store.mail.get_mailbox, s.account_id(), args.mailbox)
    if box is None:
        s.no(cmd.tag, "No such mailbox")
        return
    await s.run(s.store.urlauth.reset_keys, [box.id])
    s.ok(cmd.tag, "Key removed", f"URLMECH {imapurl.MECHANISM}")  # RFC 4467 8 URLMECH


def fetch_url(s: ImapSession, text: str) -> bytes | None:
    """Blocking: what one URLFETCH URL names, or None (RFC 4467 6: answered NIL)."""
    try:
        url = imapurl.parse_url(text)
        target = imapurl.verify(s.store, url, login=_login(s), submit=False)
        return imapurl.read_target(s.store, target, url.section)
    except imapurl.UrlError:
        return None


async def urlfetch(s: ImapSession, cmd: Command) -> None:
    args = cmd.args
    assert isinstance(args, UrlFetch)
    out = [b"URLFETCH"]
    for text in args.urls:
        data = await s.run(fetch_url, s, text)
        out += [r.string(text), r.nstring(data)]
    s.untagged(b" ".join(out))
    s.ok(cmd.tag, "URLFETCH completed")
