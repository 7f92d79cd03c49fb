"""/healthz: the load balancer's check (HAProxy `option httpchk GET /healthz`).

200 "ok" when this host can serve: the store answers a query within the deadline. 503
otherwise, with the reason, so the balancer sends new connections to the other hosts while
this one cannot reach its database. Open to every address (it reveals nothing but "up"),
on HTTP and HTTPS, so a balancer can check without TLS.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from postel.web.state import web_of

log = logging.getLogger("postel.web")

# A store that takes longer than this to answer one indexed read cannot serve mail well.
DEADLINE = 2.0


async def healthz(request: Request) -> Response:
    web = web_of(request)
    hostname = web.context.config.hostname
    try:
        await asyncio.wait_for(
            asyncio.to_thread(web.store.directory.get_domain, hostname), DEADLINE)
    except TimeoutError:
        log.warning("healthz: the store did not answer within %.1f s", DEADLINE)
        return PlainTextResponse("unavailable: the store is not answering\n", 503)
    except Exception as exc:  # any failure of the database means "send clients elsewhere"
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        log.warning("healthz: the store failed: %s", reason)
        return PlainTextResponse("unavailable: the store failed\n", 503)
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})
