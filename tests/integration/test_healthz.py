"""/healthz, the load balancer's check: 200 while the store answers, 503 once it cannot."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.harness import PostelServer, drop_pg_database, fresh_pg_database
from tests.web.helpers import start


def test_healthz_answers_ok_on_http_and_https(make_postel: Callable[..., PostelServer]) -> None:
    server = make_postel()
    start(server)
    plain = httpx.get(f"http://127.0.0.1:{server.port('http')}/healthz", timeout=30)
    assert (plain.status_code, plain.text) == (200, "ok\n")
    assert plain.headers["cache-control"] == "no-store"
    secure = httpx.get(f"https://127.0.0.1:{server.port('https')}/healthz", timeout=30,
                       verify=server.client_tls())
    assert (secure.status_code, secure.text) == (200, "ok\n")


@pytest.mark.postgres
def test_healthz_says_unavailable_when_the_database_is_gone(
    make_postel: Callable[..., PostelServer],
) -> None:
    url = fresh_pg_database()
    server = make_postel(storage_url=url)
    start(server)
    assert httpx.get(f"http://127.0.0.1:{server.port('http')}/healthz", timeout=30
                     ).status_code == 200
    server.reload_config()  # the test's own connections go, so the database can be dropped
    drop_pg_database(url)
    answer = httpx.get(f"http://127.0.0.1:{server.port('http')}/healthz", timeout=30)
    assert answer.status_code == 503
    assert answer.text.startswith("unavailable")
    # A warning with the reason; no traceback from the check (the queue, which also lost its
    # database, may log its own error: that one is for the operator).
    web_lines = [json.loads(line) for line in server.log_path.read_text().splitlines()
                 if '"postel.web"' in line]
    assert any("healthz: the store failed" in line["msg"] for line in web_lines)
    assert not any("exc" in line for line in web_lines)
