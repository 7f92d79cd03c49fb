"""`api.Integrity` on SQL: the consistency check behind `postel check [--repair]`.

It reads while the server serves, so it never trusts a moment's picture for a repair:
a blob or temp file counts as an orphan only when it is older than `stale_after` (a body
being delivered is younger: BlobStore pins fresh ones for PIN_SECONDS, and an install of
a duplicate touches the existing file), and every repair is a statement that can only
move a counter up (`WHERE uidnext < :v`), never down. Rows without their parent are
reported, never deleted: which side is wrong needs a human.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Table, and_, delete, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from postel.store.integrity import CheckReport, Progress, no_progress
from postel.store.sql import schema as t
from postel.store.sql.database import Database
from postel.store.sql.pgblobs import PgBlobStore

_HEX = frozenset("0123456789abcdef")

# (child table, its column, parent table, the parent's key): rows whose parent is gone.
# The schema's foreign keys forbid these, but a database restored by hand, edited with SQL
# or run with foreign keys off (SQLite's default outside Postel) can still hold them.
_PARENTS: tuple[tuple[Table, str, Table, str], ...] = (
    (t.accounts, "domain_id", t.domains, "id"),
    (t.aliases, "domain_id", t.domains, "id"),
    (t.mailboxes, "account_id", t.accounts, "id"),
    (t.messages, "mailbox_id", t.mailboxes, "id"),
    (t.expunged, "mailbox_id", t.mailboxes, "id"),
    (t.subscriptions, "account_id", t.accounts, "id"),
    (t.metadata_entries, "mailbox_id", t.mailboxes, "id"),
    (t.metadata_entries, "account_id", t.accounts, "id"),
    (t.outbound_queue, "account_id", t.accounts, "id"),
    (t.web_sessions, "account_id", t.accounts, "id"),
    (t.password_reset_tokens, "account_id", t.accounts, "id"),
    (t.webmail_text, "message_id", t.messages, "id"),
    (t.webmail_prefs, "account_id", t.accounts, "id"),
    (t.webmail_trusted_senders, "account_id", t.accounts, "id"),
    (t.urlauth_keys, "mailbox_id", t.mailboxes, "id"),
)


def _last_used(path: Path) -> float:
    # A blob's mtime is when it was written; its atime is set when a delivery of the
    # same content reused it (BlobStore._install), or when something read it.
    stat = path.stat()
    return max(stat.st_mtime, stat.st_atime)


class SqlIntegrity:
    def __init__(self, db: Database) -> None:
        self._db = db

    def check(
        self, *, repair: bool = False, stale_after: float = 3600.0,
        progress: Progress = no_progress,
    ) -> CheckReport:
        report = CheckReport()
        cutoff = time.time() - stale_after
        self._blobs(report, repair, cutoff, progress)
        self._mailboxes(report, repair, progress)
        self._uidvalidity(report, repair)
        self._orphans(report, progress)
        self._tmp(report, repair, cutoff)
        return report

    # -- blobs ------------------------------------------------------------------------

    def _referenced(self, conn: Connection, names: list[str] | None = None) -> dict[str, int]:
        """Blob name -> how many message and queue rows name it."""
        counts: dict[str, int] = {}
        for table in (t.messages, t.outbound_queue):
            query = select(table.c.blob_sha256, func.count()).group_by(table.c.blob_sha256)
            if names is not None:
                query = query.where(table.c.blob_sha256.in_(names))
            for sha, n in conn.execute(query):
                counts[sha] = counts.get(sha, 0) + int(n)
        return counts

    def _blob_files(self) -> Iterator[Path]:
        root = self._db.blobs.root
        for shard in sorted(root.iterdir()):
            if shard.is_dir():
                yield from sorted(shard.iterdir())

    def _blobs(self, report: CheckReport, repair: bool, cutoff: float,
               progress: Progress) -> None:
        # Files first, rows second: a body stored between the two is on disk already
        # (fsynced before its row commits), so it can never look missing.
        files = list(self._blob_files())
        with self._db.read() as conn:
            referenced = self._referenced(conn)
        on_disk: set[str] = set()
        orphans: set[str] = set()  # reported from their files
        for done, path in enumerate(files, 1):
            if done % 200 == 0 or done == len(files):
                progress("blobs", done, len(files))
            name = path.name
            if len(name) != 64 or not set(name) <= _HEX or path.parent.name != name[:2]:
                report.add("foreign-file", str(path), "not a blob name in the blob directory")
                continue
            on_disk.add(name)
            if name in referenced:
                continue
            try:
                used = _last_used(path)
            except FileNotFoundError:
                continue  # collected meanwhile
            if used > cutoff:
                continue  # may be a delivery between its fsync and its commit
            report.add("orphan-blob", f"blob {name}", "no message or queue row names it",
                       repairable=True)
            orphans.add(name)
            if repair and self._remove_orphan(path, cutoff):
                report.mark_repaired("removed")
        if isinstance(self._db.blobs, PgBlobStore):
            self._database_bodies(report, repair, referenced, cutoff, orphans)
        for name, rows in sorted(referenced.items()):
            if name not in on_disk and not self._db.blobs.exists(name):
                report.add("missing-blob", f"blob {name}",
                           f"named by {rows} row(s) but the file is not there")
        report.examined["blobs"] = len(files)
        report.examined["referenced_blobs"] = len(referenced)

    def _database_bodies(
        self, report: CheckReport, repair: bool, referenced: dict[str, int], cutoff: float,
        reported: set[str],
    ) -> None:
        """On PostgreSQL the bodies are rows too (store/sql/pgblobs.py): one no message or
        queue row names, installed by no host since the cutoff, is an orphan."""
        o = t.blob_objects
        before = datetime.fromtimestamp(cutoff, UTC)
        with self._db.read() as conn:
            stale = [sha for (sha,) in conn.execute(
                select(o.c.sha256).where(o.c.used_at < before)) if sha not in referenced]
        for sha in stale:
            if sha not in reported:  # one problem per body, its file's or its rows'
                report.add("orphan-blob", f"body {sha} (database)",
                           "no message or queue row names it", repairable=True)
            if not repair:
                continue
            with self._db.write() as (conn, _):
                # Again, in the deleting transaction: a row may have committed since.
                if self._referenced(conn, [sha]):
                    continue
                if conn.execute(delete(o).where(and_(o.c.sha256 == sha, o.c.used_at < before))
                                ).rowcount:
                    conn.execute(delete(t.blob_chunks).where(t.blob_chunks.c.sha256 == sha))
            if sha not in reported:
                report.mark_repaired("removed from the database")

    def _remove_orphan(self, path: Path, cutoff: float) -> bool:
        # Look again right before unlinking: a row may have committed since the scan
        # (this process or another), and a fresh install of the same content touches it.
        with self._db.read() as conn:
            if self._referenced(conn, [path.name]):
                return False
        try:
            if _last_used(path) > cutoff:
                return False
            path.unlink()
        except FileNotFoundError:
            pass
        return True

    # -- mailbox counters -------------------------------------------------------------

    def _mailboxes(self, report: CheckReport, repair: bool, progress: Progress) -> None:
        m, x, b = t.messages, t.expunged, t.mailboxes
        with self._db.read() as conn:
            boxes = conn.execute(
                select(b.c.id, b.c.name, b.c.uidnext, b.c.highestmodseq,
                       b.c.first_recent_uid, t.accounts.c.email)
                .select_from(b.outerjoin(t.accounts, t.accounts.c.id == b.c.account_id))
                .order_by(b.c.id)
            ).all()
            tops: dict[int, tuple[int, int]] = {}
            for table in (m, x):
                for box_id, uid, modseq in conn.execute(
                    select(table.c.mailbox_id, func.max(table.c.uid), func.max(table.c.modseq))
                    .group_by(table.c.mailbox_id)
                ):
                    old = tops.get(box_id, (0, 0))
                    tops[box_id] = (max(old[0], int(uid)), max(old[1], int(modseq)))
            both = conn.execute(
                select(x.c.mailbox_id, x.c.uid).join(
                    m, and_(m.c.mailbox_id == x.c.mailbox_id, m.c.uid == x.c.uid))
            ).all()
        for done, box in enumerate(boxes, 1):
            if done % 200 == 0 or done == len(boxes):
                progress("mailboxes", done, len(boxes))
            label = f"mailbox {box.id} ({box.email or '?'}/{box.name})"
            top_uid, top_modseq = tops.get(box.id, (0, 0))
            # RFC 9051 2.3.1.1: UIDs strictly ascend; the next one must be above every
            # UID ever assigned, or a new message would reuse an expunged one's UID.
            if box.uidnext <= top_uid:
                report.add("uidnext-too-low", label,
                           f"UIDNEXT {box.uidnext} but UID {top_uid} is in use",
                           repairable=True)
                if repair:
                    self._raise(b.c.uidnext, box.id, top_uid + 1)
                    report.mark_repaired(f"UIDNEXT raised to {top_uid + 1}")
            # RFC 7162 3.1.1: HIGHESTMODSEQ is the highest MODSEQ of any message (and of
            # any expunge, which QRESYNC reports by MODSEQ).
            if box.highestmodseq < top_modseq:
                report.add("modseq-too-low", label,
                           f"HIGHESTMODSEQ {box.highestmodseq} but MODSEQ {top_modseq} exists",
                           repairable=True)
                if repair:
                    self._raise(b.c.highestmodseq, box.id, top_modseq)
                    report.mark_repaired(f"HIGHESTMODSEQ raised to {top_modseq}")
            if box.first_recent_uid > max(box.uidnext, top_uid + 1):
                report.add("recent-beyond-uidnext", label,
                           f"first \\Recent UID {box.first_recent_uid} > UIDNEXT {box.uidnext}")
        for box_id, uid in both:
            report.add("expunged-but-present", f"mailbox {box_id} UID {uid}",
                       "the UID is both a message and in the expunge log")
        report.examined["mailboxes"] = len(boxes)

    def _raise(self, column: ColumnElement[int], box_id: int, value: int) -> None:
        with self._db.write() as (conn, _changes):
            conn.execute(
                update(t.mailboxes)
                .where(and_(t.mailboxes.c.id == box_id, column < value))
                .values({column.key: value})
            )

    def _uidvalidity(self, report: CheckReport, repair: bool) -> None:
        # The counter must stay above every UIDVALIDITY in use (RFC 9051 2.3.1.1: a
        # re-created mailbox gets a new one), or a new mailbox could repeat an old value.
        c = t.counters.c
        with self._db.read() as conn:
            highest = conn.execute(select(func.max(t.mailboxes.c.uidvalidity))).scalar()
            counter = conn.execute(select(c.value).where(c.name == "uidvalidity")).scalar()
        if highest is None or counter is None or counter >= highest:
            return  # no mailbox, or no counter yet (the next allocation starts above all)
        report.add("uidvalidity-counter-too-low", "counter uidvalidity",
                   f"counter {counter} but UIDVALIDITY {highest} is in use", repairable=True)
        if repair:
            with self._db.write() as (conn, _changes):
                conn.execute(update(t.counters)
                             .where(and_(c.name == "uidvalidity", c.value < highest))
                             .values(value=highest))
            report.mark_repaired(f"counter raised to {highest}")

    # -- rows without their parent --------------------------------------------------------

    def _orphans(self, report: CheckReport, progress: Progress) -> None:
        with self._db.read() as conn:
            for done, (child, column, parent, key) in enumerate(_PARENTS, 1):
                progress("rows", done, len(_PARENTS))
                ref = child.c[column]
                rows = conn.execute(
                    select(ref, func.count())
                    .select_from(child.outerjoin(parent, parent.c[key] == ref))
                    .where(and_(ref.is_not(None), parent.c[key].is_(None)))
                    .group_by(ref)
                ).all()
                for value, n in rows:
                    report.add("orphan-row", f"{child.name}.{column} = {value}",
                               f"{n} row(s) name {parent.name} {value}, which does not exist")
            report.examined["queue_rows"] = int(
                conn.execute(select(func.count()).select_from(t.outbound_queue)).scalar() or 0)
            report.examined["messages"] = int(
                conn.execute(select(func.count()).select_from(t.messages)).scalar() or 0)

    # -- the spool ----------------------------------------------------------------------

    def _tmp(self, report: CheckReport, repair: bool, cutoff: float) -> None:
        # data_dir/tmp holds half-written blobs and spooled literals; a crash leaves them
        # behind (start-up removes them too). Young ones belong to work in progress.
        tmp = self._db.blobs.tmp_dir
        entries = sorted(p for p in tmp.iterdir() if p.is_file()) if tmp.exists() else []
        for path in entries:
            try:
                if path.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            report.add("stale-temp-file", str(path), "left by a crash or a killed session",
                       repairable=True)
            if repair:
                path.unlink(missing_ok=True)
                report.mark_repaired("removed")
        report.examined["temp_files"] = len(entries)


__all__ = ["SqlIntegrity"]
