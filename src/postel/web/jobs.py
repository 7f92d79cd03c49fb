"""Work a request starts but its answer must not wait for, nor reveal (the reset mail).

Starlette's `BackgroundTask` runs on the request's own connection after the response:
the next request on that keep-alive connection waits for it, so its latency told whether
an account existed (issue 15 item 8). Jobs here run in one task the web service owns, so
every response and every next request costs the same whatever the job does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

log = logging.getLogger("postel.web")

MAX_PENDING = 1000  # beyond this a job is dropped (and logged): memory stays bounded
# Each job starts after a random pause, so the moment its work competes for the CPU and
# the store is not tied to the request that queued it (nor to the one after it).
MAX_JITTER_MS = 500


class BackgroundJobs:
    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._queue: asyncio.Queue[Callable[[], None]] = asyncio.Queue(max_pending)
        self._worker: asyncio.Task[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Queue a blocking job; returns at once, whatever the job will cost."""
        if self._worker is None:
            self.start()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            log.warning("background job dropped: too many pending")

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="web-jobs")

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await asyncio.sleep(secrets.randbelow(MAX_JITTER_MS) / 1000)
                await asyncio.to_thread(job)
            except Exception:
                log.exception("a background job failed")
            finally:
                self._queue.task_done()

    async def stop(self, grace: float) -> None:
        """Let queued jobs finish (up to `grace` seconds), then stop the worker."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
