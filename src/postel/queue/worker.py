"""The outbound queue's workers: claim due rows, deliver them, settle the outcome.

One task per claimed row, at most [outbound] max_connections at once and
max_connections_per_domain per destination. A row leaves the queue only after every
recipient got a 250 or a final failure (then the sender gets one DSN); temporary failures
put it back with the next time from the retry schedule. Rows claimed by a process that
stopped are released at the next start, so nothing is lost by a restart; graceful
shutdown lets deliveries in flight finish, so nothing is sent twice either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from postel.config import Config
from postel.context import Context
from postel.mail.address import AddressError, Domain
from postel.mailauth import dkim
from postel.mailauth.dns import DnsTemporaryError, Resolver
from postel.mailauth.inbound import from_domains
from postel.queue.client import (
    AttemptFailed,
    Failure,
    Message,
    Outcome,
    Target,
    deliver,
    dsn_mail_options,
    dsn_rcpt_options,
)
from postel.queue.dsn import RecipientStatus, build_dsn
from postel.queue.notify import send_dsn
from postel.queue.routes import RouteError, addresses, exchangers, requiretls_refusal
from postel.queue.schedule import delay_warning_due, expired, retry_delay
from postel.store.api import Store
from postel.store.model import Change, OutboundItem, QueueChanged

log = logging.getLogger("postel.queue")

# Bytes of message data held by deliveries at once (aiosmtplib sends from memory); a
# delivery waits for room, so memory stays bounded however many large messages queue up.
MAX_BYTES_IN_FLIGHT = 256 * 1024 * 1024
# Mail exchanger addresses tried in one attempt before it counts as a temporary failure.
MAX_TARGETS_PER_ATTEMPT = 10


def now() -> datetime:
    return datetime.now(UTC)


class ByteBudget:
    """A semaphore counted in bytes; one request larger than the whole budget takes all."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> Any:
        size = min(size, self.total)
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            async with self._changed:
                self.free += size
                self._changed.notify_all()


def _ascii_domain(domain: str) -> str:
    try:
        return Domain.parse(domain).ascii
    except AddressError:
        return domain


def _wire_address(address: str, smtputf8: bool) -> str:
    """Without SMTPUTF8 an internationalized domain travels as A-labels (RFC 5890)."""
    if smtputf8 or address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    return f"{local}@{_ascii_domain(domain)}"


def node_id(data_dir: Path) -> str:
    """This host's queue-claim id, made once and kept in the data directory."""
    path = data_dir / "node-id"
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text().strip()
        if existing:
            return existing
    made = secrets.token_hex(8)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(made + "\n")
    os.replace(tmp, path)
    return made


