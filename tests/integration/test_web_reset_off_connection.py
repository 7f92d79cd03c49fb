"""Issue 15 item 8 over real HTTPS: the reset work runs in one job task the web service
owns, never on the request's connection. As a BackgroundTask each request's reset work
held one of the server's worker threads, so requests for existing accounts made the next
requests slower (and, held up, stalled every request needing such a thread).

The test holds the reset work up (a lock on the reset-token table: PostgreSQL, so the
rest of the store works) and shows requests are still answered on the same keep-alive
connection while that work cannot have finished, however many resets are waiting.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests.harness import PostelServer
from tests.store.conftest import pg_url  # noqa: F401 (a fixture)
from tests.web.helpers import ask_reset, client, make_web_server, start, wait_for_mail

RESETS = 41  # more than the worker threads Starlette runs blocking work on (anyio: 40)
LIMITS = f"reset_max_per_ip = {RESETS + 5}\nreset_max_per_account = {RESETS + 5}\n"


def api_reset(http: httpx.Client, email: str) -> httpx.Response:
    headers = {"X-CSRF-Token": http.get("/api/v1/session").json()["csrf_token"]}
    challenge = http.post("/api/v1/captcha", headers=headers).json()["id"]
    answer = http.get(f"/__test__/captcha/{challenge}").text
    return http.post("/api/v1/password-reset", headers=headers, json={
        "email": email, "captcha_id": challenge, "captcha_answer": answer})


@pytest.mark.parametrize(("path", "user"), [("/forgot-password", "sam"),
                                           ("/api/v1/password-reset", "tess")])
def test_requests_are_answered_while_reset_work_is_held_up(
    make_postel: Callable[..., PostelServer], pg_url: str, path: str,  # noqa: F811
    user: str,
) -> None:
    server = make_web_server(make_postel, storage_url=pg_url, extra=LIMITS)
    email = f"{user}@example.test"
    server.add_user(email, backup_email=f"{user}.backup@backup.test")
    server.add_user(f"{user}.backup@backup.test")
    start(server)
    conninfo = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with client(server) as http, psycopg.connect(conninfo) as blocker:
        http.timeout = httpx.Timeout(15)  # a request held up behind the lock fails
        before = blocker.execute("SELECT count(*) FROM password_reset_tokens").fetchone()
        blocker.execute("LOCK TABLE password_reset_tokens IN EXCLUSIVE MODE")
        for _ in range(RESETS):
            if path == "/forgot-password":
                assert ask_reset(http, email).status_code == 200
            else:
                assert api_reset(http, email).status_code == 202
        # Same keep-alive connection: pages that need worker threads (a file, a CAPTCHA).
        assert http.get("/static/style.css").status_code == 200
        assert http.get("/forgot-password").status_code == 200
        during = blocker.execute("SELECT count(*) FROM password_reset_tokens").fetchone()
        assert during == before  # the reset work has not run yet
        blocker.rollback()  # let it go on
    wait_for_mail(server, f"{user}.backup@backup.test", 1)
