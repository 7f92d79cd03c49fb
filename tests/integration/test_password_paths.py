"""Every path that changes a password, under attack: the reset link (page and API), My
Settings (page and API), a domain admin, a system admin. Each refuses a caller without the
right token or role, another session's token, a replayed or expired token; each change
leaves an audit row (readable by a system admin only) and a JSON log line.

What test_web_reset.py and test_web_credentials.py already prove is not repeated here
(the page link's single use and expiry, a wrong CAPTCHA spent, the same page for unknown
and backup-less accounts, links spent by later changes).

Timing of "Forgot your password?": not measured here. The answer does not wait for the
account lookup's mail work: web/jobs.py runs it off the request's connection, which
test_web_reset_off_connection.py proves; a timing assertion would only flake on a shared
machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import update

from postel.store.model import Role
from postel.store.sql import schema
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import (
    api_logon,
    ask_reset,
    client,
    csrf,
    local_path,
    logon,
    reset_link,
    solve_captcha,
    start,
    wait_for_mail,
)

ANN, BOB, BOSS = "ann@a.example", "bob@a.example", "boss@a.example"
ZED, BOSS_B, ROOT = "zed@b.example", "boss@b.example", "root@a.example"
BACKUP = "backups@c.example"
CARL = "carl@a.example"  # a plain user whose password no test changes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(
        tmp_path_factory.mktemp("passwords"),
        extra_config="[web]\ntest_hooks = true\nlogin_backoff_base = 0.0\n"
                     "reset_max_per_ip = 1000\n"
                     "[auth]\nmax_failures_per_ip = 0\nmax_failures_per_account = 0\n",
    )
    server.add_user(BACKUP)
    for email in (ANN, BOB, ZED, CARL):
        server.add_user(email, backup_email=BACKUP)
    server.add_user(BOSS, role=Role.DOMAIN_ADMIN, backup_email=BACKUP)
    server.add_user(BOSS_B, role=Role.DOMAIN_ADMIN, backup_email=BACKUP)
    server.add_user(ROOT, role=Role.ADMIN, backup_email=BACKUP)
    start(server)
    yield server
    server.close()


def password_of(server: PostelServer, email: str) -> str:
    account = server.store.directory.get_account(email)
    assert account is not None
    return account.password_hash


@pytest.fixture(scope="module")
def root(server: PostelServer) -> Iterator[httpx.Client]:
    """The system admin, signed in once: reads the audit log for every test."""
    with client(server) as http:
        api_logon(http, ROOT)
        yield http


def audit_rows(root: httpx.Client, action: str, target: str) -> list[dict[str, Any]]:
    """The rows a system admin reads through the API."""
    answer = root.get("/api/v1/audit", params={"limit": 200})
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["entries"]
            if e["action"] == action and e["target"] == target]


def audit_lines(server: PostelServer, action: str, target: str) -> list[dict[str, Any]]:
    lines = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{") and '"audit"' in line:
            entry = json.loads(line)
            if entry.get("audit") == action and entry.get("target") == target:
                lines.append(entry)
    return lines


def assert_audited(server: PostelServer, root: httpx.Client, action: str, target: str,
                   actor: str) -> None:
    rows = audit_rows(root, action, target)
    assert rows and rows[0]["actor"] == actor, rows
    lines = audit_lines(server, action, target)
    assert lines and lines[-1]["actor"] == actor, lines
    for entry in (*rows, *lines):
        assert PASSWORD not in json.dumps(entry)


def new_link(server: PostelServer, http: httpx.Client, email: str) -> str:
    count = len(server.inbox(BACKUP))
    assert ask_reset(http, email).status_code == 200
    return reset_link(wait_for_mail(server, BACKUP, count + 1)[-1])


def confirm(http: httpx.Client, token: str, password: str) -> httpx.Response:
    session = http.get("/api/v1/session").json()["csrf_token"]
    return http.post("/api/v1/password-reset/confirm", headers={"X-CSRF-Token": session},
                     json={"token": token, "new_password": password})


def test_reset_token_attacks(server: PostelServer, root: httpx.Client) -> None:
    with client(server) as http:
        link = new_link(server, http, ANN)
        token = urlsplit(link).query[len("token="):]
        before = password_of(server, ANN)
        for bad in ("", "x", token[:-1], token[:-1] + ("A" if token[-1] != "A" else "B"),
                    token + "x", token.upper() if token.upper() != token else token.lower(),
                    "A" * 5000):
            answer = confirm(http, bad, "attacker chosen pass 1")
            assert answer.status_code in (400, 410), (bad, answer.status_code)
        assert password_of(server, ANN) == before
        # Without the CSRF header the API refuses before looking at the token.
        answer = http.post("/api/v1/password-reset/confirm",
                           json={"token": token, "new_password": "attacker chosen pass 1"})
        assert answer.status_code == 403
        assert confirm(http, token, "fresh secret words 31").status_code == 204
        assert password_of(server, ANN) != before
        # Replayed: through the API and through the page.
        assert confirm(http, token, "attacker chosen pass 1").status_code == 410
        assert http.get(local_path(link)).status_code == 410
        # Expired.
        link = new_link(server, http, BOB)
        with server.store.engine.begin() as conn:
            conn.execute(update(schema.password_reset_tokens).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        before = password_of(server, BOB)
        assert confirm(http, urlsplit(link).query[6:], "attacker chosen pass 1"
                       ).status_code == 410
        assert password_of(server, BOB) == before
    assert_audited(server, root, "password.reset", ANN, "")


def test_my_settings_page(server: PostelServer, root: httpx.Client) -> None:
    with client(server) as zed, client(server) as bob:
        assert logon(zed, ZED, PASSWORD).status_code == 303
        assert logon(bob, BOB, PASSWORD).status_code == 303
        bob_csrf = csrf(bob.get("/settings").text)
        zed_csrf = csrf(zed.get("/settings").text)
        fields = {"action": "password", "current_password": PASSWORD,
                  "new_password": "other fresh words 32", "confirm": "other fresh words 32"}
        before = password_of(server, ZED)
        assert zed.post("/settings", data=fields).status_code == 403
        assert zed.post("/settings", data={**fields, "csrf_token": bob_csrf}
                        ).status_code == 403
        wrong = zed.post("/settings", data={**fields, "csrf_token": zed_csrf,
                                            "current_password": "not my password"})
        assert wrong.status_code in (400, 401, 403), wrong.status_code
        assert password_of(server, ZED) == before
        with client(server) as anonymous:
            answer = anonymous.post("/settings", data={**fields, "csrf_token": zed_csrf})
            assert answer.status_code in (303, 403)
        assert password_of(server, ZED) == before
        done = zed.post("/settings", data={**fields, "csrf_token": zed_csrf})
        assert done.status_code == 303, done.text
        assert password_of(server, ZED) != before
    assert_audited(server, root, "me.password", ZED, ZED)
    with client(server) as http:
        assert logon(http, ZED, "other fresh words 32").status_code == 303


def test_my_password_through_the_api(server: PostelServer, root: httpx.Client) -> None:
    body = {"current_password": PASSWORD, "new_password": "third fresh words 33"}
    before = password_of(server, BOB)
    with client(server) as nobody:
        assert nobody.post("/api/v1/me/password", json=body).status_code in (401, 403)
    with client(server) as bob, client(server) as boss:
        token = api_logon(bob, BOB)
        other = api_logon(boss, BOSS)
        assert bob.post("/api/v1/me/password", json=body).status_code == 403
        assert bob.post("/api/v1/me/password", json=body,
                        headers={"X-CSRF-Token": other}).status_code == 403
        wrong = bob.post("/api/v1/me/password", headers={"X-CSRF-Token": token},
                         json={**body, "current_password": "not my password"})
        assert 400 <= wrong.status_code < 500 and wrong.status_code != 404
        assert password_of(server, BOB) == before
        done = bob.post("/api/v1/me/password", json=body, headers={"X-CSRF-Token": token})
        assert done.status_code == 200, done.text
    assert password_of(server, BOB) != before
    assert_audited(server, root, "me.password", BOB, BOB)


def test_admin_paths(server: PostelServer, root: httpx.Client) -> None:
    new = {"password": "set by an admin 2026"}
    ann_before = password_of(server, ANN)
    with client(server) as user, client(server) as other_admin, client(server) as boss:
        user_token = api_logon(user, CARL)
        b_token = api_logon(other_admin, BOSS_B)
        boss_token = api_logon(boss, BOSS)
        # A plain user, and the admin of another domain: refused, API and page.
        assert user.patch(f"/api/v1/users/{ANN}", json=new,
                          headers={"X-CSRF-Token": user_token}).status_code == 403
        assert other_admin.patch(f"/api/v1/users/{ANN}", json=new,
                                 headers={"X-CSRF-Token": b_token}).status_code == 403
        assert user.get(f"/admin/users/{ANN}/edit").status_code == 403
        assert other_admin.get(f"/admin/users/{ANN}/edit").status_code == 403
        # The right admin without the CSRF token, or with another session's.
        assert boss.patch(f"/api/v1/users/{ANN}", json=new).status_code == 403
        assert boss.patch(f"/api/v1/users/{ANN}", json=new,
                          headers={"X-CSRF-Token": b_token}).status_code == 403
        # Nor the system admin's password, from his own domain.
        assert boss.patch(f"/api/v1/users/{ROOT}", json=new,
                          headers={"X-CSRF-Token": boss_token}).status_code == 403
        assert password_of(server, ANN) == ann_before
        done = boss.patch(f"/api/v1/users/{ANN}", json=new,
                          headers={"X-CSRF-Token": boss_token})
        assert done.status_code == 200, done.text
    assert password_of(server, ANN) != ann_before
    assert_audited(server, root, "user.update", ANN, BOSS)
    assert audit_rows(root, "user.update", ANN)[0]["detail"]
    # The system admin, through the page.
    zed_before = password_of(server, ZED)
    with client(server) as page_root:
        assert logon(page_root, ROOT, PASSWORD).status_code == 303
        page = page_root.get(f"/admin/users/{ZED}/edit")
        assert page.status_code == 200, page.text
        done = page_root.post(f"/admin/users/{ZED}/edit", data={
            "csrf_token": csrf(page.text), "password": "set by root 2026",
            "backup_email": BACKUP, "display_name": "", "role": "user", "quota_mb": ""})
        assert done.status_code == 303, done.text
    assert password_of(server, ZED) != zed_before
    assert_audited(server, root, "user.update", ZED, ROOT)


def test_only_a_system_admin_reads_the_whole_audit_log(server: PostelServer) -> None:
    with client(server) as user, client(server) as boss:
        api_logon(user, CARL)
        assert user.get("/api/v1/audit").status_code == 403
        assert user.get("/system/audit").status_code == 403
        api_logon(boss, BOSS)
        assert boss.get("/api/v1/audit").status_code == 403
        assert boss.get("/api/v1/domains/b.example/audit").status_code == 403
        assert boss.get("/api/v1/domains/a.example/audit").status_code == 200


def test_forgot_password_answers_alike_and_captcha_answers_once(server: PostelServer) -> None:
    with client(server) as http:
        session = http.get("/api/v1/session").json()["csrf_token"]
        answers = []
        for email in (ANN, "nobody@a.example", "nobody@nowhere.example", "not an address"):
            challenge = http.post("/api/v1/captcha", headers={"X-CSRF-Token": session})
            assert challenge.status_code == 201
            cid = challenge.json()["id"]
            solution = http.get(f"/__test__/captcha/{cid}").text
            body = {"email": email, "captcha_id": cid, "captcha_answer": solution}
            answer = http.post("/api/v1/password-reset", json=body,
                               headers={"X-CSRF-Token": session})
            answers.append((answer.status_code, answer.content))
            # The same right answer a second time is refused.
            again = http.post("/api/v1/password-reset", json=body,
                              headers={"X-CSRF-Token": session})
            assert again.status_code == 400, again.text
        assert len(set(answers)) == 1 and answers[0][0] == 202, answers
        # The page: the right answer twice.
        page = http.get("/forgot-password")
        challenge, solution = solve_captcha(http, page.text)
        form = {"csrf_token": csrf(page.text), "email": ANN, "challenge": challenge,
                "captcha": solution}
        assert http.post("/forgot-password", data=form).status_code == 200
        assert http.post("/forgot-password", data=form).status_code == 400