class QueueService:
    """The outbound queue as a service of the composition root (no listener)."""

    def __init__(self, context: Context, *, resolver: Resolver | None = None) -> None:
        self.config: Config = context.config
        self.store: Store = context.store
        self.resolver: Resolver = resolver or context.resolver
        self.outbound = context.config.outbound
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_domain: Counter[str] = Counter()
        self._domain_slots: dict[str, asyncio.Semaphore] = {}
        self._budget = ByteBudget(MAX_BYTES_IN_FLIGHT)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        # Whose claims these are: one id per data directory, so per host (a restart keeps
        # it, and releases its own old claims at once; other hosts wait for the lease).
        self.node = node_id(context.config.data_dir)
        self._claimed: dict[asyncio.Task[None], int] = {}  # in flight: task -> row id
        self._renewed = time.monotonic()
        self._runner: asyncio.Task[None] | None = None
        self._finishing: list[tuple[int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # -- service ----------------------------------------------------------------------

    async def start(self) -> list[tuple[str, str]]:
        # A row queued or made due in this process wakes the loop at once; the poll
        # remains for rows that come due later and for other processes' writes.
        loop = asyncio.get_running_loop()

        def on_commit(changes: Sequence[Change]) -> None:
            if self._stopping.is_set() or loop.is_closed():
                return
            if any(isinstance(change, QueueChanged) for change in changes):
                # From any thread; the loop may close meanwhile (then nobody waits).
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self.wake)

        self.store.on_commit(on_commit)
        released = await asyncio.to_thread(self.store.queue.release_claims, self.node)
        if released:
            log.info("queue: released claims of a previous run",
                     extra={"fields": {"n": released}})
        self._runner = asyncio.create_task(self._run())
        smarthost = self.outbound.smarthost
        route = f"via smarthost {smarthost}" if smarthost else f"MX port {self.outbound.mx_port}"
        return [("outbound", f"{route}, {self.outbound.max_connections} at once")]

    async def shutdown(self, grace: float) -> None:
        self._stopping.set()
        self._wake.set()
        if self._runner is not None:
            await self._runner
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    def wake(self) -> None:
        """Look at the queue now (new rows, `postel queue retry`)."""
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the claim: a wake-up arriving during it means another look.
            self._wake.clear()
            try:
                await self._renew()
                await self._fill()
            except Exception:
                log.exception("queue: claiming due messages failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.outbound.poll_interval)

    async def _fill(self) -> None:
        free = self.outbound.max_connections - len(self._tasks)
        if free <= 0:
            return
        limit = self.outbound.max_connections_per_domain
        full = [d for d, n in self._per_domain.items() if n >= limit]
        items = await asyncio.to_thread(self.store.queue.claim, now(), free, full,
                                        owner=self.node, lease=self.outbound.claim_lease)
        for item in items:
            self._per_domain[item.domain] += 1
            task = asyncio.create_task(self._attempt(item))
            self._tasks.add(task)
            self._claimed[task] = item.id
            task.add_done_callback(functools.partial(self._done, domain=item.domain))

    async def _renew(self) -> None:
        """Keep this host's claims on the rows it is delivering from running out: a slow
        delivery must not be taken over (and sent twice) by another host. A third of the
        lease between renewals leaves two chances before it ends."""
        if not self._claimed or time.monotonic() - self._renewed < self.outbound.claim_lease / 3:
            return
        self._renewed = time.monotonic()
        await asyncio.to_thread(self.store.queue.renew_claims, self.node,
                                list(self._claimed.values()), self.outbound.claim_lease)

    def _done(self, task: asyncio.Task[None], domain: str) -> None:
        self._tasks.discard(task)
        self._claimed.pop(task, None)
        self._per_domain[domain] -= 1
        if self._per_domain[domain] <= 0:
            del self._per_domain[domain]
            self._domain_slots.pop(domain, None)
        # Claim again once a quarter of the slots are free (or none is busy): claims in
        # batches cost one commit each, not one per delivery.
        refill = len(self._tasks) <= self.outbound.max_connections * 3 // 4
        if not self._stopping.is_set() and refill:
            self._wake.set()

    def _slot(self, domain: str) -> asyncio.Semaphore:
        if domain not in self._domain_slots:
            self._domain_slots[domain] = asyncio.Semaphore(
                self.outbound.max_connections_per_domain
            )
        return self._domain_slots[domain]

    # -- one attempt ------------------------------------------------------------------

    async def _attempt(self, item: OutboundItem) -> None:
        started = time.monotonic()
        facts: dict[str, object] = {}
        async with self._slot(item.domain):
            try:
                outcome = await self._send(item, facts)
            except Exception as exc:
                log.exception("queue: delivery attempt failed", extra={"fields": {"id": item.id}})
                failure = Failure(0, "4.3.0", f"local error: {exc}")
                outcome = Outcome(failed=dict.fromkeys(item.recipients, failure))
        # Settle even when shutdown cancels us now: a 250 must be recorded, or the
        # message would be sent again after the restart.
        await asyncio.shield(self._settle_and_finish(item, outcome))
        log.info("delivery", extra={"fields": {
            "queue_id": item.queue_id, "id": item.id, "domain": item.domain,
            "attempt": item.attempts + 1, "delivered": outcome.delivered,
            "failed": {r: f.text for r, f in outcome.failed.items()},
            "ms": round((time.monotonic() - started) * 1000, 1), **facts,
        }})

    async def _settle_and_finish(self, item: OutboundItem, outcome: Outcome) -> None:
        if await asyncio.to_thread(self._settle, item, outcome):
            await self._finish(item.id)

    async def _finish(self, item_id: int) -> None:
        """Delete a finished row; rows finishing while a delete commits share the next
        transaction (group commit), so one fsync covers many deliveries."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishing.append((item_id, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_finished())
        await done

    async def _flush_finished(self) -> None:
        try:
            while self._finishing:
                batch, self._finishing = self._finishing, []
                try:
                    await asyncio.to_thread(self.store.queue.finish_many, [i for i, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        done.set_exception(exc)
                    continue
                for _, done in batch:
                    done.set_result(None)
        finally:
            self._flusher = None

    def _load(self, item: OutboundItem) -> bytes:
        """The bytes to send: a DKIM-Signature when the From domain (or the envelope
        sender's) has a key, then the stored message without the local Return-Path."""
        path = self.store.blobs.path(item.blob_sha256)
        signature = b""
        candidates = from_domains(path, item.body_offset)
        if item.mail_from:
            candidates.append(_ascii_domain(item.mail_from.rpartition("@")[2].lower()))
        for domain in candidates:
            keys = self.store.dkim.signing_keys(domain)
            for selector, algorithm, pem in keys:
                signature += dkim.sign(
                    path, dkim.SigningKey(domain, selector, algorithm, pem),
                    offset=item.body_offset,
                )
            if keys:
                break
        with path.open("rb") as handle:
            handle.seek(item.body_offset)
            return signature + handle.read()

    async def _send(self, item: OutboundItem, facts: dict[str, object]) -> Outcome:
        try:
            targets = await self._targets(item.domain, requiretls=item.requiretls)
        except RouteError as exc:
            failure = Failure(0, exc.status, str(exc))
            return Outcome(failed=dict.fromkeys(item.recipients, failure))
        async with self._budget.hold(item.size):
            data = await asyncio.to_thread(self._load, item)
            message = Message(
                mail_from=_wire_address(item.mail_from, item.smtputf8) if item.mail_from else "",
                recipients=[_wire_address(r, item.smtputf8) for r in item.recipients],
                data=data,
                smtputf8=item.smtputf8,
                body_8bit=item.body_8bit,
                dsn_mail=dsn_mail_options(item.dsn),
                requiretls=item.requiretls,
                body_binary=item.body_binary,
            )
            wire_to_stored = dict(zip(message.recipients, item.recipients, strict=True))
            message.dsn_rcpt.update(
                (wire, dsn_rcpt_options(item.dsn, stored))
                for wire, stored in wire_to_stored.items()
            )
            last: Failure | None = None
            for target in targets[:MAX_TARGETS_PER_ATTEMPT]:
                try:
                    outcome, found = await deliver(
                        target, message,
                        local_hostname=self.config.hostname,
                        connect_timeout=self.outbound.connect_timeout,
                        command_timeout=self.outbound.command_timeout,
                    )
                except AttemptFailed as exc:
                    last = exc.failure
                    if exc.failure.permanent and exc.failure.code:
                        break  # a 5xx reply from a reached server is its final word
                    # Temporary, or our own refusal of this host (code 0): REQUIRETLS
                    # without verified TLS goes on to the next MX (RFC 8689 4.2.1).
                    continue
                facts.update(found)
                return Outcome(
                    delivered=[wire_to_stored[r] for r in outcome.delivered],
                    failed={wire_to_stored[r]: f for r, f in outcome.failed.items()},
                    next_hop_dsn=outcome.next_hop_dsn,
                    remote_mta=target.host,
                )
        if last is None:
            last = Failure(0, "4.4.4", f"no address found for any mail exchanger of {item.domain}")
        return Outcome(failed=dict.fromkeys(item.recipients, last))

    async def _targets(self, domain: str, *, requiretls: bool = False) -> list[Target]:
        outbound = self.outbound
        if outbound.smarthost:
            host, _, port_text = outbound.smarthost.rpartition(":")  # checked by config
            host, port = host.strip("[]"), int(port_text)
            mode = outbound.smarthost_tls
            return [Target(
                host=host, address=host, port=port, implicit_tls=mode == "tls",
                starttls="required" if mode == "starttls" else "none",
                username=outbound.smarthost_username, password=outbound.smarthost_password,
                cafile=outbound.smarthost_cafile,
            )]
        mx = await exchangers(self.resolver, _ascii_domain(domain))
        refusal = requiretls_refusal(mx, domain, outbound.requiretls_mx_auth)
        if requiretls and refusal is not None:
            raise refusal
        targets: list[Target] = []
        errors: list[str] = []
        for host in mx.hosts:
            try:
                found = await addresses(self.resolver, host)
            except DnsTemporaryError as exc:
                errors.append(str(exc))
                continue
            targets += [Target(host, address, outbound.mx_port) for address in found]
        if not targets:
            if errors:
                raise RouteError("; ".join(errors), permanent=False, status="4.4.3")
            raise RouteError(f"no mail exchanger of {domain} has an address",
                             permanent=True, status="5.1.2")
        return targets

    # -- settling: delete, reschedule, bounce ----------------------------------------------

    def _settle(self, item: OutboundItem, outcome: Outcome) -> bool:
        """Blocking. Record the attempt; True when the row is finished and must go. DSNs
        go out before the row changes, so a crash in between can repeat a DSN but never
        lose one."""
        current = now()
        permanent = {r: f for r, f in outcome.failed.items() if f.permanent}
        temporary = {r: f for r, f in outcome.failed.items() if not f.permanent}
        if temporary and expired(item.created_at, current, self.outbound.expire_after):
            for rcpt, failure in temporary.items():
                permanent[rcpt] = Failure(
                    failure.code, "4.4.7",
                    f"gave up after {item.attempts + 1} attempts; last error: {failure.text}",
                    failure.remote,
                )
            temporary = {}
        if permanent:
            self._bounce(item, [
                RecipientStatus(r, f.status, f.text, f.remote) for r, f in permanent.items()
            ])
        if outcome.delivered and not outcome.next_hop_dsn:
            # RFC 3461 5.2.2.2: a next hop without DSN ends our duty; NOTIFY=SUCCESS
            # recipients are told the message was relayed.
            self._bounce(item, [
                RecipientStatus(r, "2.0.0", "relayed to a server that does not offer DSN",
                                outcome.remote_mta)
                for r in outcome.delivered
            ], relayed=True)
        if not temporary:
            return True
        warn = delay_warning_due(item.created_at, current, self.outbound.delay_warning_after,
                                 item.delay_warned)
        if warn:
            self._bounce(item, [
                RecipientStatus(r, f.status, f.text, f.remote) for r, f in temporary.items()
            ], delayed=True)
        remaining = [r for r in item.recipients if r in temporary]
        delay = retry_delay(item.attempts + 1, self.outbound.retry_schedule)
        self.store.queue.reschedule(
            item.id,
            next_attempt_at=current + delay,
            error="; ".join(sorted({f.text for f in temporary.values()})),
            recipients=remaining,
            delay_warned=True if warn else None,
        )
        return False

    def _bounce(
        self, item: OutboundItem, statuses: Sequence[RecipientStatus], *, delayed: bool = False,
        relayed: bool = False,
    ) -> None:
        """One DSN to the envelope sender: delivered here when the sender is local,
        queued with the null sender otherwise. Never for a null sender (RFC 5321 4.5.5)."""
        if not item.mail_from:
            log.info("queue: not bouncing a message with the null sender",
                     extra={"fields": {"queue_id": item.queue_id, "delayed": delayed}})
            return
        # RFC 3461 4.1: only the recipients whose NOTIFY asks for this event.
        event = "SUCCESS" if relayed else "DELAY" if delayed else "FAILURE"
        statuses = [
            replace(s, original_recipient=item.dsn.orcpt.get(s.recipient, ""))
            for s in statuses if item.dsn.wants(s.recipient, event)
        ]
        if not statuses:
            return
        data = build_dsn(
            hostname=self.config.hostname,
            sender=item.mail_from,
            queue_id=item.queue_id,
            arrival=item.created_at,
            statuses=statuses,
            original=self.store.blobs.path(item.blob_sha256),
            original_offset=item.body_offset,
            delayed=delayed,
            success="relayed" if relayed else "",
            retry_until=item.created_at + timedelta(seconds=self.outbound.expire_after),
            envid=item.dsn.envid,
            # A binary original (RFC 3030) would make the DSN binary too, which could not
            # travel by DATA: RET=FULL gets the headers only (RFC 3461 4.3 allows less).
            full=item.dsn.ret == "FULL" and not item.body_binary,
        )
        queue_id = send_dsn(self.store, sender=item.mail_from, data=data, about=item.queue_id)
        if queue_id is None:
            return
        log.info("queue: DSN sent", extra={"fields": {
            "queue_id": item.queue_id, "dsn_queue_id": queue_id, "to": item.mail_from,
            "delayed": delayed, "relayed": relayed,
            "recipients": [s.recipient for s in statuses],
        }})
