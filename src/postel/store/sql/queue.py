"""The outbound queue: rows per destination domain, claimed, finished or rescheduled."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from postel.store.model import (
    BlobRef,
    Change,
    DsnRequest,
    OutboundCopy,
    OutboundItem,
    QueueChanged,
)
from postel.store.sql import schema as t
from postel.store.sql.database import Database
from postel.store.sql.rows import domain_of, new_id, now


def _dsn_columns(dsn: DsnRequest | None, recipients: Sequence[str]) -> dict[str, Any]:
    """The DSN request (RFC 3461) as the row's columns, for this row's recipients."""
    if dsn is None:
        return {}
    per_recipient = {
        r: {"notify": list(dsn.notify.get(r, ())), "orcpt": dsn.orcpt.get(r)}
        for r in recipients
    }
    return {
        "dsn_ret": dsn.ret,
        "dsn_envid": dsn.envid,
        "dsn_recipients": json.dumps(per_recipient, ensure_ascii=False),
    }


def _dsn_request(r: Any) -> DsnRequest:
    per_recipient: dict[str, dict[str, Any]] = json.loads(r.dsn_recipients or "{}")
    return DsnRequest(
        ret=r.dsn_ret,
        envid=r.dsn_envid,
        notify={k: tuple(v["notify"]) for k, v in per_recipient.items() if v["notify"]},
        orcpt={k: v["orcpt"] for k, v in per_recipient.items() if v["orcpt"]},
    )


def insert_queue_rows(
    conn: Connection, changes: list[Change], blob: BlobRef, copy: OutboundCopy
) -> list[int]:
    """In the caller's transaction: one outbound row per destination domain of `copy`."""
    by_domain: dict[str, list[str]] = {}
    for rcpt in copy.recipients:
        by_domain.setdefault(domain_of(rcpt).lower(), []).append(rcpt)
    ids: list[int] = []
    created = now()
    for domain, rcpts in sorted(by_domain.items()):
        result = conn.execute(
            insert(t.outbound_queue).values(
                queue_id=copy.queue_id,
                account_id=copy.account_id,
                blob_sha256=blob.sha256,
                body_offset=copy.body_offset,
                mail_from=copy.mail_from,
                domain=domain,
                recipients=json.dumps(rcpts, ensure_ascii=False),
                smtputf8=copy.smtputf8,
                body_8bit=copy.body_8bit,
                **_dsn_columns(copy.dsn, rcpts),
                requiretls=copy.requiretls,
                body_binary=copy.body_binary,
                size=blob.size - copy.body_offset,
                state="queued",
                attempts=0,
                next_attempt_at=created,
                created_at=created,
            )
        )
        ids.append(new_id(result))
    if ids:
        changes.append(QueueChanged())  # due now: wake the workers
    return ids


