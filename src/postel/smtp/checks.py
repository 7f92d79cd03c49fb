"""Port 25's SPF, DKIM and DMARC checks on a spooled message, and what their verdict
means in SMTP: the reply that refuses the message, and its stored form."""

from __future__ import annotations

import asyncio
from pathlib import Path

from postel.config import MailauthConfig
from postel.mailauth.authresults import copy_without_forgeries
from postel.mailauth.dns import Resolver
from postel.mailauth.inbound import Action, InboundVerdict, check_inbound
from postel.smtp.replies import Reply
from postel.store.blobs import BlobStore, BlobWriter


def refusal(verdict: InboundVerdict) -> Reply | None:
    """The reply that refuses the message, or None to deliver it (perhaps to Junk)."""
    if verdict.action is Action.REJECT:  # RFC 7489 6.3 p=reject
        return Reply(550, "5.7.1", verdict.reason or "rejected by DMARC policy")
    if verdict.action is Action.DEFER:  # RFC 7208 8.6 temperror, RFC 7489 6.6.2
        return Reply(451, "4.7.0", verdict.reason or "authentication checks failed, try later")
    return None


def _flushed(spool: BlobWriter) -> Path:
    """The spool's path with everything written so far readable from it."""
    spool._file.flush()
    return spool.tmp_path


async def check_and_stamp(
    spool: BlobWriter,
    *,
    blobs: BlobStore,
    resolver: Resolver,
    config: MailauthConfig,
    hostname: str,
    ip: str,
    helo: str,
    mail_from: str,
    trace: bytes,
) -> tuple[InboundVerdict, BlobWriter]:
    """SPF, DKIM and DMARC on the message as received (mailauth.inbound), then its
    stored form: `trace` headers, our Authentication-Results, and the message without
    any Authentication-Results forged in our name (RFC 8601 5). Streams; the spool is
    dropped either way."""
    try:
        path = await asyncio.to_thread(_flushed, spool)
        verdict = await check_inbound(
            resolver, config, hostname, path, ip=ip, helo=helo, mail_from=mail_from
        )
        final = await asyncio.to_thread(
            _stamp, blobs, path, trace + verdict.header, hostname
        )
    finally:
        spool.abort()
    return verdict, final


def _stamp(blobs: BlobStore, spool_path: Path, head: bytes, hostname: str) -> BlobWriter:
    final = blobs.writer()
    try:
        final.write(head)
        with spool_path.open("rb") as handle:
            copy_without_forgeries(handle, final.write, hostname)
    except BaseException:
        final.abort()
        raise
    return final
