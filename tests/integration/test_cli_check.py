"""`postel check` on the command line: the report, --json, --repair, exit codes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import update

from postel.store.sql.pgblobs import PgBlobStore
from postel.store.sql.schema import blob_objects
from tests.harness import PostelServer

OLD = time.time() - 7200


def test_check_reports_repairs_and_exits_by_what_remains(
    make_postel: Callable[..., PostelServer]
) -> None:
    server = make_postel()
    server.add_user("alice@example.test")
    orphan = server.store.blobs.put(b"Subject: nobody\r\n\r\nnames me\r\n")
    os.utime(server.store.blobs.path(orphan.sha256), (OLD, OLD))
    if isinstance(server.store.blobs, PgBlobStore):  # the body is a row there too: as old
        with server.store.engine.begin() as conn:
            conn.execute(update(blob_objects).values(
                used_at=datetime.fromtimestamp(OLD, UTC)))
    stale = server.config.tmp_dir / "blob-left-by-a-crash"
    stale.write_bytes(b"half")
    os.utime(stale, (OLD, OLD))

    report = server.cli("check")
    assert report.returncode == 1, report.stderr
    assert "repairable orphan-blob" in report.stdout
    assert "repairable stale-temp-file" in report.stdout
    assert "run `postel check --repair`" in report.stdout

    as_json = server.cli("check", "--json")
    assert as_json.returncode == 1
    parsed = json.loads(as_json.stdout)
    assert parsed["clean"] is False
    assert sorted(p["kind"] for p in parsed["problems"]) == ["orphan-blob", "stale-temp-file"]

    repaired = server.cli("check", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert repaired.stdout.count("repaired ") == 2 and "0 remaining" in repaired.stdout
    assert not stale.exists() and not server.store.blobs.exists(orphan.sha256)
    assert server.cli("check").returncode == 0

    bad = server.cli("check", "--stale-after", "-1")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
