"""Live updates: server-sent events fed by the store's change bus (the feed IMAP IDLE
waits on). An event names the folders that changed; the page then re-reads them through
the JSON API, so the store stays the truth and a lost hint costs nothing.

A stream lasts at most STREAM_SECONDS, then the browser's EventSource reconnects (after
the `retry` we send) and the page refreshes once: a restart or shutdown never waits on
an open stream for long, and hints lost in between are caught up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from postel.admin.errors import Kind, OperationError
from postel.store.model import Account, Change, CredentialsChanged, MessagesExpunged
from postel.web.mail.raw import authed
from postel.web.mail.state import mail_state
from postel.web.state import web_of

STREAM_SECONDS = 25.0
KEEPALIVE_SECONDS = 10.0
RECONNECT_MS = 1000


def change_event(batch: list[Change]) -> str:
    # A server METADATA change (MetadataChanged) names no folder: mailbox_id None.
    folders = sorted({folder for c in batch
                      if (folder := getattr(c, "mailbox_id", None)) is not None})
    expunged = any(isinstance(c, MessagesExpunged) for c in batch)
    kinds = sorted({type(c).__name__ for c in batch})
    data = json.dumps({"folders": folders, "expunged": expunged, "kinds": kinds})
    return f"event: change\ndata: {data}\n\n"


@authed
async def events(request: Request, account: Account) -> Response:
    if "text/event-stream" not in request.headers.get("accept", ""):
        # Only EventSource asks for a stream; anything else would hold a connection open.
        raise OperationError(Kind.NOT_ACCEPTABLE,
            "Open this address with EventSource (Accept: text/event-stream).")
    web = web_of(request)
    indexer = mail_state(web).indexer

    async def stream() -> AsyncIterator[str]:
        subscription = web.context.bus.subscribe(account.id)
        loop = asyncio.get_running_loop()
        ends = loop.time() + STREAM_SECONDS
        try:
            yield f"retry: {RECONNECT_MS}\nevent: hello\ndata: {{}}\n\n"
            while (left := ends - loop.time()) > 0:
                try:
                    batch = await asyncio.wait_for(subscription.get(),
                                                   min(left, KEEPALIVE_SECONDS))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if any(isinstance(c, CredentialsChanged) for c in batch) or \
                        subscription.revoked:
                    yield "event: signed-out\ndata: {}\n\n"
                    return
                indexer.kick(account.id)
                yield change_event(batch)
        finally:
            subscription.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
