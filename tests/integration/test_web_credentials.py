"""Issue 15 items 6 and 7, over real HTTPS: a reset link sent before a password or backup
address change is dead after it, on every path; the backup address needs the password."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postel.store.model import Role
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import (
    api_logon,
    ask_reset,
    client,
    csrf,
    local_path,
    logon,
    reset_link,
    start,
    wait_for_mail,
)

NEW_PASSWORD = "changed after the link 9"
USERS = ("mia", "noah", "olga", "pete", "quinn", "rita")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(
        tmp_path_factory.mktemp("web"),
        extra_config="[web]\ntest_hooks = true\nlogin_backoff_base = 0.0\n",
    )
    for name in USERS:
        server.add_user(f"{name}@example.test", backup_email=f"{name}.backup@backup.test")
        server.add_user(f"{name}.backup@backup.test")
    server.add_user("boss@example.test", role=Role.DOMAIN_ADMIN)
    start(server)
    yield server
    server.close()


def link_sent_to(server: PostelServer, name: str) -> str:
    with client(server) as http:
        assert ask_reset(http, f"{name}@example.test").status_code == 200
    link = reset_link(wait_for_mail(server, f"{name}.backup@backup.test", 1)[0])
    with client(server) as http:
        assert http.get(local_path(link)).status_code == 200  # alive before the change
    return link


def assert_dead(server: PostelServer, link: str) -> None:
    with client(server) as http:
        assert http.get(local_path(link)).status_code == 410


def test_my_password_change_spends_earlier_links(server: PostelServer) -> None:
    link = link_sent_to(server, "mia")
    with client(server) as http:
        token = api_logon(http, "mia@example.test")
        changed = http.post("/api/v1/me/password", json={
            "current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers={"X-CSRF-Token": token})
        assert changed.status_code == 200, changed.text
    assert_dead(server, link)


def test_domain_admin_password_change_spends_earlier_links(server: PostelServer) -> None:
    link = link_sent_to(server, "noah")
    with client(server) as http:
        token = api_logon(http, "boss@example.test")
        changed = http.patch("/api/v1/users/noah@example.test",
                             json={"password": NEW_PASSWORD}, headers={"X-CSRF-Token": token})
        assert changed.status_code == 200, changed.text
    assert_dead(server, link)


def test_cli_password_change_spends_earlier_links(server: PostelServer) -> None:
    link = link_sent_to(server, "olga")
    done = server.cli("user", "passwd", "olga@example.test", "--password-stdin",
                      input=NEW_PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert_dead(server, link)


def test_backup_change_needs_the_password_spends_links_and_tells_both(
    server: PostelServer,
) -> None:
    link = link_sent_to(server, "pete")
    with client(server) as http:
        token = api_logon(http, "pete@example.test")
        headers = {"X-CSRF-Token": token}
        # A session cookie alone does not move the backup address (a stolen session
        # would become a takeover through "Forgot your password?").
        for body in ({"backup_email": "thief@evil.test"},
                     {"backup_email": "thief@evil.test", "current_password": "guess 12345"}):
            refused = http.patch("/api/v1/me", json=body, headers=headers)
            assert refused.status_code == 400
            assert refused.json()["field"] == "current_password"
        account = server.store.directory.get_account("pete@example.test")
        assert account is not None and account.backup_email == "pete.backup@backup.test"
        # The display name alone needs no password.
        assert http.patch("/api/v1/me", json={"display_name": "Pete"},
                          headers=headers).status_code == 200
        moved = http.patch("/api/v1/me", json={"backup_email": "rita.backup@backup.test",
                                               "current_password": PASSWORD},
                           headers=headers)
        assert moved.status_code == 200, moved.text
    assert_dead(server, link)
    old = wait_for_mail(server, "pete.backup@backup.test", 2)[1]
    assert "backup address of pete@example.test was changed" in str(old["Subject"])
    new = wait_for_mail(server, "rita.backup@backup.test", 1)[0]
    assert "pete@example.test" in str(new["Subject"])


def test_admin_backup_change_spends_earlier_links(server: PostelServer) -> None:
    link = link_sent_to(server, "quinn")
    with client(server) as http:
        token = api_logon(http, "boss@example.test")
        changed = http.patch("/api/v1/users/quinn@example.test",
                             json={"backup_email": "quinn@elsewhere.test"},
                             headers={"X-CSRF-Token": token})
        assert changed.status_code == 200, changed.text
    assert_dead(server, link)


def test_settings_page_backup_change_asks_for_the_password(server: PostelServer) -> None:
    with client(server) as http:
        assert logon(http, "rita@example.test", PASSWORD).status_code == 303
        page = http.get("/settings")
        refused = http.post("/settings", data={
            "csrf_token": csrf(page.text), "action": "profile", "display_name": "",
            "backup_email": "thief@evil.test"})
        assert refused.status_code == 400
        assert "current password" in refused.text
    account = server.store.directory.get_account("rita@example.test")
    assert account is not None and account.backup_email == "rita.backup@backup.test"