class SqlQueue:
    """`api.Outbound` on SQL: the outbound queue's rows and their life cycle."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- outbound queue ---------------------------------------------------------------

    def enqueue(
        self,
        *,
        queue_id: str,
        blob: BlobRef,
        body_offset: int,
        mail_from: str,
        recipients: Sequence[str],
        account_id: int | None,
        smtputf8: bool,
        body_8bit: bool,
        dsn: DsnRequest | None = None,
        requiretls: bool = False,
        body_binary: bool = False,
    ) -> list[int]:
        """Queue a message for remote recipients: one row per destination domain."""
        copy = OutboundCopy(queue_id, body_offset, mail_from, tuple(recipients), account_id,
                            smtputf8, body_8bit, dsn, requiretls, body_binary)
        try:
            with self._db.write() as (conn, changes):
                return insert_queue_rows(conn, changes, blob, copy)
        finally:
            self._db.blobs.release(blob.sha256)  # the rows name it now (or never will)

    def list_all(self) -> list[OutboundItem]:
        with self._db.read() as conn:
            rows = conn.execute(select(t.outbound_queue).order_by(t.outbound_queue.c.id)).all()
        return [
            OutboundItem(
                id=r.id, queue_id=r.queue_id, blob_sha256=r.blob_sha256,
                body_offset=r.body_offset, mail_from=r.mail_from, domain=r.domain,
                recipients=json.loads(r.recipients), size=r.size, state=r.state,
                attempts=r.attempts, next_attempt_at=r.next_attempt_at,
                last_error=r.last_error, created_at=r.created_at,
            )
            for r in rows
        ]

    # -- queue ------------------------------------------------------------------------
    # The outbound queue's life cycle: rows are claimed (state "sending") by the workers,
    # deleted after a 250 or a final bounce, or put back with the next attempt's time.

    @staticmethod
    def _outbound(r: Any) -> OutboundItem:
        return OutboundItem(
            id=r.id, queue_id=r.queue_id, blob_sha256=r.blob_sha256,
            body_offset=r.body_offset, mail_from=r.mail_from, domain=r.domain,
            recipients=json.loads(r.recipients), size=r.size, state=r.state,
            attempts=r.attempts, next_attempt_at=r.next_attempt_at,
            last_error=r.last_error, created_at=r.created_at, smtputf8=r.smtputf8,
            body_8bit=r.body_8bit, account_id=r.account_id, delay_warned=r.delay_warned,
            dsn=_dsn_request(r), requiretls=r.requiretls, body_binary=r.body_binary,
        )

    def get(self, item_id: int) -> OutboundItem | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.outbound_queue).where(t.outbound_queue.c.id == item_id)
            ).first()
        return None if row is None else self._outbound(row)

    def release_claims(self, owner: str = "") -> int:
        """At start-up: rows left "sending" by this host's previous run are due again.
        (Rows claimed before leases existed have no owner: every host releases those.)"""
        q = t.outbound_queue
        mine = or_(q.c.claimed_by.is_(None), q.c.claimed_by == owner)
        with self._db.write() as (conn, _):
            result = conn.execute(
                update(q).where(and_(q.c.state == "sending", mine))
                .values(state="queued", claimed_by=None, claimed_until=None)
            )
        return int(result.rowcount)

    def renew_claims(self, owner: str, item_ids: Sequence[int], lease: float) -> int:
        """A host still delivering these rows keeps them: no other host takes them over."""
        if not item_ids:
            return 0
        q = t.outbound_queue
        with self._db.write() as (conn, _):
            result = conn.execute(
                update(q).where(and_(q.c.id.in_(list(item_ids)), q.c.state == "sending",
                                     q.c.claimed_by == (owner or None)))
                .values(claimed_until=now() + timedelta(seconds=lease))
            )
        return int(result.rowcount)

    def claim(
        self, due_before: datetime, limit: int, skip_domains: Sequence[str] = (), *,
        owner: str = "", lease: float = 900.0,
    ) -> list[OutboundItem]:
        """Mark up to `limit` due rows "sending" and return them, oldest due first. A row
        another host claimed and did not finish within its lease (it died mid-delivery) is
        due again: several hosts share one queue, and none waits for a dead one."""
        q = t.outbound_queue
        clock = now()
        claimable = or_(
            and_(q.c.state == "queued", q.c.next_attempt_at <= due_before),
            and_(q.c.state == "sending", q.c.claimed_until < clock),
        )
        condition = claimable
        if skip_domains:
            condition = and_(condition, q.c.domain.not_in(list(skip_domains)))
        until = clock + timedelta(seconds=lease)
        with self._db.write() as (conn, _):
            rows = conn.execute(
                select(q).where(condition).order_by(q.c.next_attempt_at, q.c.id).limit(limit)
            ).all()
            claimed = []
            for row in rows:
                # Still claimable: a claim by another host in between makes this one lose
                # cleanly (no message is sent twice).
                result = conn.execute(
                    update(q).where(and_(q.c.id == row.id, claimable))
                    .values(state="sending", claimed_by=owner or None, claimed_until=until)
                )
                if result.rowcount == 1:
                    claimed.append(row)
        return [replace(self._outbound(r), state="sending") for r in claimed]

    def finish(self, item_id: int) -> None:
        """Delivered to every recipient, or bounced for good: the row goes."""
        with self._db.write() as (conn, _):
            conn.execute(delete(t.outbound_queue).where(t.outbound_queue.c.id == item_id))

    def finish_many(self, item_ids: Sequence[int]) -> None:
        """finish() for several rows in one transaction (one fsync for a batch)."""
        with self._db.write() as (conn, _):
            conn.execute(
                delete(t.outbound_queue).where(t.outbound_queue.c.id.in_(list(item_ids)))
            )

    def reschedule(
        self,
        item_id: int,
        *,
        next_attempt_at: datetime,
        error: str,
        recipients: Sequence[str] | None = None,
        delay_warned: bool | None = None,
    ) -> None:
        """One more failed attempt: back to "queued" until `next_attempt_at`, keeping only
        the recipients still to deliver when given."""
        values: dict[str, Any] = {
            "state": "queued",
            "attempts": t.outbound_queue.c.attempts + 1,
            "next_attempt_at": next_attempt_at,
            "last_error": error[:2000],
        }
        if recipients is not None:
            values["recipients"] = json.dumps(list(recipients), ensure_ascii=False)
        if delay_warned is not None:
            values["delay_warned"] = delay_warned
        with self._db.write() as (conn, _):
            conn.execute(
                update(t.outbound_queue).where(t.outbound_queue.c.id == item_id).values(**values)
            )

    def retry_now(self, item_id: int | None = None) -> int:
        """Make one row (or every waiting row) due now; returns how many."""
        q = t.outbound_queue
        condition = q.c.state == "queued"
        if item_id is not None:
            condition = and_(condition, q.c.id == item_id)
        with self._db.write() as (conn, changes):
            result = conn.execute(update(q).where(condition).values(next_attempt_at=now()))
            if result.rowcount:
                changes.append(QueueChanged())  # due now: wake the workers
        return int(result.rowcount)

    def delete(self, item_id: int) -> bool:
        """Drop a row without delivering or bouncing it (operator's decision)."""
        with self._db.write() as (conn, _):
            result = conn.execute(
                delete(t.outbound_queue).where(t.outbound_queue.c.id == item_id)
            )
        return bool(result.rowcount)

    def stats(self) -> tuple[int, datetime | None]:
        """How many rows are queued, and when the oldest was created (for /metrics)."""
        q = t.outbound_queue
        with self._db.read() as conn:
            row = conn.execute(select(func.count(), func.min(q.c.created_at))).one()
        return int(row[0]), row[1]
